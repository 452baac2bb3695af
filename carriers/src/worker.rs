//! A carrier worker: pulls `carrier.<name>`, submits, records the outcome, then
//! acknowledges.
//!
//! The order is what makes a crash harmless: the outcome is published to RESULTS
//! (under an id naming message, hop and attempt, gathered with other jobs' outcomes
//! by [`crate::results`]) and acknowledged by JetStream before the job is acked,
//! termed or nak'ed. A crash in between redelivers the job as a new attempt: the
//! carrier recognises the repeated client reference (it does not deliver again), and
//! the attempt's events are recorded beside the first ones; readers of RESULTS settle
//! per message, so points and the final state are unchanged.
//!
//! Retryable outcomes are nak'ed with a growing delay and retried on the same carrier.
//! After the last allowed delivery (`max_deliver`) the server's MaxDeliver advisory
//! hands the message to [`crate::failover`], which moves it to the next carrier; the
//! worker remembers the last reason (and whether any attempt was ambiguous) for it.
//! While the carrier's circuit is open ([`crate::circuit`]) messages move on without
//! a submit, but for one probe per interval.
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use rns_nats::{terminate_with_reason, HealthStore};
use rns_types::subjects::message_ids;
use rns_types::wire::{CarrierJob, EventKind, MessageEvent};
use rns_types::{CarrierId, CircuitRecord, CircuitState};
use tokio_util::sync::CancellationToken;

use crate::circuit::{Admission, CircuitBreaker, Observation};
use crate::failover::{Failover, FailoverError};
use crate::http::{HttpCarrier, Submitter};
use crate::images::{ImageError, ImageStore};
use crate::outcome::SubmitOutcome;
use crate::results::ResultSink;

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
    pub submitter: Submitter,
    pub client: async_nats::Client,
    pub policy: WorkerPolicy,
    pub breaker: Mutex<CircuitBreaker>,
    pub health: HealthStore,
    pub failover: Failover,
    pub images: ImageStore,
    pub results: ResultSink,
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
        self.publish_circuit().await;
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
        if attempt > 1 {
            match self.failover.has_left(&job).await {
                Ok(false) => {}
                Ok(true) => {
                    // Moving on was decided; finish it (every publish repeats under
                    // the same ids), then take the job off this carrier.
                    let reason = "moving on was decided before a restart";
                    match self.failover.move_on(&job, reason, attempt).await {
                        Ok(()) => {
                            let _ = terminate_with_reason(&self.client, &message, reason).await;
                        }
                        Err(error) => {
                            tracing::warn!(carrier = %self.carrier, %error, "finishing a move failed; will retry");
                            let _ = message
                                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                                .await;
                        }
                    }
                    return;
                }
                Err(error) => {
                    tracing::warn!(carrier = %self.carrier, %error, "cannot tell whether the job moved on; will retry");
                    let _ = message
                        .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                        .await;
                    return;
                }
            }
        }
        let admission = self.lock_breaker().admit(Instant::now());
        if admission == Admission::Refuse {
            self.move_on_while_open(&message, &job, attempt).await;
            return;
        }
        let started = Instant::now();
        let outcome = match self.images.load(&job.images).await {
            Ok(images) => {
                self.submitter
                    .submit(HttpCarrier::request(&job, images))
                    .await
            }
            Err(ImageError::Missing(reason)) => SubmitOutcome::Rejected { reason },
            // Never reached the carrier: a definite, retryable failure.
            Err(ImageError::Unavailable(reason)) => SubmitOutcome::Transient { reason },
        };
        let carrier = self.carrier.to_string();
        metrics::histogram!("rns_carrier_submit_duration_seconds", "carrier" => carrier.clone())
            .record(started.elapsed().as_secs_f64());
        metrics::counter!("rns_carrier_submits_total", "carrier" => carrier, "outcome" => outcome.label())
            .increment(1);
        self.observe(&outcome).await;
        if let Err(error) = self.settle(&message, &job, attempt, &outcome).await {
            tracing::warn!(carrier = %self.carrier, message = %job.message_id, %error, "recording the outcome failed; job will be redelivered");
            let _ = message
                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                .await;
        }
    }

    /// Records the outcome, then acks, terminates or naks the job.
    async fn settle(
        &self,
        message: &Message,
        job: &CarrierJob,
        attempt: u16,
        outcome: &SubmitOutcome,
    ) -> Result<(), FailoverError> {
        let last_attempt = attempt >= self.policy.max_deliver;
        match outcome {
            SubmitOutcome::Ambiguous { reason } => {
                self.failover
                    .record_attempt(&job.message_id, job.hop, attempt, reason, true)
                    .await?
            }
            SubmitOutcome::Transient { reason } => {
                self.failover
                    .record_attempt(&job.message_id, job.hop, attempt, reason, false)
                    .await?
            }
            SubmitOutcome::Rejected { reason } if job.fallback.is_some() => {
                let reason = format!("{}: {reason}", self.carrier);
                self.failover.fall_back(job, &reason, attempt).await?;
                if let Err(error) = terminate_with_reason(&self.client, message, &reason).await {
                    tracing::warn!(carrier = %self.carrier, message = %job.message_id, %error, "terminating a fallen-back job failed; its redelivery finishes the move");
                }
                return Ok(());
            }
            SubmitOutcome::Delivered { .. } | SubmitOutcome::Rejected { .. } => {}
        }
        self.results
            .record(
                &job.customer_id,
                message_ids::outcome(&job.message_id, job.hop, attempt),
                self.events(job, attempt, outcome),
            )
            .await?;
        let acknowledged = match outcome {
            SubmitOutcome::Delivered { .. } => message.ack().await,
            SubmitOutcome::Rejected { reason } => {
                terminate_with_reason(&self.client, message, reason)
                    .await
                    .map_err(Into::into)
            }
            // The last nak is immediate: the server then emits the MaxDeliver advisory
            // that fails the message over.
            _ if last_attempt => message.ack_with(AckKind::Nak(None)).await,
            _ => {
                message
                    .ack_with(AckKind::Nak(Some(self.policy.backoff(attempt))))
                    .await
            }
        };
        if let Err(error) = acknowledged {
            tracing::warn!(carrier = %self.carrier, message = %job.message_id, %error, "acknowledgement failed; job will be redelivered");
        }
        Ok(())
    }

    /// The circuit is open and this message is not the probe. It moves to the next
    /// carrier now if every earlier delivery here failed for sure (for a first
    /// delivery there is none); if any may have reached the carrier, it waits for
    /// the carrier instead, since another carrier could deliver it twice.
    async fn move_on_while_open(&self, message: &Message, job: &CarrierJob, attempt: u16) {
        let reason = format!("circuit open: {}", self.lock_breaker().reason());
        let earlier = self
            .failover
            .attempts(&job.message_id, job.hop, attempt.saturating_sub(1))
            .await;
        let safe_to_move = matches!(&earlier, Ok(record) if record.all_definite);
        let moved = if safe_to_move {
            self.failover.move_on(job, &reason, attempt).await
        } else {
            // Not submitted this time: a definite failure of this delivery.
            let recorded = self
                .failover
                .record_attempt(&job.message_id, job.hop, attempt, &reason, false)
                .await;
            let delay = self.policy.backoff(attempt);
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            if let Err(error) = recorded {
                tracing::warn!(carrier = %self.carrier, %error, "recording a refused delivery failed");
            }
            return;
        };
        let acknowledged = match moved {
            Ok(()) => terminate_with_reason(&self.client, message, &reason)
                .await
                .map_err(async_nats::Error::from),
            Err(error) => {
                tracing::warn!(carrier = %self.carrier, message = %job.message_id, %error, "moving on failed; job will be redelivered");
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await
            }
        };
        if let Err(error) = acknowledged {
            tracing::warn!(carrier = %self.carrier, %error, "acknowledgement failed");
        }
    }

    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, CircuitBreaker> {
        self.breaker.lock().expect("breaker lock is never poisoned")
    }

    async fn observe(&self, outcome: &SubmitOutcome) {
        let observation = Observation::of(outcome);
        let transition = self.lock_breaker().record(&observation, Instant::now());
        if let Some(state) = transition {
            match state {
                CircuitState::Open => {
                    tracing::warn!(carrier = %self.carrier, reason = %self.lock_breaker().reason(), "circuit opened")
                }
                CircuitState::Closed => tracing::info!(carrier = %self.carrier, "circuit closed"),
            }
            self.publish_circuit().await;
        }
    }

    async fn publish_circuit(&self) {
        let record = {
            let breaker = self.lock_breaker();
            CircuitRecord {
                carrier: self.carrier.clone(),
                state: breaker.state(),
                since_ms: rns_types::time::now_milliseconds(),
                reason: breaker.reason().to_owned(),
            }
        };
        metrics::gauge!("rns_carrier_circuit_state", "carrier" => self.carrier.to_string()).set(
            match record.state {
                CircuitState::Closed => 0.0,
                CircuitState::Open => 1.0,
            },
        );
        if let Err(error) = self.health.publish(&record).await {
            tracing::warn!(carrier = %self.carrier, %error, "publishing the circuit state failed");
        }
    }

    fn events(&self, job: &CarrierJob, attempt: u16, outcome: &SubmitOutcome) -> Vec<MessageEvent> {
        let now_ms = rns_types::time::now_milliseconds();
        let event = |kind, detail: String| MessageEvent {
            message_id: job.message_id,
            at_ms: now_ms,
            accepted_at_ms: job.accepted_at_ms,
            kind,
            carrier: Some(self.carrier.clone()),
            hop: job.hop,
            attempt,
            detail,
            points: Default::default(),
        };
        match outcome {
            SubmitOutcome::Delivered { carrier_reference } => vec![
                event(EventKind::Submitted, carrier_reference.clone()),
                MessageEvent {
                    points: job.settlement(true),
                    ..event(EventKind::Delivered, String::new())
                },
            ],
            SubmitOutcome::Rejected { reason } => {
                vec![MessageEvent {
                    points: job.settlement(false),
                    ..event(EventKind::Failed, format!("{}: {reason}", self.carrier))
                }]
            }
            retryable => vec![event(
                EventKind::AttemptFailed,
                reason_of(retryable).to_owned(),
            )],
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
