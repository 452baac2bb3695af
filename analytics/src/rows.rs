//! Row types of the ClickHouse tables and their conversion from wire messages.
//!
//! Enum columns travel as their `Int8` codes (RowBinary); the codes are defined next to
//! the enum text in [`rns_results::schema`] and tested against a real server.
use clickhouse::Row;
use rns_types::wire::{EventKind, MessageEvent, MessageRecord, MessageStatus};
use rns_types::{Channel, CustomerId, MessageType};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct MessageRow {
    pub customer_id: String,
    pub request_id: String,
    pub message_id: String,
    pub accepted_at: u32,
    pub accepted_at_ms: u64,
    pub channel: i8,
    pub message_type: i8,
    pub from_number: String,
    pub to_number: String,
    pub subject: String,
    pub text: String,
    pub schedule_id: String,
    pub points_reserved: u32,
    /// The SMS/LMS an AlimTalk message falls back to; empty without one.
    pub fallback_type: String,
    pub fallback_subject: String,
    pub fallback_text: String,
}

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
pub struct EventRow {
    pub customer_id: String,
    pub request_id: String,
    pub message_id: String,
    pub at: u32,
    pub at_ms: u64,
    pub ordinal: u32,
    pub kind: i8,
    pub status: i8,
    pub carrier: String,
    pub hop: u16,
    pub attempt: u16,
    pub detail: String,
    pub accepted_at_ms: u64,
    pub points_reserved: u32,
    pub points_spent: u32,
    /// The RESULTS stream sequence of the message the event came in (0: unknown).
    pub results_sequence: u64,
}

fn seconds(milliseconds: u64) -> u32 {
    u32::try_from(milliseconds / 1_000).unwrap_or(u32::MAX)
}

pub fn channel_code(channel: Channel) -> i8 {
    match channel {
        Channel::Sms => 1,
        Channel::Alimtalk => 2,
    }
}

pub fn message_type_code(message_type: MessageType) -> i8 {
    match message_type {
        MessageType::Sms => 1,
        MessageType::Lms => 2,
        MessageType::Mms => 3,
        MessageType::Alimtalk => 4,
    }
}

pub fn event_kind_code(kind: EventKind) -> i8 {
    match kind {
        EventKind::Routed => 1,
        EventKind::AttemptFailed => 2,
        EventKind::Submitted => 3,
        EventKind::Delivered => 4,
        EventKind::Failed => 5,
        EventKind::FailedOver => 6,
        EventKind::Blocked => 7,
        EventKind::FellBack => 8,
        EventKind::Unknown => 9,
        EventKind::Expired => 10,
        EventKind::Undeliverable => 11,
    }
}

pub fn status_code(status: MessageStatus) -> i8 {
    match status {
        MessageStatus::Queued => 1,
        MessageStatus::Submitted => 2,
        MessageStatus::Delivered => 3,
        MessageStatus::Failed => 4,
        MessageStatus::Blocked => 5,
        MessageStatus::Unknown => 6,
        MessageStatus::Expired => 7,
        MessageStatus::Undeliverable => 8,
    }
}

impl MessageRow {
    pub fn new(customer: &CustomerId, record: &MessageRecord) -> Self {
        Self {
            customer_id: customer.to_string(),
            request_id: record.message_id.request_id().to_string(),
            message_id: record.message_id.to_string(),
            accepted_at: seconds(record.accepted_at_ms),
            accepted_at_ms: record.accepted_at_ms,
            channel: channel_code(record.channel),
            message_type: message_type_code(record.message_type),
            from_number: record.from.to_string(),
            to_number: record.to.to_string(),
            subject: record.subject.clone().unwrap_or_default(),
            text: record.text.clone(),
            schedule_id: record.schedule_id.clone().unwrap_or_default(),
            points_reserved: record.points_reserved,
            fallback_type: record
                .fallback
                .as_ref()
                .map(|fallback| fallback.message_type.to_string())
                .unwrap_or_default(),
            fallback_subject: record
                .fallback
                .as_ref()
                .and_then(|fallback| fallback.subject.clone())
                .unwrap_or_default(),
            fallback_text: record
                .fallback
                .as_ref()
                .map(|fallback| fallback.text.clone())
                .unwrap_or_default(),
        }
    }
}

impl EventRow {
    /// `event`, which came in the RESULTS message at `results_sequence`.
    pub fn new(customer: &CustomerId, event: &MessageEvent, results_sequence: u64) -> Self {
        Self {
            customer_id: customer.to_string(),
            request_id: event.message_id.request_id().to_string(),
            message_id: event.message_id.to_string(),
            at: seconds(event.at_ms),
            at_ms: event.at_ms,
            ordinal: event.ordinal(),
            kind: event_kind_code(event.kind),
            status: status_code(event.kind.status()),
            carrier: event
                .carrier
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            hop: event.hop,
            attempt: event.attempt,
            detail: event.detail.clone(),
            accepted_at_ms: event.accepted_at_ms,
            points_reserved: event.points.reserved,
            points_spent: event.points.spent,
            results_sequence,
        }
    }
}
