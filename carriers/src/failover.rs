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
//!
//! A batch of jobs that reached MaxDeliver (its worker kept failing to settle it) is
//! split into single jobs on the same carrier ([`Failover::split`]), as a worker
//! splits a redelivered batch.
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{RawMessageErrorKind, Stream};
use async_nats::jetstream::AckKind;
use bytes::Bytes;
use futures::StreamExt;
use rns_nats::{publish_all, CustomerDirectory, HealthView, Outbound};
use rns_types::subjects::{
    failure_reason_key, message_ids, result_subject, FAILURE_REASONS_BUCKET,
};
use rns_types::wire::{
    CarrierJob, CarrierPayload, EventKind, MessageEvent, ResultBatch, TriedCarrier,
};
use rns_types::{CarrierCatalog, CarrierId, Channel, MessageId};
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

/// What the workers recorded about a message's deliveries on one hop.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Every delivery so far ended in a recorded, definite failure: the carrier
    /// refused it, or it was never submitted. Only then may the message move on.
    pub all_definite: bool,
    /// Some attempt timed out after sending: the carrier may have delivered it.
    pub ambiguous: bool,
    pub last_reason: Option<String>,
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

/// Publishes of a split awaited at once.
const SPLIT_WINDOW: usize = 64;

const AMBIGUOUS_SUFFIX: &str = ".ambiguous";
const NEXT_SUFFIX: &str = ".next";

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

    /// Records how delivery `attempt` of a message on `hop` failed. A worker records
    /// every failed delivery, so that a delivery without a record (its worker died
    /// mid-submit) is known to have an unknown outcome.
    pub async fn record_attempt(
        &self,
        message: &MessageId,
        hop: u16,
        attempt: u16,
        reason: &str,
        ambiguous: bool,
    ) -> Result<(), FailoverError> {
        let key = failure_reason_key(message, hop);
        if ambiguous {
            self.reasons
                .put(format!("{key}{AMBIGUOUS_SUFFIX}"), Bytes::from_static(b"1"))
                .await
                .map_err(nats)?;
            return Ok(());
        }
        self.reasons
            .put(format!("{key}.{attempt}"), Bytes::from(reason.to_owned()))
            .await
            .map_err(nats)?;
        Ok(())
    }

    /// What was recorded about attempts `1..=deliveries` of a message on `hop` (a job
    /// split from a batch counts the batch's submit as attempt 1).
    pub async fn attempts(
        &self,
        message: &MessageId,
        hop: u16,
        deliveries: u16,
    ) -> Result<AttemptRecord, FailoverError> {
        let key = failure_reason_key(message, hop);
        let ambiguous = self
            .reasons
            .get(format!("{key}{AMBIGUOUS_SUFFIX}"))
            .await
            .map_err(nats)?
            .is_some();
        let mut record = AttemptRecord {
            all_definite: !ambiguous,
            ambiguous,
            last_reason: None,
        };
        for attempt in 1..=deliveries {
            match self
                .reasons
                .get(format!("{key}.{attempt}"))
                .await
                .map_err(nats)?
            {
                Some(reason) => {
                    record.last_reason = Some(String::from_utf8_lossy(&reason).into_owned())
                }
                None => record.all_definite = false,
            }
        }
        Ok(record)
    }

    /// Whether the message already left this hop (moved on, or finally failed): a
    /// redelivery after a lost `+TERM` must not be submitted again.
    pub async fn has_left(&self, job: &CarrierJob) -> Result<bool, FailoverError> {
        let key = format!(
            "{}{NEXT_SUFFIX}",
            failure_reason_key(&job.message_id, job.hop)
        );
        Ok(self.reasons.get(key).await.map_err(nats)?.is_some())
    }

    /// The next carrier for a message leaving `job.carrier`, decided once: the first
    /// decision is stored (compare-and-set) and every later call, after a crash
    /// between publishing and removing the old job, repeats it instead of choosing
    /// anew, so a message never goes to two next carriers.
    async fn decide_next(
        &self,
        job: &CarrierJob,
        tried: &[TriedCarrier],
        straight_to_fallback: bool,
    ) -> Result<Option<CarrierId>, FailoverError> {
        let channel = self
            .catalog
            .channel_of(&job.carrier)
            .unwrap_or(Channel::Sms);
        let tried_carriers: Vec<_> = tried.iter().map(|entry| &entry.carrier).collect();
        let profile = self.directory.profile(&job.customer_id).await?;
        let is_open = |carrier: &CarrierId| self.health.is_open(carrier);
        let next = profile.and_then(|profile| {
            (!straight_to_fallback)
                .then(|| profile.next_carrier(channel, &self.catalog, &tried_carriers, is_open))
                .flatten()
                .or_else(|| {
                    // AlimTalk failed everywhere: fall back to SMS/LMS if asked to.
                    (channel == Channel::Alimtalk && job.fallback.is_some())
                        .then(|| profile.next_carrier(Channel::Sms, &self.catalog, &[], is_open))
                        .flatten()
                })
        });
        let key = format!(
            "{}{NEXT_SUFFIX}",
            failure_reason_key(&job.message_id, job.hop)
        );
        let decision = Bytes::from(next.as_ref().map(ToString::to_string).unwrap_or_default());
        match self.reasons.create(&key, decision).await {
            Ok(_) => Ok(next),
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                let stored = self
                    .reasons
                    .get(&key)
                    .await
                    .map_err(nats)?
                    .unwrap_or_default();
                let stored = String::from_utf8_lossy(&stored);
                Ok(CarrierId::parse(&stored).ok())
            }
            Err(error) => Err(nats(error)),
        }
    }

    /// Queues the jobs of a batch on their carrier again, each on its own (under the
    /// id a single job of that hop has), with `attempts_before` submits on this hop
    /// behind it. Returns once every one is durable.
    pub async fn split(
        &self,
        jobs: &[CarrierJob],
        attempts_before: u16,
    ) -> Result<(), FailoverError> {
        let outbound: Vec<Outbound> = jobs
            .iter()
            .map(|job| {
                Outbound::carrier_job(&CarrierJob {
                    attempts_before,
                    ..job.clone()
                })
            })
            .collect();
        publish_all(&self.jetstream, outbound, SPLIT_WINDOW).await?;
        Ok(())
    }

    /// Sends `job` to the next carrier, or records its final failure when none is
    /// left. Returns once both the event and the new job are durable.
    pub async fn move_on(
        &self,
        job: &CarrierJob,
        reason: &str,
        attempt: u16,
    ) -> Result<(), FailoverError> {
        self.leave(job, reason, attempt, false).await
    }

    /// For an AlimTalk message the carrier rejected for good (the recipient cannot
    /// receive AlimTalk): sends its SMS/LMS fallback at once, without trying the
    /// other AlimTalk carriers, which would reject it too.
    pub async fn fall_back(
        &self,
        job: &CarrierJob,
        reason: &str,
        attempt: u16,
    ) -> Result<(), FailoverError> {
        self.leave(job, reason, attempt, true).await
    }

    async fn leave(
        &self,
        job: &CarrierJob,
        reason: &str,
        attempt: u16,
        straight_to_fallback: bool,
    ) -> Result<(), FailoverError> {
        let tried = tried_with(job, reason);
        let next = self.decide_next(job, &tried, straight_to_fallback).await?;
        self.send_to(job, reason, attempt, next, tried).await
    }

    /// Publishes `job` to `next` as its next hop, or records its final failure when
    /// there is none, with the event that says why it left its carrier.
    async fn send_to(
        &self,
        job: &CarrierJob,
        reason: &str,
        attempt: u16,
        next: Option<CarrierId>,
        tried: Vec<TriedCarrier>,
    ) -> Result<(), FailoverError> {
        let now_ms = rns_types::time::now_milliseconds();
        let event = |kind, carrier, hop, attempt, detail| MessageEvent {
            message_id: job.message_id,
            at_ms: now_ms,
            accepted_at_ms: job.accepted_at_ms,
            kind,
            carrier: Some(carrier),
            hop,
            attempt,
            detail,
            points: Default::default(),
        };
        let mut outbound = Vec::with_capacity(2);
        let events = match &next {
            Some(next) => {
                let next_hop = job.hop + 1;
                let next_job = match job.fallback.as_ref().filter(|_| {
                    self.catalog.channel_of(next) != self.catalog.channel_of(&job.carrier)
                }) {
                    Some(fallback) => CarrierJob {
                        carrier: next.clone(),
                        hop: next_hop,
                        attempts_before: 0,
                        tried,
                        channel: Channel::Sms,
                        message_type: fallback.message_type,
                        subject: fallback.subject.clone(),
                        text: fallback.text.clone(),
                        price: fallback.price,
                        alimtalk: None,
                        fallback: None,
                        ..job.clone()
                    },
                    None => CarrierJob {
                        carrier: next.clone(),
                        hop: next_hop,
                        attempts_before: 0,
                        tried,
                        ..job.clone()
                    },
                };
                let leaving = if next_job.channel == job.channel {
                    EventKind::FailedOver
                } else {
                    EventKind::FellBack
                };
                outbound.push(Outbound::carrier_job(&next_job));
                vec![
                    event(
                        leaving,
                        job.carrier.clone(),
                        job.hop,
                        attempt,
                        format!("{reason}; moving to {next}"),
                    ),
                    event(EventKind::Routed, next.clone(), next_hop, 0, String::new()),
                ]
            }
            None => vec![MessageEvent {
                points: job.settlement(false),
                ..event(
                    EventKind::Failed,
                    job.carrier.clone(),
                    job.hop,
                    attempt,
                    every_carrier_failed(&tried),
                )
            }],
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
        let outcome = match &next {
            Some(next)
                if self.catalog.channel_of(next) != self.catalog.channel_of(&job.carrier) =>
            {
                "fell_back"
            }
            Some(_) => "failed_over",
            None => "failed",
        };
        metrics::counter!("rns_failovers_total", "from" => job.carrier.to_string(), "outcome" => outcome)
            .increment(1);
        match next {
            Some(next)
                if self.catalog.channel_of(&next) != self.catalog.channel_of(&job.carrier) =>
            {
                tracing::info!(message = %job.message_id, from = %job.carrier, to = %next, %reason, "fell back to SMS")
            }
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
                accepted_at_ms: job.accepted_at_ms,
                kind: EventKind::Failed,
                carrier: Some(job.carrier.clone()),
                hop: job.hop,
                attempt,
                detail,
                points: job.settlement(false),
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
        let job = match CarrierPayload::decode(&stored.payload) {
            Ok(CarrierPayload::One(job)) => *job,
            Ok(CarrierPayload::Batch(jobs)) => {
                // Workers split a batch on its second delivery, so this one's were
                // never settled: each goes on alone, attempt 1's outcome unknown.
                self.split(&jobs, 1).await?;
                return delete(&stream, advisory.stream_seq).await;
            }
            Err(error) => {
                tracing::error!(stream = %advisory.stream, sequence = advisory.stream_seq, %error, "undecodable job; deleting it");
                stream
                    .delete_message(advisory.stream_seq)
                    .await
                    .map_err(nats)?;
                return Ok(());
            }
        };
        let attempts = u16::try_from(advisory.deliveries)
            .unwrap_or(u16::MAX)
            .saturating_add(job.attempts_before);
        let record = self.attempts(&job.message_id, job.hop, attempts).await?;
        let last_reason = record
            .last_reason
            .unwrap_or_else(|| format!("no outcome after {attempts} deliveries"));
        if record.all_definite {
            let reason = format!("gave up after {attempts} attempts: {last_reason}");
            self.move_on(&job, &reason, attempts).await?;
        } else {
            let why = if record.ambiguous {
                "a submit timed out after sending"
            } else {
                "a worker stopped during a submit"
            };
            let reason =
                format!("outcome unknown after {attempts} attempts ({why}; last: {last_reason})");
            let retried_here = job.tried.iter().any(|entry| entry.carrier == job.carrier);
            if retried_here {
                let detail = format!(
                    "{}: {reason}; not sent to another carrier, which could deliver it twice",
                    job.carrier
                );
                self.fail(&job, detail, attempts).await?;
            } else {
                // Only this carrier can tell whether it delivered: ask it once more,
                // with the same client reference, as a new hop.
                let tried = tried_with(&job, &reason);
                self.send_to(&job, &reason, attempts, Some(job.carrier.clone()), tried)
                    .await?;
            }
        }
        delete(&stream, advisory.stream_seq).await
    }
}

/// Takes a job that moved on off its carrier's queue.
async fn delete(stream: &Stream<()>, sequence: u64) -> Result<(), FailoverError> {
    if let Err(error) = stream.delete_message(sequence).await {
        // Moving on is recorded; if the delete did not happen, a later advisory finds
        // the same message and republishes under the same ids.
        tracing::warn!(%error, "deleting a failed-over job failed");
    }
    Ok(())
}

/// The carriers `job` already failed on, plus its current one for `reason`.
fn tried_with(job: &CarrierJob, reason: &str) -> Vec<TriedCarrier> {
    let mut tried = job.tried.clone();
    tried.push(TriedCarrier {
        carrier: job.carrier.clone(),
        reason: reason.to_owned(),
    });
    tried
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
