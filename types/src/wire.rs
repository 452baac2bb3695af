//! The JSON messages carried by each stream.
//!
//! - `send.<customer>` carries a [`SendRequest`]: one accepted HTTP request with all
//!   its recipients; message ids are derived (`<request id>-<index>`), not carried.
//! - `carrier.<name>` carries a [`CarrierJob`]: one message for one recipient, routed
//!   to that carrier, self-contained so a worker needs no other lookup.
//! - `result.<customer>` carries a [`ResultBatch`]: message records (once, when
//!   routed) and timeline events, ingested by analytics into ClickHouse.
//!
//! JSON keeps the streams readable with `nats stream view`; every field is explicit.
use serde::{Deserialize, Serialize};

use crate::carrier::{CarrierId, Channel};
use crate::content::MessageType;
use crate::ids::{CustomerId, MessageId, RequestId};
use crate::phone::PhoneNumber;

/// One accepted send request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    pub request_id: RequestId,
    pub customer_id: CustomerId,
    pub accepted_at_ms: u64,
    pub channel: Channel,
    pub message_type: MessageType,
    pub from: PhoneNumber,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    pub recipients: Vec<PhoneNumber>,
}

/// One message on its way to one carrier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarrierJob {
    pub message_id: MessageId,
    pub customer_id: CustomerId,
    pub accepted_at_ms: u64,
    pub carrier: CarrierId,
    /// 1 for the first carrier; each failover to another carrier adds one.
    pub hop: u16,
    pub message_type: MessageType,
    pub from: PhoneNumber,
    pub to: PhoneNumber,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    /// Carriers this message already failed on, in order, with their reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tried: Vec<TriedCarrier>,
}

/// A carrier a message failed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriedCarrier {
    pub carrier: CarrierId,
    pub reason: String,
}

/// Where a message stands, as a customer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    /// Accepted and waiting in a carrier's queue.
    Queued,
    /// Handed to a carrier, which accepted it; no delivery report yet.
    Submitted,
    /// The carrier reported delivery to the handset. Final.
    Delivered,
    /// No carrier could deliver it. Final.
    Failed,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 4] = [
        MessageStatus::Queued,
        MessageStatus::Submitted,
        MessageStatus::Delivered,
        MessageStatus::Failed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Submitted => "submitted",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, MessageStatus::Delivered | MessageStatus::Failed)
    }
}

/// One entry of a message's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The dispatcher chose a carrier and queued the message for it.
    Routed,
    /// A submit attempt failed transiently; the same carrier will be tried again.
    AttemptFailed,
    /// The carrier failed for good (or its circuit is open); the message moves to the
    /// next carrier, named in the detail.
    FailedOver,
    /// The carrier accepted the message.
    Submitted,
    /// The carrier reported delivery.
    Delivered,
    /// The message finally failed.
    Failed,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Routed,
        EventKind::AttemptFailed,
        EventKind::FailedOver,
        EventKind::Submitted,
        EventKind::Delivered,
        EventKind::Failed,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Routed => "routed",
            EventKind::AttemptFailed => "attempt_failed",
            EventKind::FailedOver => "failed_over",
            EventKind::Submitted => "submitted",
            EventKind::Delivered => "delivered",
            EventKind::Failed => "failed",
        }
    }

    /// The status a message has right after this event.
    pub fn status(&self) -> MessageStatus {
        match self {
            EventKind::Routed | EventKind::AttemptFailed | EventKind::FailedOver => {
                MessageStatus::Queued
            }
            EventKind::Submitted => MessageStatus::Submitted,
            EventKind::Delivered => MessageStatus::Delivered,
            EventKind::Failed => MessageStatus::Failed,
        }
    }

    fn rank(&self) -> u32 {
        match self {
            EventKind::Routed => 0,
            EventKind::AttemptFailed => 1,
            EventKind::Submitted => 2,
            EventKind::FailedOver => 3,
            EventKind::Delivered | EventKind::Failed => 4,
        }
    }
}

/// A timeline event of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub message_id: MessageId,
    pub at_ms: u64,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<CarrierId>,
    pub hop: u16,
    pub attempt: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl MessageEvent {
    /// Orders a message's events independently of clocks: by hop, then attempt, then
    /// kind, with final states above everything. The current status of a message is
    /// the status of its event with the highest ordinal, however often an event was
    /// recorded or in what order events arrived.
    pub fn ordinal(&self) -> u32 {
        if self.kind.status().is_final() {
            return u32::MAX;
        }
        u32::from(self.hop) * 1_000_000 + u32::from(self.attempt) * 10 + self.kind.rank()
    }
}

/// What a message is, recorded once when it is routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub message_id: MessageId,
    pub accepted_at_ms: u64,
    pub channel: Channel,
    pub message_type: MessageType,
    pub from: PhoneNumber,
    pub to: PhoneNumber,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
}

/// A batch of records and events of one customer, bound for ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultBatch {
    pub customer_id: CustomerId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<MessageEvent>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, hop: u16, attempt: u16) -> MessageEvent {
        MessageEvent {
            message_id: RequestId::generate().message_id(0),
            at_ms: 0,
            kind,
            carrier: None,
            hop,
            attempt,
            detail: String::new(),
        }
    }

    #[test]
    fn final_events_outrank_everything_and_later_hops_outrank_earlier_ones() {
        assert!(
            event(EventKind::Delivered, 1, 1).ordinal()
                > event(EventKind::Submitted, 9, 99).ordinal()
        );
        assert!(
            event(EventKind::Routed, 2, 0).ordinal() > event(EventKind::Submitted, 1, 5).ordinal()
        );
        assert!(
            event(EventKind::Submitted, 1, 1).ordinal()
                > event(EventKind::AttemptFailed, 1, 1).ordinal()
        );
        assert!(
            event(EventKind::AttemptFailed, 1, 2).ordinal()
                > event(EventKind::Submitted, 1, 1).ordinal()
        );
    }

    #[test]
    fn send_request_wire_format_is_stable() {
        let request = SendRequest {
            request_id: RequestId::parse("01JDXYZ0000000000000000000").unwrap(),
            customer_id: CustomerId::parse("acme").unwrap(),
            accepted_at_ms: 1,
            channel: Channel::Sms,
            message_type: MessageType::Sms,
            from: PhoneNumber::parse("0212345678").unwrap(),
            subject: None,
            text: "hi".into(),
            recipients: vec![PhoneNumber::parse("01012345678").unwrap()],
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"request_id":"01JDXYZ0000000000000000000","customer_id":"acme","accepted_at_ms":1,"channel":"sms","message_type":"sms","from":"0212345678","text":"hi","recipients":["01012345678"]}"#
        );
        assert_eq!(serde_json::from_str::<SendRequest>(&json).unwrap(), request);
    }
}
