//! A carrier worker: pulls `carrier.<name>`, submits, records the outcome, then
//! acknowledges.
//!
//! The order is what makes a crash harmless: the outcome is published to RESULTS
//! (under an id naming message, hop and attempt) and acknowledged by JetStream before
//! the job is acked, termed or nak'ed. A crash in between redelivers the job; the
//! carrier recognises the repeated client reference and the repeated RESULTS publish
//! is dropped as a duplicate.
//!
//! Retryable outcomes are nak'ed with a growing delay and retried on the same carrier.
//! On the last allowed delivery (`max_deliver`) a retryable outcome becomes a final
//! failure naming the carrier and the last reason.
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use futures::StreamExt;
use rns_nats::{publish_all, terminate_with_reason, Outbound};
use rns_types::subjects::{message_ids, result_subject};
use rns_types::wire::{CarrierJob, EventKind, MessageEvent, ResultBatch};
use rns_types::CarrierId;
use tokio_util::sync::CancellationToken;

use crate::http::HttpCarrier;
use crate::outcome::SubmitOutcome;

/// How one carrier's worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerPolicy {
    /// Submits in flight at once.
    pub concurrency: usize,
    /// Deliveries before a retryable failure becomes final (the consumer's MaxDeliver).
    pub max_deliver: u16,
    /// Nak delays by attempt; the last one repeats.
    pub retry_backoff: Vec<Duration>,
}

impl WorkerPolicy {
    fn backoff(&self, attempt: u16) -> Duration {
        let index =
            usize::from(attempt.saturating_sub(1)).min(self.retry_backoff.len().saturating_sub(1));
        self.retry_backoff
            .get(index)
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }
}

pub struct Worker {
    pub carrier: CarrierId,
    pub adapter: HttpCarrier,
    pub client: async_nats::Client,
    pub jetstream: async_nats::jetstream::Context,
    pub policy: WorkerPolicy,
}

impl Worker {
    /// Works the consumer until `shutdown`; submits in flight finish first.
    pub async fn run(
        self,
        consumer: PullConsumer,
        shutdown: CancellationToken,
    ) -> Result<(), async_nats::Error> {
        let concurrency = self.policy.concurrency.max(1);
        let messages = consumer
            .stream()
            .max_messages_per_batch(concurrency)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await?;
        tracing::info!(carrier = %self.carrier, concurrency, "carrier worker started");
        messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(concurrency, |message| {
                let worker = &self;
                async move {
                    match message {
                        Ok(message) => worker.handle(message).await,
                        Err(error) => {
                            tracing::warn!(carrier = %worker.carrier, %error, "pull failed")
                        }
                    }
                }
            })
            .await;
        tracing::info!(carrier = %self.carrier, "carrier worker stopped");
        Ok(())
    }

    async fn handle(&self, message: Message) {
        let job: CarrierJob = match serde_json::from_slice(&message.payload) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(carrier = %self.carrier, %error, "undecodable job; terminating it");
                let _ = terminate_with_reason(
                    &self.client,
                    &message,
                    &format!("undecodable job: {error}"),
                )
                .await;
                return;
            }
        };
        let attempt = message
            .info()
            .map(|info| u16::try_from(info.delivered).unwrap_or(u16::MAX))
            .unwrap_or(1);
        let outcome = self.adapter.submit(&job).await;
        let last_attempt = attempt >= self.policy.max_deliver;
        let events = self.events(&job, attempt, &outcome, last_attempt);
        let result = ResultBatch {
            customer_id: job.customer_id.clone(),
            messages: Vec::new(),
            events,
        };
        let outbound = Outbound {
            subject: result_subject(&job.customer_id),
            message_id: message_ids::outcome(&job.message_id, job.hop, attempt),
            payload: Bytes::from(serde_json::to_vec(&result).expect("a result batch serialises")),
        };
        if let Err(error) = publish_all(&self.jetstream, [outbound], 1).await {
            tracing::warn!(carrier = %self.carrier, message = %job.message_id, %error, "recording the outcome failed; job will be redelivered");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
            return;
        }
        let acknowledged = match &outcome {
            SubmitOutcome::Delivered { .. } => message.ack().await,
            SubmitOutcome::Rejected { reason } => {
                terminate_with_reason(&self.client, &message, reason)
                    .await
                    .map_err(Into::into)
            }
            retryable if last_attempt => {
                let reason = format!("gave up after {attempt} attempts: {}", reason_of(retryable));
                terminate_with_reason(&self.client, &message, &reason)
                    .await
                    .map_err(Into::into)
            }
            _ => {
                message
                    .ack_with(AckKind::Nak(Some(self.policy.backoff(attempt))))
                    .await
            }
        };
        if let Err(error) = acknowledged {
            tracing::warn!(carrier = %self.carrier, message = %job.message_id, %error, "acknowledgement failed; job will be redelivered");
        }
    }

    fn events(
        &self,
        job: &CarrierJob,
        attempt: u16,
        outcome: &SubmitOutcome,
        last_attempt: bool,
    ) -> Vec<MessageEvent> {
        let now_ms = rns_types::time::now_milliseconds();
        let event = |kind, detail: String| MessageEvent {
            message_id: job.message_id,
            at_ms: now_ms,
            kind,
            carrier: Some(self.carrier.clone()),
            hop: job.hop,
            attempt,
            detail,
        };
        match outcome {
            SubmitOutcome::Delivered { carrier_reference } => vec![
                event(EventKind::Submitted, carrier_reference.clone()),
                event(EventKind::Delivered, String::new()),
            ],
            SubmitOutcome::Rejected { reason } => vec![event(
                EventKind::Failed,
                format!("{}: {reason}", self.carrier),
            )],
            retryable => {
                let reason = reason_of(retryable);
                let mut events = vec![event(EventKind::AttemptFailed, reason.to_owned())];
                if last_attempt {
                    events.push(event(
                        EventKind::Failed,
                        format!(
                            "{}: gave up after {attempt} attempts: {reason}",
                            self.carrier
                        ),
                    ));
                }
                events
            }
        }
    }
}

fn reason_of(outcome: &SubmitOutcome) -> &str {
    match outcome {
        SubmitOutcome::Delivered { .. } => "delivered",
        SubmitOutcome::Rejected { reason }
        | SubmitOutcome::Transient { reason }
        | SubmitOutcome::Ambiguous { reason } => reason,
    }
}
