//! Failover: moving a message from a carrier that failed it to the next carrier.
//!
//! Two paths lead here. A message that exhausted its deliveries on a carrier (every
//! attempt failed transiently, or a worker died holding it) makes the server emit a
//! MaxDeliver advisory, which the `ADVISORIES` stream keeps; [`Failover::run`] reads
//! it, loads the message from the carrier's work queue by sequence, moves it on and
//! only then deletes it from that queue. And a worker whose carrier's circuit is open
//! moves fresh messages on at once ([`Failover::move_on`]) and terminates them.
//!
//! Moving on publishes the job to the next carrier (hop + 1, `Nats-Msg-Id`
//! `job:<message>:<hop>`) and a `failed_over` event naming the reason and the next
//! carrier; with no carrier left it records a final `failed` naming every carrier
//! tried and why. A message with an ambiguous attempt (a timeout after sending) is
//! never moved: that carrier may have delivered it, and another would deliver it twice.
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::RawMessageErrorKind;
use async_nats::jetstream::AckKind;
use bytes::Bytes;
use futures::StreamExt;
use rns_nats::{publish_all, CustomerDirectory, HealthView, Outbound};
use rns_types::subjects::{
    carrier_subject, failure_reason_key, message_ids, result_subject, FAILURE_REASONS_BUCKET,
};
use rns_types::wire::{CarrierJob, EventKind, MessageEvent, ResultBatch, TriedCarrier};
use rns_types::{CarrierCatalog, Channel, MessageId};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// A failover step that must be retried.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("directory: {0}")]
    Directory(#[from] rns_nats::DirectoryError),
    #[error("{0}")]
    Publish(#[from] rns_nats::PublishFailed),
    #[error("nats: {0}")]
    Nats(String),
}

fn nats(error: impl ToString) -> FailoverError {
    FailoverError::Nats(error.to_string())
}

/// The part of a MaxDeliver advisory that failover reads.
#[derive(Debug, Deserialize)]
struct MaxDeliveriesAdvisory {
    stream: String,
    stream_seq: u64,
    deliveries: u64,
}

/// What a worker remembered about a message's attempts on one hop.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FailureMemory {
    pub last_reason: Option<String>,
    pub ambiguous: bool,
}

#[derive(Clone)]
pub struct Failover {
    jetstream: Context,
    directory: CustomerDirectory,
    catalog: CarrierCatalog,
    health: HealthView,
    reasons: kv::Store,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Failover").finish_non_exhaustive()
    }
}

const AMBIGUOUS_SUFFIX: &str = ".ambiguous";

impl Failover {
    pub async fn new(
        jetstream: Context,
        catalog: CarrierCatalog,
        health: HealthView,
    ) -> Result<Self, FailoverError> {
        let directory = CustomerDirectory::open(&jetstream).await?;
        let reasons = jetstream
            .get_key_value(FAILURE_REASONS_BUCKET)
            .await
            .map_err(nats)?;
        Ok(Self {
            jetstream,
            directory,
            catalog,
            health,
            reasons,
        })
    }

    /// Remembers why an attempt failed; `ambiguous` marks the message as possibly
    /// delivered by this carrier, for good.
    pub async fn remember_failure(
        &self,
        message: &MessageId,
        hop: u16,
        reason: &str,
        ambiguous: bool,
    ) -> Result<(), FailoverError> {
        let key = failure_reason_key(message, hop);
        if ambiguous {
            self.reasons
                .put(format!("{key}{AMBIGUOUS_SUFFIX}"), Bytes::from_static(b"1"))
                .await
                .map_err(nats)?;
        }
        self.reasons
            .put(key, Bytes::from(reason.to_owned()))
            .await
            .map_err(nats)?;
        Ok(())
    }

    pub async fn failure_memory(
        &self,
        message: &MessageId,
        hop: u16,
    ) -> Result<FailureMemory, FailoverError> {
        let key = failure_reason_key(message, hop);
        let last_reason = self
            .reasons
            .get(key.clone())
            .await
            .map_err(nats)?
            .map(|value| String::from_utf8_lossy(&value).into_owned());
        let ambiguous = self
            .reasons
            .get(format!("{key}{AMBIGUOUS_SUFFIX}"))
            .await
            .map_err(nats)?
            .is_some();
        Ok(FailureMemory {
            last_reason,
            ambiguous,
        })
    }

    /// Sends `job` to the next carrier, or records its final failure when none is
    /// left. Returns once both the event and the new job are durable.
    pub async fn move_on(
        &self,
        job: &CarrierJob,
        reason: &str,
        attempt: u16,
    ) -> Result<(), FailoverError> {
        let channel = self
            .catalog
            .channel_of(&job.carrier)
            .unwrap_or(Channel::Sms);
        let mut tried = job.tried.clone();
        tried.push(TriedCarrier {
            carrier: job.carrier.clone(),
            reason: reason.to_owned(),
        });
        let tried_carriers: Vec<_> = tried.iter().map(|entry| &entry.carrier).collect();
        let profile = self.directory.profile(&job.customer_id).await?;
        let next = profile.and_then(|profile| {
            profile.next_carrier(channel, &self.catalog, &tried_carriers, |carrier| {
                self.health.is_open(carrier)
            })
        });
        let now_ms = rns_types::time::now_milliseconds();
        let event = |kind, carrier, hop, attempt, detail| MessageEvent {
            message_id: job.message_id,
            at_ms: now_ms,
            kind,
            carrier: Some(carrier),
            hop,
            attempt,
            detail,
        };
        let mut outbound = Vec::with_capacity(2);
        let events = match &next {
            Some(next) => {
                let next_hop = job.hop + 1;
                let next_job = CarrierJob {
                    carrier: next.clone(),
                    hop: next_hop,
                    tried,
                    ..job.clone()
                };
                outbound.push(Outbound {
                    subject: carrier_subject(next),
                    message_id: message_ids::carrier_job(&job.message_id, next_hop),
                    payload: Bytes::from(
                        serde_json::to_vec(&next_job).expect("a carrier job serialises"),
                    ),
                });
                vec![
                    event(
                        EventKind::FailedOver,
                        job.carrier.clone(),
                        job.hop,
                        attempt,
                        format!("{reason}; moving to {next}"),
                    ),
                    event(EventKind::Routed, next.clone(), next_hop, 0, String::new()),
                ]
            }
            None => vec![event(
                EventKind::Failed,
                job.carrier.clone(),
                job.hop,
                attempt,
                every_carrier_failed(&tried),
            )],
        };
        let result = ResultBatch {
            customer_id: job.customer_id.clone(),
            messages: Vec::new(),
            events,
        };
        outbound.insert(
            0,
            Outbound {
                subject: result_subject(&job.customer_id),
                message_id: message_ids::failover(&job.message_id, job.hop),
                payload: Bytes::from(
                    serde_json::to_vec(&result).expect("a result batch serialises"),
                ),
            },
        );
        publish_all(&self.jetstream, outbound, 2).await?;
        match next {
            Some(next) => {
                tracing::info!(message = %job.message_id, from = %job.carrier, to = %next, %reason, "failed over")
            }
            None => tracing::info!(message = %job.message_id, %reason, "every carrier failed"),
        }
        Ok(())
    }

    /// Records a final failure without trying another carrier.
    async fn fail(
        &self,
        job: &CarrierJob,
        detail: String,
        attempt: u16,
    ) -> Result<(), FailoverError> {
        let result = ResultBatch {
            customer_id: job.customer_id.clone(),
            messages: Vec::new(),
            events: vec![MessageEvent {
                message_id: job.message_id,
                at_ms: rns_types::time::now_milliseconds(),
                kind: EventKind::Failed,
                carrier: Some(job.carrier.clone()),
                hop: job.hop,
                attempt,
                detail,
            }],
        };
        let outbound = Outbound {
            subject: result_subject(&job.customer_id),
            message_id: message_ids::failover(&job.message_id, job.hop),
            payload: Bytes::from(serde_json::to_vec(&result).expect("a result batch serialises")),
        };
        publish_all(&self.jetstream, [outbound], 1).await?;
        Ok(())
    }

    /// Handles MaxDeliver advisories until `shutdown`.
    pub async fn run(
        self,
        consumer: PullConsumer,
        shutdown: CancellationToken,
    ) -> Result<(), FailoverError> {
        let messages = consumer
            .stream()
            .max_messages_per_batch(64)
            .heartbeat(Duration::from_secs(5))
            .messages()
            .await
            .map_err(nats)?;
        tracing::info!("failover worker started");
        messages
            .take_until(shutdown.cancelled())
            .for_each_concurrent(16, |message| {
                let failover = &self;
                async move {
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => {
                            tracing::warn!(%error, "pull from ADVISORIES failed");
                            return;
                        }
                    };
                    let acknowledged = match failover.handle_advisory(&message.payload).await {
                        Ok(()) => message.ack().await,
                        Err(error) => {
                            tracing::warn!(%error, "failover failed; will retry");
                            message
                                .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                                .await
                        }
                    };
                    if let Err(error) = acknowledged {
                        tracing::warn!(%error, "acknowledging an advisory failed");
                    }
                }
            })
            .await;
        Ok(())
    }

    async fn handle_advisory(&self, payload: &[u8]) -> Result<(), FailoverError> {
        let Ok(advisory) = serde_json::from_slice::<MaxDeliveriesAdvisory>(payload) else {
            tracing::warn!("unreadable MaxDeliver advisory; ignoring it");
            return Ok(());
        };
        if !advisory.stream.starts_with("CARRIER_") {
            return Ok(());
        }
        let stream = self
            .jetstream
            .get_stream_no_info(&advisory.stream)
            .await
            .map_err(nats)?;
        let stored = match stream.get_raw_message(advisory.stream_seq).await {
            Ok(stored) => stored,
            // Already moved on: a repeated advisory.
            Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => return Ok(()),
            Err(error) => return Err(nats(error)),
        };
        let job: CarrierJob = match serde_json::from_slice(&stored.payload) {
            Ok(job) => job,
            Err(error) => {
                tracing::error!(stream = %advisory.stream, sequence = advisory.stream_seq, %error, "undecodable job; deleting it");
                stream
                    .delete_message(advisory.stream_seq)
                    .await
                    .map_err(nats)?;
                return Ok(());
            }
        };
        let attempts = u16::try_from(advisory.deliveries).unwrap_or(u16::MAX);
        let memory = self.failure_memory(&job.message_id, job.hop).await?;
        let last_reason = memory
            .last_reason
            .unwrap_or_else(|| format!("no outcome after {attempts} deliveries"));
        if memory.ambiguous {
            let detail = format!(
                "{}: outcome unknown after {attempts} attempts ({last_reason}); not sent to another carrier, which could deliver it twice",
                job.carrier
            );
            self.fail(&job, detail, attempts).await?;
        } else {
            let reason = format!("gave up after {attempts} attempts: {last_reason}");
            self.move_on(&job, &reason, attempts).await?;
        }
        match stream.delete_message(advisory.stream_seq).await {
            Ok(_) => Ok(()),
            Err(error) => {
                // Moving on is recorded; if the delete did not happen, a later
                // advisory finds the same message and republishes under the same ids.
                tracing::warn!(%error, "deleting a failed-over job failed");
                Ok(())
            }
        }
    }
}

/// `"every carrier failed: kt: <reason>; skt: <reason>"`.
fn every_carrier_failed(tried: &[TriedCarrier]) -> String {
    let parts: Vec<String> = tried
        .iter()
        .map(|entry| format!("{}: {}", entry.carrier, entry.reason))
        .collect();
    format!("every carrier failed: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use rns_types::CarrierId;

    use super::*;

    #[test]
    fn a_final_failure_names_every_carrier_and_its_reason() {
        let tried = vec![
            TriedCarrier {
                carrier: CarrierId::parse("kt").unwrap(),
                reason: "gave up after 5 attempts: 503 outage".into(),
            },
            TriedCarrier {
                carrier: CarrierId::parse("skt").unwrap(),
                reason: "circuit open".into(),
            },
        ];
        assert_eq!(
            every_carrier_failed(&tried),
            "every carrier failed: kt: gave up after 5 attempts: 503 outage; skt: circuit open"
        );
    }
}
