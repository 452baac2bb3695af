//! Pipelined JetStream publishing with de-duplication ids.
//!
//! Every output of RNS is published with a `Nats-Msg-Id` (see
//! [`rns_types::subjects::message_ids`]) so a redelivered input republishes without
//! creating a second output. Publishes are sent without waiting and their
//! acknowledgements awaited in a bounded window (`FuturesUnordered`), which is about
//! ten times faster than awaiting each one; the caller learns of success only when
//! every acknowledgement has arrived, and of the first failure otherwise.
//!
//! The client allows [`MAX_ACKS_IN_FLIGHT`] acknowledgements outstanding and makes a
//! publish wait for a free slot; a slot is freed only when its acknowledgement future
//! is polled. Tasks that each hold unpolled acknowledgements while waiting for a slot
//! deadlock, so the windows of all concurrent callers together must stay below it
//! (the dispatcher checks `concurrency × publish_window` at start).
use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use rns_types::subjects::{carrier_lane_subject, message_ids};
use rns_types::wire::CarrierJob;

/// Acknowledgements a JetStream context lets be outstanding (async-nats's default).
pub const MAX_ACKS_IN_FLIGHT: usize = 5_000;

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub subject: String,
    pub message_id: String,
    pub payload: Bytes,
}

impl Outbound {
    /// `job` on its own to its carrier's work queue, under the id of its message and
    /// hop (`job:<message>:<hop>`): every publisher of a single job uses this, so a
    /// repeat of any of them is the same publish.
    pub fn carrier_job(job: &CarrierJob) -> Self {
        Self {
            subject: carrier_lane_subject(&job.carrier, job.priority),
            message_id: message_ids::carrier_job(&job.message_id, job.hop),
            payload: Bytes::from(rns_types::compact::jobs::encode_job(job)),
        }
    }
}

/// A publish that JetStream did not acknowledge.
#[derive(Debug, Clone, thiserror::Error)]
#[error("publish to {subject} was not acknowledged: {reason}")]
pub struct PublishFailed {
    pub subject: String,
    pub reason: String,
    /// No answer came (the acknowledgement timed out or its connection broke): the
    /// server may have stored the message, and publishing it again under the same
    /// `Nats-Msg-Id` within the stream's duplicate window tells which.
    pub unanswered: bool,
}

/// Publishes every message and returns once JetStream acknowledged all of them,
/// keeping at most `window` acknowledgements outstanding.
pub async fn publish_all(
    jetstream: &Context,
    messages: impl IntoIterator<Item = Outbound>,
    window: usize,
) -> Result<(), PublishFailed> {
    let window = window.max(1);
    let mut pending = FuturesUnordered::new();
    for message in messages {
        if pending.len() >= window {
            if let Some(acknowledged) = pending.next().await {
                acknowledged?;
            }
        }
        let subject = message.subject.clone();
        let publish = PublishMessage::build()
            .payload(message.payload)
            .message_id(&message.message_id);
        let acknowledgement = jetstream
            .send_publish(message.subject, publish)
            .await
            .map_err(|error| PublishFailed {
                subject: subject.clone(),
                reason: error.to_string(),
                unanswered: false,
            })?;
        pending.push(async move {
            acknowledgement
                .await
                .map(|_| ())
                .map_err(|error| PublishFailed {
                    subject,
                    reason: error.to_string(),
                    unanswered: matches!(
                        error.kind(),
                        PublishErrorKind::TimedOut | PublishErrorKind::BrokenPipe
                    ),
                })
        });
    }
    while let Some(acknowledged) = pending.next().await {
        acknowledged?;
    }
    Ok(())
}

/// A message schedule (nats-server 2.12+; recurring ones 2.14+): stored on `subject`
/// (one schedule per subject; publishing again replaces it, purging cancels it) and
/// published by the server to its target on `pattern` — `@at <RFC 3339>`,
/// `@every <n>s`, or a 6-field cron expression read in `time_zone` — even if no RNS
/// service runs then. Schedule and target subjects must be in one stream that allows
/// schedules, and no consumer may cover the schedule subject.
#[derive(Debug, Clone)]
pub struct MessageSchedule {
    pub subject: String,
    pub pattern: String,
    pub time_zone: Option<String>,
}

/// Publishes `message` (its subject is the target) under `schedule`. A recurring
/// schedule must not carry a `Nats-Msg-Id`: give an empty `message.message_id`.
pub async fn publish_schedule(
    jetstream: &Context,
    schedule: MessageSchedule,
    message: Outbound,
) -> Result<(), PublishFailed> {
    let failed = |error: &dyn std::fmt::Display| PublishFailed {
        subject: schedule.subject.clone(),
        reason: error.to_string(),
        unanswered: false,
    };
    let mut publish = PublishMessage::build()
        .payload(message.payload)
        .header("Nats-Schedule", schedule.pattern.as_str())
        .header("Nats-Schedule-Target", message.subject.as_str());
    if !message.message_id.is_empty() {
        publish = publish.message_id(&message.message_id);
    }
    if let Some(zone) = &schedule.time_zone {
        publish = publish.header("Nats-Schedule-Time-Zone", zone.as_str());
    }
    jetstream
        .send_publish(schedule.subject.clone(), publish)
        .await
        .map_err(|error| failed(&error))?
        .await
        .map_err(|error| failed(&error))?;
    Ok(())
}

/// Publishes `message` as a one-time message schedule at `at` (RFC 3339, whole
/// seconds) on `schedule_subject`; see [`publish_schedule`].
pub async fn publish_scheduled(
    jetstream: &Context,
    schedule_subject: String,
    message: Outbound,
    at: &str,
) -> Result<(), PublishFailed> {
    let schedule = MessageSchedule {
        subject: schedule_subject,
        pattern: format!("@at {at}"),
        time_zone: None,
    };
    publish_schedule(jetstream, schedule, message).await
}
