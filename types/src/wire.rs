//! The JSON messages carried by each stream.
//!
//! - `send.<customer>` carries a [`SendRequest`]: one accepted HTTP request with all
//!   its recipients; message ids are derived (`<request id>-<index>`), not carried.
//! - `carrier.<name>` carries a [`CarrierJob`]: one message for one recipient, routed
//!   to that carrier, self-contained so a worker needs no other lookup; or, from the
//!   dispatcher, a JSON array of up to a few hundred of them that one request routed
//!   to that carrier (see [`CarrierPayload`]).
//! - `result.<customer>` carries a [`ResultBatch`]: message records (once, when
//!   routed) and timeline events, ingested by analytics into ClickHouse.
//!
//! JSON keeps the streams readable with `nats stream view`; every field is explicit.
use serde::{Deserialize, Serialize};

use crate::alimtalk::AlimTalk;
use crate::carrier::{CarrierId, Channel};
use crate::content::MessageType;
use crate::ids::{CustomerId, MessageId, RequestId};
use crate::phone::PhoneNumber;
use crate::points::Prices;
use crate::priority::Priority;
use crate::routing::Weights;

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn is_zero_attempts(value: &u16) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// One accepted send request.
///
/// Message `i` is `recipients[i]`; blocked recipients (opted out) follow, so message
/// `recipients.len() + j` is `blocked[j]`. Text, type and subject are the request's
/// unless a recipient has its own (a template filled with that recipient's variables).
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
    pub recipients: Vec<Recipient>,
    /// Recipients who opted out of this sender: recorded as `blocked`, never sent,
    /// never charged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<PhoneNumber>,
    /// The prices in force when the request was accepted; every charge and refund of
    /// its messages uses these.
    #[serde(default)]
    pub prices: Prices,
    /// Object-store names of the MMS images, stored once for the whole request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alimtalk: Option<AlimTalk>,
    /// For AlimTalk: what to send by SMS/LMS if AlimTalk finally fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub advertisement: bool,
    /// The recipients consented to advertisements at night.
    #[serde(default, skip_serializing_if = "is_false")]
    pub night_consent: bool,
    /// The scheduled send this request is (a firing of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// The customer's weights for the channel as the gateway read them when it
    /// accepted a send for now: the dispatcher routes by them without reading the
    /// profile again, so a weight change applies to every request accepted after it.
    /// Absent on held and scheduled sends, which route by the weights of their time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Weights>,
    /// Its lane at every carrier (see [`Priority`]).
    #[serde(default, skip_serializing_if = "Priority::is_normal")]
    pub priority: Priority,
    /// How long after `accepted_at_ms` (a firing's time, for a scheduled send) its
    /// messages may still be submitted; a message not submitted by then ends
    /// `expired` and is refunded. None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_for_ms: Option<u64>,
    /// The request's trace (see [`crate::trace`]); its jobs and events carry it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
    /// Its texts are delivered but never recorded: the message records (RESULTS,
    /// ClickHouse, the results API) hold [`WITHHELD_TEXT`] in their place. For
    /// one-time codes and anything else no one should read back.
    #[serde(default, skip_serializing_if = "is_false")]
    pub confidential: bool,
}

/// What a confidential request's records hold instead of its subjects and texts.
pub const WITHHELD_TEXT: &str = "[withheld]";

/// One recipient of a request, with what was filled in for them. Reads the earlier
/// wire form too (a bare number), so requests queued by an older gateway still
/// dispatch after an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipient {
    pub to: PhoneNumber,
    /// Points reserved for this message: its price, or the fallback's if higher.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub points: u32,
    /// This recipient's own text and type (a template filled with their variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<MessageType>,
    /// This recipient's own fallback text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_text: Option<String>,
}

/// A recipient's current wire form, read straight from the map (an untagged enum
/// of both forms buffered every recipient of every SEND message before reading it).
#[derive(Deserialize)]
struct FullRecipient {
    to: PhoneNumber,
    #[serde(default)]
    points: u32,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    message_type: Option<MessageType>,
    #[serde(default)]
    fallback_text: Option<String>,
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Forms;
        impl<'de> serde::de::Visitor<'de> for Forms {
            type Value = Recipient;

            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a recipient: an object with 'to', or a bare phone number")
            }

            fn visit_str<E: serde::de::Error>(self, number: &str) -> Result<Recipient, E> {
                PhoneNumber::parse(number)
                    .map(|to| Recipient::new(to, 0))
                    .map_err(E::custom)
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Recipient, A::Error> {
                let full =
                    FullRecipient::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Recipient {
                    to: full.to,
                    points: full.points,
                    text: full.text,
                    message_type: full.message_type,
                    fallback_text: full.fallback_text,
                })
            }
        }
        deserializer.deserialize_any(Forms)
    }
}

impl Recipient {
    pub fn new(to: PhoneNumber, points: u32) -> Self {
        Self {
            to,
            points,
            text: None,
            message_type: None,
            fallback_text: None,
        }
    }
}

/// The SMS/LMS sent when an AlimTalk message finally fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    pub message_type: MessageType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    /// Its price, fixed at acceptance.
    #[serde(default)]
    pub price: u32,
}

impl SendRequest {
    /// An SMS request with default prices and nothing else set; callers set the rest.
    pub fn sms(
        request_id: RequestId,
        customer_id: CustomerId,
        from: PhoneNumber,
        text: impl Into<String>,
        recipients: Vec<Recipient>,
    ) -> Self {
        Self {
            accepted_at_ms: request_id.made_at_ms(),
            request_id,
            customer_id,
            channel: Channel::Sms,
            message_type: MessageType::Sms,
            from,
            subject: None,
            text: text.into(),
            recipients,
            blocked: Vec::new(),
            prices: Prices::default(),
            images: Vec::new(),
            alimtalk: None,
            fallback: None,
            advertisement: false,
            night_consent: false,
            schedule_id: None,
            weights: None,
            priority: Priority::Normal,
            valid_for_ms: None,
            trace: None,
            confidential: false,
        }
    }

    /// Every message of the request: recipients first, then blocked ones.
    pub fn message_count(&self) -> usize {
        self.recipients.len() + self.blocked.len()
    }

    /// Points reserved for the whole request.
    pub fn points(&self) -> u64 {
        self.recipients
            .iter()
            .map(|recipient| u64::from(recipient.points))
            .sum()
    }

    /// The type and text of `recipient`'s message.
    pub fn content_of<'a>(&'a self, recipient: &'a Recipient) -> (MessageType, &'a str) {
        (
            recipient.message_type.unwrap_or(self.message_type),
            recipient.text.as_deref().unwrap_or(&self.text),
        )
    }

    /// The fallback of `recipient`, with their own text if they have one.
    pub fn fallback_of(&self, recipient: &Recipient) -> Option<Fallback> {
        let fallback = self.fallback.as_ref()?;
        Some(Fallback {
            text: recipient
                .fallback_text
                .clone()
                .unwrap_or_else(|| fallback.text.clone()),
            ..fallback.clone()
        })
    }
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
    /// The channel of this hop (an AlimTalk message falling back travels as SMS).
    #[serde(default)]
    pub channel: Channel,
    /// Points reserved for this message when it was accepted.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub points_reserved: u32,
    /// The price of this message as it is now (its type), spent on delivery.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub price: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alimtalk: Option<AlimTalk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Submits on this hop before this message was queued on its own: 1 for a job
    /// split from a batch after the batch's submit (its attempts go on from 2), else 0.
    #[serde(default, skip_serializing_if = "is_zero_attempts")]
    pub attempts_before: u16,
    /// When a submit of this message to this carrier first went unanswered (a
    /// timeout after sending), in ms since the epoch. From then on the message never
    /// leaves this carrier, which alone can tell whether it delivered; it is asked
    /// again under the same client reference until it answers for sure or the
    /// receipt deadline passes, and then the message ends `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambiguous_since_ms: Option<u64>,
    /// Its lane at every carrier it goes to (see [`Priority`]).
    #[serde(default, skip_serializing_if = "Priority::is_normal")]
    pub priority: Priority,
    /// When it may no longer be submitted (ms since the epoch): it then ends
    /// `expired`, refunded, unless a submit may already have reached a carrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    /// The trace of the request it came from (see [`crate::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
}

impl CarrierJob {
    /// An SMS job on its first hop, costing `points` (reserved and priced), with
    /// nothing else set; callers set the rest.
    pub fn sms(
        message_id: MessageId,
        customer_id: CustomerId,
        carrier: CarrierId,
        from: PhoneNumber,
        to: PhoneNumber,
        text: impl Into<String>,
        points: u32,
    ) -> Self {
        Self {
            accepted_at_ms: message_id.request_id().made_at_ms(),
            message_id,
            customer_id,
            carrier,
            hop: 1,
            message_type: MessageType::Sms,
            from,
            to,
            subject: None,
            text: text.into(),
            tried: Vec::new(),
            channel: Channel::Sms,
            points_reserved: points,
            price: points,
            images: Vec::new(),
            alimtalk: None,
            fallback: None,
            attempts_before: 0,
            ambiguous_since_ms: None,
            priority: Priority::Normal,
            expires_at_ms: None,
            trace: None,
        }
    }
}

/// What one `carrier.<name>` message holds.
///
/// Failover, retries and moves work on single jobs. The dispatcher publishes a
/// request's jobs for one carrier as batches (a JSON array) to spare a JetStream
/// message per recipient; a worker submits a batch once and queues any job whose
/// outcome is not final on its own, as a [`CarrierJob`] with `attempts_before: 1`.
#[derive(Debug, Clone, PartialEq)]
pub enum CarrierPayload {
    One(Box<CarrierJob>),
    Batch(Vec<CarrierJob>),
}

impl CarrierPayload {
    /// Reads a compact job or batch ([`crate::compact::jobs`]), or their JSON: a job
    /// (an object) or a batch (an array of jobs), as queued before compact jobs.
    pub fn decode(payload: &[u8]) -> Result<Self, crate::compact::DecodeError> {
        use crate::compact::jobs;
        if let Some(body) = crate::compact::compact_body_after(payload, jobs::JOBS_MAGIC)? {
            return jobs::decode_jobs(body);
        }
        Ok(if is_json_array(payload) {
            serde_json::from_slice(payload).map(Self::Batch)?
        } else {
            serde_json::from_slice(payload).map(|job| Self::One(Box::new(job)))?
        })
    }

    /// How many jobs it holds.
    pub fn job_count(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Batch(jobs) => jobs.len(),
        }
    }

    /// The jobs, in order.
    pub fn into_jobs(self) -> Vec<CarrierJob> {
        match self {
            Self::One(job) => vec![*job],
            Self::Batch(jobs) => jobs,
        }
    }
}

/// What one `send.<customer>` message holds: one request, or several requests of one
/// customer that the gateway gathered into one message (a JSON array of them, made
/// with a [`JsonArray`] of the requests it had encoded already).
#[derive(Debug, Clone, PartialEq)]
pub enum SendPayload {
    One(Box<SendRequest>),
    Gathered(Vec<SendRequest>),
}

impl SendPayload {
    /// Reads a request (a JSON object) or gathered requests (a JSON array).
    pub fn decode(payload: &[u8]) -> Result<Self, serde_json::Error> {
        if is_json_array(payload) {
            serde_json::from_slice(payload).map(Self::Gathered)
        } else {
            serde_json::from_slice(payload).map(|request| Self::One(Box::new(request)))
        }
    }

    /// The requests, in order.
    pub fn into_requests(self) -> Vec<SendRequest> {
        match self {
            Self::One(request) => vec![*request],
            Self::Gathered(requests) => requests,
        }
    }
}

/// Whether a payload is a JSON array (the many-valued form of [`SendPayload`] and
/// [`CarrierPayload`]) rather than one object.
fn is_json_array(payload: &[u8]) -> bool {
    payload
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|byte| *byte == b'[')
}

/// A JSON array spliced from values each already encoded, so a message of many is
/// built without encoding them again: the gateway's gathered SEND messages, the
/// dispatcher's batches of carrier jobs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonArray {
    bytes: Vec<u8>,
    values: usize,
}

impl JsonArray {
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            bytes: Vec::with_capacity(bytes + 2),
            values: 0,
        }
    }

    /// Appends one value, given as its JSON encoding.
    pub fn push(&mut self, encoded: &[u8]) {
        self.bytes.push(if self.values == 0 { b'[' } else { b',' });
        self.bytes.extend_from_slice(encoded);
        self.values += 1;
    }

    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.values
    }

    pub fn is_empty(&self) -> bool {
        self.values == 0
    }

    /// How long the array is so far, in bytes (without its closing bracket).
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The array's bytes; it is empty again.
    pub fn take(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        if self.values == 0 {
            bytes.push(b'[');
        }
        bytes.push(b']');
        self.values = 0;
        bytes
    }
}

impl CarrierJob {
    /// Whether it may no longer be submitted at `now_ms`: its validity ran out and no
    /// earlier submit may have reached a carrier (such a one was submitted).
    pub fn has_expired(&self, now_ms: u64) -> bool {
        self.ambiguous_since_ms.is_none()
            && self
                .expires_at_ms
                .is_some_and(|expires_at_ms| now_ms >= expires_at_ms)
    }

    /// The points a final event of this job settles: everything reserved, of which
    /// the price is spent if it was delivered.
    pub fn settlement(&self, delivered: bool) -> Points {
        Points {
            reserved: self.points_reserved,
            spent: if delivered {
                self.price.min(self.points_reserved)
            } else {
                0
            },
        }
    }
}

/// The points a final event settles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Points {
    pub reserved: u32,
    pub spent: u32,
}

impl Points {
    pub fn is_none(&self) -> bool {
        self.reserved == 0 && self.spent == 0
    }
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
    /// Never sent: the recipient opted out of this sender. Final, never charged.
    Blocked,
    /// A carrier may have taken it, but never said so for sure before the receipt
    /// deadline: it may or may not have reached the handset. Final and charged,
    /// since the carrier may have delivered (and billed) it; never sent elsewhere.
    Unknown,
    /// Not delivered in time: not submitted within the validity the send gave it,
    /// or the carrier's receipt says its validity ran out before the handset took it.
    /// Final, refunded.
    Expired,
    /// The carrier accepted it, and its receipt says the handset could not be
    /// reached (switched off for good, no such subscriber). Final, refunded.
    Undeliverable,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 8] = [
        MessageStatus::Queued,
        MessageStatus::Submitted,
        MessageStatus::Delivered,
        MessageStatus::Failed,
        MessageStatus::Blocked,
        MessageStatus::Unknown,
        MessageStatus::Expired,
        MessageStatus::Undeliverable,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            MessageStatus::Queued => "queued",
            MessageStatus::Submitted => "submitted",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
            MessageStatus::Blocked => "blocked",
            MessageStatus::Unknown => "unknown",
            MessageStatus::Expired => "expired",
            MessageStatus::Undeliverable => "undeliverable",
        }
    }

    pub fn is_final(&self) -> bool {
        !matches!(self, MessageStatus::Queued | MessageStatus::Submitted)
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
    /// The recipient opted out; nothing was sent.
    Blocked,
    /// AlimTalk finally failed and the message continues as SMS/LMS.
    FellBack,
    /// The carrier never said for sure whether it took the message before the
    /// receipt deadline (see [`MessageStatus::Unknown`]).
    Unknown,
    /// Its validity ran out before it was submitted, or before the handset took it
    /// (see [`MessageStatus::Expired`]).
    Expired,
    /// The carrier's receipt says the handset could not be reached (see
    /// [`MessageStatus::Undeliverable`]).
    Undeliverable,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Routed,
        EventKind::AttemptFailed,
        EventKind::FailedOver,
        EventKind::Submitted,
        EventKind::Delivered,
        EventKind::Failed,
        EventKind::Blocked,
        EventKind::FellBack,
        EventKind::Unknown,
        EventKind::Expired,
        EventKind::Undeliverable,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Routed => "routed",
            EventKind::AttemptFailed => "attempt_failed",
            EventKind::FailedOver => "failed_over",
            EventKind::Submitted => "submitted",
            EventKind::Delivered => "delivered",
            EventKind::Failed => "failed",
            EventKind::Blocked => "blocked",
            EventKind::FellBack => "fell_back",
            EventKind::Unknown => "unknown",
            EventKind::Expired => "expired",
            EventKind::Undeliverable => "undeliverable",
        }
    }

    /// The status a message has right after this event.
    pub fn status(&self) -> MessageStatus {
        match self {
            EventKind::Routed
            | EventKind::AttemptFailed
            | EventKind::FailedOver
            | EventKind::FellBack => MessageStatus::Queued,
            EventKind::Submitted => MessageStatus::Submitted,
            EventKind::Delivered => MessageStatus::Delivered,
            EventKind::Failed => MessageStatus::Failed,
            EventKind::Blocked => MessageStatus::Blocked,
            EventKind::Unknown => MessageStatus::Unknown,
            EventKind::Expired => MessageStatus::Expired,
            EventKind::Undeliverable => MessageStatus::Undeliverable,
        }
    }

    fn rank(&self) -> u32 {
        match self {
            EventKind::Routed => 0,
            EventKind::AttemptFailed => 1,
            EventKind::Submitted => 2,
            EventKind::FailedOver | EventKind::FellBack => 3,
            EventKind::Delivered
            | EventKind::Failed
            | EventKind::Blocked
            | EventKind::Unknown
            | EventKind::Expired
            | EventKind::Undeliverable => 4,
        }
    }
}

/// A timeline event of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub message_id: MessageId,
    pub at_ms: u64,
    /// When the message was accepted, so latency needs no join (0 in events written
    /// before it was recorded).
    #[serde(default, skip_serializing_if = "is_zero_milliseconds")]
    pub accepted_at_ms: u64,
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier: Option<CarrierId>,
    pub hop: u16,
    pub attempt: u16,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// On a final event: the points it settles.
    #[serde(default, skip_serializing_if = "Points::is_none")]
    pub points: Points,
    /// The trace of the message's request (see [`crate::trace`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<crate::trace::TraceContext>,
}

fn is_zero_milliseconds(value: &u64) -> bool {
    *value == 0
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
    /// Points reserved for the message when it was accepted (0 when blocked).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub points_reserved: u32,
    /// The scheduled send the message's request is (a firing of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,
    /// For AlimTalk: the SMS/LMS it becomes if Kakao cannot deliver it, so the
    /// message can show what finally reached the handset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// A batch of records and events of one customer, bound for ClickHouse.
///
/// Events of one trace in a row carry it once ([`ResultBatch::share_traces`]): the
/// first has it, those after it that share it leave it out, and a reader gives each
/// event the last trace before it ([`ResultBatch::event_traces`]). A bulk request's
/// events all share one trace, so this keeps RESULTS as small as it was without.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultBatch {
    pub customer_id: CustomerId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<MessageRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<MessageEvent>,
}

impl ResultBatch {
    /// The RESULTS payload of the batch: compact ([`crate::compact`]), or its JSON
    /// while [`crate::compact::writes_compact`] says so.
    pub fn encode(&self) -> Vec<u8> {
        if crate::compact::writes_compact() {
            crate::compact::encode_results(self)
        } else {
            serde_json::to_vec(self).expect("a result batch serialises")
        }
    }

    /// A RESULTS payload, compact or JSON ([`crate::compact`]).
    pub fn decode(payload: &[u8]) -> Result<Self, crate::compact::DecodeError> {
        crate::compact::decode_results(payload)
    }

    /// Leaves out each event's trace that the event before it already gave.
    pub fn share_traces(&mut self) {
        share_traces(&mut self.events);
    }

    /// Each event's trace: its own, else the last one before it.
    pub fn event_traces(&self) -> impl Iterator<Item = Option<crate::trace::TraceContext>> + '_ {
        let mut last = None;
        self.events.iter().map(move |event| {
            if event.trace.is_some() {
                last = event.trace;
            }
            last
        })
    }
}

/// The events of a [`ResultBatch`] without its message records: what a reader that
/// acts on events alone (points, webhooks) decodes. The records — each with its
/// text, numbers and ids to parse — are skipped unread.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResultEvents {
    pub customer_id: CustomerId,
    #[serde(default)]
    pub events: Vec<MessageEvent>,
}

impl ResultEvents {
    /// The events of a RESULTS payload, compact or JSON, its records left unread
    /// ([`crate::compact`]).
    pub fn decode(payload: &[u8]) -> Result<Self, crate::compact::DecodeError> {
        crate::compact::decode_result_events(payload)
    }
}

/// Leaves out each event's trace that the event before it already gave (see
/// [`ResultBatch`]).
pub fn share_traces(events: &mut [MessageEvent]) {
    let mut last = None;
    for event in events {
        if event.trace.is_some() {
            if event.trace == last {
                event.trace = None;
            } else {
                last = event.trace;
            }
        }
    }
}

/// Gives each event without a trace the last one before it: the inverse of
/// [`share_traces`], before events are regrouped.
pub fn restore_traces(events: &mut [MessageEvent]) {
    let mut last = None;
    for event in events {
        match event.trace {
            Some(trace) => last = Some(trace),
            None => event.trace = last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, hop: u16, attempt: u16) -> MessageEvent {
        MessageEvent {
            message_id: RequestId::generate().message_id(0),
            at_ms: 0,
            accepted_at_ms: 0,
            kind,
            carrier: None,
            hop,
            attempt,
            detail: String::new(),
            points: Points::default(),
            trace: None,
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
            recipients: vec![Recipient::new(
                PhoneNumber::parse("01012345678").unwrap(),
                1,
            )],
            blocked: Vec::new(),
            prices: Prices::default(),
            images: Vec::new(),
            alimtalk: None,
            fallback: None,
            advertisement: false,
            night_consent: false,
            schedule_id: None,
            weights: None,
            priority: Priority::Normal,
            valid_for_ms: None,
            trace: None,
            confidential: false,
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"request_id":"01JDXYZ0000000000000000000","customer_id":"acme","accepted_at_ms":1,"channel":"sms","message_type":"sms","from":"0212345678","text":"hi","recipients":[{"to":"01012345678","points":1}],"prices":{"sms":1,"lms":3,"mms":6,"alimtalk":1}}"#
        );
        assert_eq!(serde_json::from_str::<SendRequest>(&json).unwrap(), request);
    }

    #[test]
    fn requests_queued_before_recipients_carried_content_still_decode() {
        let earlier = r#"{"request_id":"01JDXYZ0000000000000000000","customer_id":"acme","accepted_at_ms":1,"channel":"sms","message_type":"sms","from":"0212345678","text":"hi","recipients":["01012345678"]}"#;
        let request: SendRequest = serde_json::from_str(earlier).unwrap();
        assert_eq!(request.recipients[0].to.as_str(), "01012345678");
        assert_eq!(request.points(), 0, "nothing was reserved for it");
        let read = |recipient: &str| serde_json::from_str::<Recipient>(recipient);
        let full = read(r#"{"to":"01012345678","points":3,"text":"안녕","later":1}"#).unwrap();
        assert_eq!((full.to.as_str(), full.points), ("01012345678", 3));
        assert_eq!(full.text.as_deref(), Some("안녕"));
        for bad in [
            r#""nope""#,
            r#"{"points":1}"#,
            r#"{"to":"nope"}"#,
            "7",
            "[]",
        ] {
            assert!(read(bad).is_err(), "{bad} was read");
        }
    }

    fn job(to: &str) -> CarrierJob {
        CarrierJob::sms(
            RequestId::generate().message_id(0),
            CustomerId::parse("acme").unwrap(),
            CarrierId::parse("kt").unwrap(),
            PhoneNumber::parse("0212345678").unwrap(),
            PhoneNumber::parse(to).unwrap(),
            "hi",
            1,
        )
    }

    #[test]
    fn a_send_message_is_one_request_or_gathered_ones_spliced_as_encoded() {
        let earlier = r#"{"request_id":"01JDXYZ0000000000000000000","customer_id":"acme","accepted_at_ms":1,"channel":"sms","message_type":"sms","from":"0212345678","text":"hi","recipients":["01012345678"]}"#;
        let one = SendPayload::decode(earlier.as_bytes()).unwrap();
        assert!(matches!(one, SendPayload::One(_)));
        let mut gathered = JsonArray::default();
        assert_eq!(gathered.clone().take(), b"[]");
        gathered.push(earlier.as_bytes());
        gathered.push(earlier.as_bytes());
        assert_eq!((gathered.len(), gathered.is_empty()), (2, false));
        let bytes = gathered.take();
        assert!(gathered.is_empty(), "taken");
        let SendPayload::Gathered(requests) = SendPayload::decode(&bytes).unwrap() else {
            panic!("an array reads as gathered requests");
        };
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0], one.into_requests()[0]);
        assert!(
            SendPayload::decode(b" [1]").is_err(),
            "an array of something else"
        );
    }

    #[test]
    fn a_carrier_message_is_one_job_or_a_batch() {
        let one = job("01012345678");
        let encoded = serde_json::to_vec(&one).unwrap();
        assert!(
            !String::from_utf8_lossy(&encoded).contains("attempts_before"),
            "a job that was never in a batch reads as before"
        );
        assert_eq!(
            CarrierPayload::decode(&encoded).unwrap(),
            CarrierPayload::One(Box::new(one.clone()))
        );
        let split = CarrierJob {
            attempts_before: 1,
            ..job("01087654321")
        };
        let batch = vec![one, split];
        let encoded = serde_json::to_vec(&batch).unwrap();
        let decoded = CarrierPayload::decode(&[b" \n".as_slice(), &encoded].concat()).unwrap();
        assert_eq!(decoded.into_jobs(), batch);
        assert!(CarrierPayload::decode(b"[{}]").is_err());
        assert!(CarrierPayload::decode(b"").is_err());
    }

    #[test]
    fn events_of_one_trace_in_a_row_carry_it_once_and_read_back_whole() {
        let first = crate::trace::TraceContext::generate();
        let second = crate::trace::TraceContext::generate();
        let traced = |trace| MessageEvent {
            trace: Some(trace),
            ..event(EventKind::Routed, 1, 0)
        };
        let mut batch = ResultBatch {
            customer_id: CustomerId::parse("acme").unwrap(),
            messages: Vec::new(),
            events: vec![
                traced(first),
                traced(first),
                traced(second),
                traced(second),
                traced(first),
            ],
        };
        let whole: Vec<_> = batch.events.iter().map(|event| event.trace).collect();
        batch.share_traces();
        let carried: Vec<_> = batch
            .events
            .iter()
            .map(|event| event.trace.is_some())
            .collect();
        assert_eq!(carried, [true, false, true, false, true]);
        let encoded = serde_json::to_vec(&batch).unwrap();
        let decoded: ResultBatch = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(decoded.event_traces().collect::<Vec<_>>(), whole);
        let mut events = decoded.events;
        restore_traces(&mut events);
        assert_eq!(
            events.iter().map(|event| event.trace).collect::<Vec<_>>(),
            whole
        );
    }

    #[test]
    fn the_events_of_a_batch_are_read_without_its_records() {
        let event = event(EventKind::Delivered, 1, 1);
        let batch = ResultBatch {
            customer_id: CustomerId::parse("acme").unwrap(),
            messages: Vec::new(),
            events: vec![event.clone()],
        };
        let mut json: serde_json::Value = serde_json::to_value(&batch).unwrap();
        // A record that would not even parse as one: skipped unread.
        json["messages"] =
            serde_json::json!([{"message_id": "x", "to": "not a number", "text": "안녕"}]);
        let encoded = serde_json::to_vec(&json).unwrap();
        assert!(serde_json::from_slice::<ResultBatch>(&encoded).is_err());
        let events: ResultEvents = serde_json::from_slice(&encoded).unwrap();
        assert_eq!(events.customer_id, batch.customer_id);
        assert_eq!(events.events, [event]);
        // A batch of records alone has no events.
        let records_only = br#"{"customer_id":"acme","messages":[]}"#;
        let events: ResultEvents = serde_json::from_slice(records_only).unwrap();
        assert!(events.events.is_empty());
    }
}
