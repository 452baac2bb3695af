//! Scheduled sends (예약 발송): once at a time, or recurring by cron or interval.
//!
//! The schedule itself lives in JetStream (a message schedule on `sched.<id>` in the
//! `SCHEDULES` stream, which the server fires even when no RNS service runs); this
//! record, one per schedule in the customer's [`ScheduleBook`], is what the API shows
//! and what the dispatcher checks and updates at every firing.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::RequestId;

/// Where a schedule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleState {
    /// Waiting for its (first) firing.
    Scheduled,
    /// Recurring and has fired at least once, or a one-time send being dispatched.
    Running,
    /// Fired for the last time.
    Done,
    /// Cancelled; never fires again.
    Cancelled,
}

impl ScheduleState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ScheduleState::Scheduled => "scheduled",
            ScheduleState::Running => "running",
            ScheduleState::Done => "done",
            ScheduleState::Cancelled => "cancelled",
        }
    }

    /// Whether the schedule may still fire.
    pub fn is_live(&self) -> bool {
        matches!(self, ScheduleState::Scheduled | ScheduleState::Running)
    }
}

/// How a recurring schedule repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    /// A 6-field cron expression (second minute hour day month weekday).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Or a fixed interval, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every_seconds: Option<u64>,
    /// The IANA time zone the cron expression is read in.
    pub timezone: String,
    /// No firing after this time (epoch milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    /// No firing after this many (sent or failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
}

impl Recurrence {
    /// The `Nats-Schedule` header value.
    pub fn header(&self) -> String {
        match (&self.cron, self.every_seconds) {
            (Some(cron), _) => cron.clone(),
            (None, Some(seconds)) => format!("@every {seconds}s"),
            (None, None) => String::new(),
        }
    }
}

/// One failed firing (of a recurring schedule), kept for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedFiring {
    pub at_ms: u64,
    pub reason: String,
}

/// Failed firings kept per schedule.
pub const KEPT_FAILURES: usize = 10;

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub id: String,
    pub state: ScheduleState,
    pub created_at_ms: u64,
    /// One-time: when it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrence: Option<Recurrence>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_fire_at_ms: Option<u64>,
    pub recipients: usize,
    /// Points one firing costs.
    pub points: u64,
    /// Firings that created a request.
    pub fires: u64,
    /// Firings that could not be sent (recurring: points short).
    #[serde(default)]
    pub failed_fires: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailedFiring>,
    /// The request of a one-time schedule (its points were reserved at scheduling),
    /// or of the latest firing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request_id: Option<RequestId>,
    /// The `SCHEDULES` stream sequence of the latest firing handled, so a redelivered
    /// firing is counted once.
    #[serde(default)]
    pub last_sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled_at_ms: Option<u64>,
}

impl ScheduleRecord {
    /// A recurrence with a `count` has fired (sent or failed) that many times.
    pub fn firings_exhausted(&self) -> bool {
        self.recurrence
            .as_ref()
            .and_then(|recurrence| recurrence.count)
            .is_some_and(|count| self.fires + self.failed_fires >= u64::from(count))
    }

    /// A schedule just made, `scheduled`, of `recipients` costing `points` a firing,
    /// not fired yet; its time or recurrence is set by the caller.
    pub fn new(id: String, created_at_ms: u64, recipients: usize, points: u64) -> Self {
        Self {
            id,
            state: ScheduleState::Scheduled,
            created_at_ms,
            at_ms: None,
            recurrence: None,
            next_fire_at_ms: None,
            recipients,
            points,
            fires: 0,
            failed_fires: 0,
            failures: Vec::new(),
            last_request_id: None,
            last_sequence: 0,
            cancelled_at_ms: None,
        }
    }
}

/// A customer's schedules, stored as one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleBook {
    #[serde(default)]
    pub schedules: BTreeMap<String, ScheduleRecord>,
}

/// Most schedules a customer keeps; the oldest finished ones make room.
pub const MAX_SCHEDULES: usize = 1_000;

impl ScheduleBook {
    /// Room for one more: drops the oldest finished schedules beyond the limit.
    /// Returns false if every kept schedule is still live.
    pub fn make_room(&mut self) -> bool {
        while self.schedules.len() >= MAX_SCHEDULES {
            let oldest_finished = self
                .schedules
                .values()
                .find(|record| !record.state.is_live())
                .map(|record| record.id.clone());
            match oldest_finished {
                Some(id) => {
                    self.schedules.remove(&id);
                }
                None => return false,
            }
        }
        true
    }
}

impl RequestId {
    /// The request of firing `sequence` of recurring schedule `schedule`, at
    /// `at_ms`: the same every time that firing is handled, so a redelivered firing
    /// reserves, routes and publishes exactly as the first time.
    pub fn for_firing(schedule: &str, sequence: u64, at_ms: u64) -> Self {
        // FNV-1a, 128 bits: stable across processes and versions.
        let mut hash: u128 = 0x6c62272e07bb014262b821756295c58d;
        for byte in schedule.bytes().chain(sequence.to_be_bytes()) {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(0x0000000001000000000000000000013B);
        }
        Self::from_parts(at_ms, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_firing_has_one_request_id() {
        let first = RequestId::for_firing("01JSCHEDULE", 7, 1_000);
        assert_eq!(first, RequestId::for_firing("01JSCHEDULE", 7, 1_000));
        assert_ne!(first, RequestId::for_firing("01JSCHEDULE", 8, 1_000));
        assert_ne!(first, RequestId::for_firing("01JOTHER", 7, 1_000));
    }

    #[test]
    fn finished_schedules_make_room_and_live_ones_never_do() {
        let record = |id: usize, state| ScheduleRecord {
            state,
            ..ScheduleRecord::new(format!("{id:04}"), 0, 1, 1)
        };
        let mut book = ScheduleBook::default();
        for id in 0..MAX_SCHEDULES {
            let state = if id == 5 {
                ScheduleState::Done
            } else {
                ScheduleState::Scheduled
            };
            book.schedules.insert(format!("{id:04}"), record(id, state));
        }
        assert!(book.make_room());
        assert!(!book.schedules.contains_key("0005"));
        book.schedules
            .insert("9999".into(), record(9999, ScheduleState::Running));
        assert!(!book.make_room(), "every schedule is live");
    }
}
