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
//! tried and why.
//!
//! A message with an ambiguous attempt (a timeout after sending) never leaves its
//! carrier, on any path: that carrier may have delivered it, and another would deliver
//! it twice. When its deliveries run out it is queued on the same carrier again (a new
//! hop, the same client reference) carrying the time it first became ambiguous
//! ([`CarrierJob::ambiguous_since_ms`]), so later hops, circuit-open moves and
//! restarts know it too; the carrier answers a repeat for sure (a careful carrier
//! recognises the reference). Once the receipt deadline passes without a sure answer
//! the message ends `unknown`, charged ([`Failover::give_up_unknown`]).
//!
//! The server publishes a MaxDeliver advisory once; an outage of the stream that
//! keeps it can lose it, and the job would stay in its queue for good. A sweep
//! ([`Failover::sweep`]) finds such jobs by the lane consumers' ack floors and moves
//! them on as their advisory would have.
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

/// Most jobs left at MaxDeliver one lane's sweep takes.
const SWEPT_AT_ONCE: usize = 256;

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
    /// When an attempt on this hop first timed out after sending (ms since the
    /// epoch): from then on the carrier may have delivered it.
    pub ambiguous_since_ms: Option<u64>,
    pub last_reason: Option<String>,
    /// The first delivery without a recorded failure: it succeeded, or its worker
    /// stopped before recording, or before submitting at all.
    pub first_unrecorded: Option<u16>,
    /// The latest delivery that claimed the submit, at a carrier that cannot
    /// recognise a repeat ([`Failover::claim_submit`]).
    pub submit_claimed: Option<u16>,
}

impl AttemptRecord {
    /// Since when the message's outcome at `job`'s carrier is unknown: from an
    /// earlier hop on the same carrier (the job says so) or from this one.
    pub fn ambiguous_since(&self, job: &CarrierJob) -> Option<u64> {
        match (job.ambiguous_since_ms, self.ambiguous_since_ms) {
            (Some(earlier), Some(here)) => Some(earlier.min(here)),
            (earlier, here) => earlier.or(here),
        }
    }

    /// Whether the message may move to another carrier: every delivery on this hop
    /// failed for sure, and none on an earlier hop on this carrier went unanswered.
    pub fn may_leave(&self, job: &CarrierJob) -> bool {
        self.all_definite && self.ambiguous_since(job).is_none()
    }

    /// At a carrier whose submits are claimed first: whether the message may be
    /// submitted again, because no earlier delivery may have reached the carrier —
    /// each failed for sure or never claimed the submit (its worker stopped while it
    /// waited), and none on an earlier hop went unanswered.
    pub fn may_submit_again(&self, job: &CarrierJob) -> bool {
        if self.ambiguous_since(job).is_some() {
            return false;
        }
        match (self.first_unrecorded, self.submit_claimed) {
            (None, _) | (Some(_), None) => true,
            (Some(unrecorded), Some(claimed)) => claimed < unrecorded,
        }
    }
}

/// Whose a submit is ([`Failover::claim_submit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitClaim {
    /// This delivery's to make.
    Mine,
    /// A later delivery of the job claimed it.
    Later,
    /// Another copy of the job claimed the same attempt: it is that copy's.
    Copy,
}

/// The attempt a submit claim names, and the delivery that made it (absent in
/// claims stored before they named it); 0 when unreadable.
fn claimed_attempt(claim: &str) -> (u16, Option<&str>) {
    let mut fields = claim.split_whitespace();
    let attempt = fields
        .next()
        .and_then(|attempt| attempt.parse().ok())
        .unwrap_or(0);
    (attempt, fields.next())
}

#[derive(Clone)]
pub struct Failover {
    jetstream: Context,
    directory: CustomerDirectory,
    catalog: CarrierCatalog,
    health: HealthView,
    reasons: kv::Store,
    /// How long a message whose outcome at its carrier is unknown keeps being asked
    /// there before it ends `unknown`.
    receipt_deadline: Duration,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Failover").finish_non_exhaustive()
    }
}

/// Publishes of a split awaited at once.
const SPLIT_WINDOW: usize = 64;

const AMBIGUOUS_SUFFIX: &str = ".ambiguous";
const SUBMITTING_SUFFIX: &str = ".submitting";
const NEXT_SUFFIX: &str = ".next";

impl Failover {
    pub async fn new(
        jetstream: Context,
        catalog: CarrierCatalog,
        health: HealthView,
        receipt_deadline: Duration,
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
            receipt_deadline,
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
            // The first unanswered attempt's time stays: the deadline runs from it.
            let now = rns_types::time::now_milliseconds().to_string();
            return match self
                .reasons
                .create(format!("{key}{AMBIGUOUS_SUFFIX}"), Bytes::from(now))
                .await
            {
                Ok(_) => Ok(()),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => Ok(()),
                Err(error) => Err(nats(error)),
            };
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
        let ambiguous_since_ms = self
            .reasons
            .get(format!("{key}{AMBIGUOUS_SUFFIX}"))
            .await
            .map_err(nats)?
            .map(|since| {
                String::from_utf8_lossy(&since)
                    .parse()
                    .unwrap_or_else(|_| rns_types::time::now_milliseconds())
            });
        let submit_claimed = self
            .reasons
            .get(format!("{key}{SUBMITTING_SUFFIX}"))
            .await
            .map_err(nats)?
            .map(|claimed| claimed_attempt(&String::from_utf8_lossy(&claimed)).0)
            .filter(|claimed| *claimed > 0);
        let mut record = AttemptRecord {
            all_definite: ambiguous_since_ms.is_none(),
            ambiguous_since_ms,
            last_reason: None,
            first_unrecorded: None,
            submit_claimed,
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
                None => {
                    record.all_definite = false;
                    record.first_unrecorded.get_or_insert(attempt);
                }
            }
        }
        Ok(record)
    }

    /// Claims delivery `attempt` of a message on `hop` as the one submitting it, just
    /// before it is submitted to a carrier that cannot recognise a repeat: the claim
    /// holds the latest attempt that submitted and the `delivery` that made it (the
    /// job's stream sequence and delivery count), so a later delivery that finds no
    /// claim of an earlier one knows that one never reached the carrier (its worker
    /// stopped while it waited) and submits it after all. Not [`SubmitClaim::Mine`]
    /// when a later delivery claimed it first, or another copy of the job (a second
    /// batch holding it) claimed the same attempt: this one must not submit.
    pub async fn claim_submit(
        &self,
        message: &MessageId,
        hop: u16,
        attempt: u16,
        delivery: &str,
    ) -> Result<SubmitClaim, FailoverError> {
        let key = format!("{}{SUBMITTING_SUFFIX}", failure_reason_key(message, hop));
        let value = Bytes::from(format!("{attempt} {delivery}"));
        // The usual case, a first claim, is one write; a read only when one exists.
        loop {
            match self.reasons.create(key.clone(), value.clone()).await {
                Ok(_) => return Ok(SubmitClaim::Mine),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(error) => return Err(nats(error)),
            }
            let Some(entry) = self.reasons.entry(key.clone()).await.map_err(nats)? else {
                continue;
            };
            let text = String::from_utf8_lossy(&entry.value);
            let (claimed, by) = claimed_attempt(&text);
            if claimed == attempt {
                // Mine, asked again after an answer that did not arrive.
                return Ok(match by {
                    Some(by) if by != delivery => SubmitClaim::Copy,
                    _ => SubmitClaim::Mine,
                });
            }
            if claimed > attempt {
                return Ok(SubmitClaim::Later);
            }
            match self
                .reasons
                .update(key.clone(), value.clone(), entry.revision)
                .await
            {
                Ok(_) => return Ok(SubmitClaim::Mine),
                // Another delivery claimed it in between: read again.
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => {}
                Err(error) => return Err(nats(error)),
            }
        }
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
        // Too late for another carrier (or a fallback) to try.
        if job.has_expired(rns_types::time::now_milliseconds()) {
            return self.expire(job, attempt).await;
        }
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
            trace: job.trace,
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
        outbound.insert(
            0,
            self.result(job, message_ids::failover(&job.message_id, job.hop), events),
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
        metrics::counter!(crate::metric_names::FAILOVERS_TOTAL, "from" => job.carrier.to_string(), "outcome" => outcome)
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

    /// A message whose outcome at its carrier is unknown (since `ambiguous_since_ms`,
    /// or from now when a worker died mid-submit) and whose deliveries ran out: queued
    /// on the same carrier again as a new hop, under the same client reference, until
    /// the receipt deadline passes; then it ends `unknown`.
    async fn stay_or_give_up(
        &self,
        job: &CarrierJob,
        reason: &str,
        attempt: u16,
        ambiguous_since_ms: Option<u64>,
    ) -> Result<(), FailoverError> {
        let now_ms = rns_types::time::now_milliseconds();
        let since_ms = ambiguous_since_ms.unwrap_or(now_ms);
        let deadline_ms = since_ms.saturating_add(duration_milliseconds(self.receipt_deadline));
        if now_ms >= deadline_ms {
            let detail = format!(
                "{}: {reason}; no sure answer within the receipt deadline of {}s, and never sent to another carrier, which could deliver it twice",
                job.carrier,
                self.receipt_deadline.as_secs()
            );
            return self.give_up_unknown(job, detail, attempt).await;
        }
        let staying = CarrierJob {
            carrier: job.carrier.clone(),
            hop: job.hop + 1,
            attempts_before: 0,
            tried: tried_with(job, reason),
            ambiguous_since_ms: Some(since_ms),
            ..job.clone()
        };
        let event = MessageEvent {
            message_id: job.message_id,
            at_ms: now_ms,
            accepted_at_ms: job.accepted_at_ms,
            kind: EventKind::AttemptFailed,
            carrier: Some(job.carrier.clone()),
            hop: job.hop,
            attempt,
            detail: format!(
                "{reason}; asking {} again under the same reference, since only it can tell",
                job.carrier
            ),
            points: Default::default(),
            trace: job.trace,
        };
        let outbound = [
            self.result(
                job,
                message_ids::failover(&job.message_id, job.hop),
                vec![event],
            ),
            Outbound::carrier_job(&staying),
        ];
        publish_all(&self.jetstream, outbound, 2).await?;
        metrics::counter!(crate::metric_names::FAILOVERS_TOTAL, "from" => job.carrier.to_string(), "outcome" => "stayed")
            .increment(1);
        tracing::info!(message = %job.message_id, carrier = %job.carrier, %reason, "outcome unknown; asking the same carrier again");
        Ok(())
    }

    /// Ends a message `unknown`: charged, since its carrier may have delivered it.
    pub async fn give_up_unknown(
        &self,
        job: &CarrierJob,
        detail: String,
        attempt: u16,
    ) -> Result<(), FailoverError> {
        self.end(job, EventKind::Unknown, attempt, detail).await
    }

    /// Ends a message whose validity ran out before it was submitted: `expired`,
    /// refunded.
    pub async fn expire(&self, job: &CarrierJob, attempt: u16) -> Result<(), FailoverError> {
        let detail = crate::worker::expired_reason(job);
        self.end(job, EventKind::Expired, attempt, detail).await
    }

    /// Records the final event `kind` of a message that stays on its carrier's hop,
    /// with its points (spent only for an outcome the carrier may have delivered).
    async fn end(
        &self,
        job: &CarrierJob,
        kind: EventKind,
        attempt: u16,
        detail: String,
    ) -> Result<(), FailoverError> {
        let event = MessageEvent {
            message_id: job.message_id,
            at_ms: rns_types::time::now_milliseconds(),
            accepted_at_ms: job.accepted_at_ms,
            kind,
            carrier: Some(job.carrier.clone()),
            hop: job.hop,
            attempt,
            detail,
            points: job.settlement(kind == EventKind::Unknown),
            trace: job.trace,
        };
        let outbound = self.result(
            job,
            message_ids::failover(&job.message_id, job.hop),
            vec![event],
        );
        publish_all(&self.jetstream, [outbound], 1).await?;
        metrics::counter!(crate::metric_names::FAILOVERS_TOTAL, "from" => job.carrier.to_string(), "outcome" => kind.as_str())
            .increment(1);
        Ok(())
    }

    /// The RESULTS publish of one event of `job`'s message.
    fn result(&self, job: &CarrierJob, message_id: String, events: Vec<MessageEvent>) -> Outbound {
        let mut result = ResultBatch {
            customer_id: job.customer_id.clone(),
            messages: Vec::new(),
            events,
        };
        result.share_traces();
        Outbound {
            subject: result_subject(&job.customer_id),
            message_id,
            payload: Bytes::from(result.encode()),
        }
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
        self.exhausted(&advisory.stream, advisory.stream_seq, advisory.deliveries)
            .await
    }

    /// Finds, every `every` until `shutdown`, the jobs left at MaxDeliver in the
    /// carriers' queues (`lanes`: stream and lane consumer) whose advisory never came
    /// — the server publishes it once, into a stream that an outage (a node
    /// restarting, its leader moving) can make unavailable just then — and moves them
    /// on as their advisory would have. A job is taken only when the sweep before
    /// found it too, so an advisory on its way is never raced.
    pub async fn sweep(
        self,
        lanes: Vec<(String, String)>,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut seen_before = std::collections::HashSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let mut seen = std::collections::HashSet::new();
            for (stream, consumer) in &lanes {
                let left = match self.left_at_max_deliver(stream, consumer).await {
                    Ok(left) => left,
                    Err(error) => {
                        tracing::warn!(%stream, %consumer, %error, "looking for jobs left at MaxDeliver failed");
                        continue;
                    }
                };
                for (sequence, deliveries) in left {
                    if !seen_before.contains(&(stream.clone(), sequence)) {
                        seen.insert((stream.clone(), sequence));
                        continue;
                    }
                    tracing::warn!(%stream, sequence, "a job left at MaxDeliver had no advisory; moving it on");
                    metrics::counter!(crate::metric_names::FAILOVER_SWEPT_TOTAL, "stream" => stream.clone())
                        .increment(1);
                    if let Err(error) = self.exhausted(stream, sequence, deliveries).await {
                        tracing::warn!(%stream, sequence, %error, "moving a job left at MaxDeliver failed; the next sweep tries again");
                        seen.insert((stream.clone(), sequence));
                    }
                }
            }
            seen_before = seen;
        }
    }

    /// The jobs of `consumer`'s lane still in `stream` at or below the consumer's
    /// ack floor — or all of them while it has none to deliver and none in flight —
    /// (at most [`SWEPT_AT_ONCE`]), each with the consumer's MaxDeliver: a job acked
    /// or terminated is gone from a work queue, and one awaiting a (re)delivery is
    /// above the floor and counted as pending or in flight, so what is left there ran
    /// out of deliveries.
    async fn left_at_max_deliver(
        &self,
        stream: &str,
        consumer: &str,
    ) -> Result<Vec<(u64, u64)>, FailoverError> {
        let mut lane: PullConsumer = self
            .jetstream
            .get_consumer_from_stream(consumer, stream)
            .await
            .map_err(nats)?;
        let info = lane.info().await.map_err(nats)?;
        let floor = info.ack_floor.stream_sequence;
        let deliveries = u64::try_from(info.config.max_deliver).unwrap_or(u64::MAX);
        let subject = info.config.filter_subject.clone();
        let idle = info.num_pending == 0 && info.num_ack_pending == 0;
        let bound = if idle { u64::MAX } else { floor };
        if bound == 0 || subject.is_empty() {
            return Ok(Vec::new());
        }
        let stream = self
            .jetstream
            .get_stream_no_info(stream)
            .await
            .map_err(nats)?;
        let mut left = Vec::new();
        let mut from = 1;
        while left.len() < SWEPT_AT_ONCE {
            let stored = stream
                .raw_message_builder()
                .sequence(from)
                .next_by_subject(subject.clone())
                .send()
                .await;
            let sequence = match stored {
                Ok(stored) => stored.sequence,
                Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => break,
                Err(error) => return Err(nats(error)),
            };
            if sequence > bound {
                break;
            }
            left.push((sequence, deliveries));
            from = sequence + 1;
        }
        Ok(left)
    }

    /// Moves on the job at `sequence` of `stream_name` after its `deliveries` ran
    /// out, then deletes it there; nothing when it is gone already.
    async fn exhausted(
        &self,
        stream_name: &str,
        sequence: u64,
        deliveries: u64,
    ) -> Result<(), FailoverError> {
        let stream = self
            .jetstream
            .get_stream_no_info(stream_name)
            .await
            .map_err(nats)?;
        let stored = match stream.get_raw_message(sequence).await {
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
                return delete(&stream, sequence).await;
            }
            Err(error) => {
                tracing::error!(stream = %stream_name, sequence, %error, "undecodable job; deleting it");
                stream.delete_message(sequence).await.map_err(nats)?;
                return Ok(());
            }
        };
        let attempts = u16::try_from(deliveries)
            .unwrap_or(u16::MAX)
            .saturating_add(job.attempts_before);
        let record = self.attempts(&job.message_id, job.hop, attempts).await?;
        let last_reason = record
            .last_reason
            .clone()
            .unwrap_or_else(|| format!("no outcome after {attempts} deliveries"));
        if record.may_leave(&job) {
            let reason = format!("gave up after {attempts} attempts: {last_reason}");
            self.move_on(&job, &reason, attempts).await?;
        } else {
            let why = if record.ambiguous_since(&job).is_some() {
                "a submit went unanswered"
            } else {
                "a worker stopped during a submit"
            };
            let reason =
                format!("outcome unknown after {attempts} attempts ({why}; last: {last_reason})");
            self.stay_or_give_up(&job, &reason, attempts, record.ambiguous_since(&job))
                .await?;
        }
        delete(&stream, sequence).await
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
    // A message asked again on the same carrier keeps one entry for it, the latest.
    if tried.last().is_some_and(|last| last.carrier == job.carrier) {
        tried.pop();
    }
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

fn duration_milliseconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
