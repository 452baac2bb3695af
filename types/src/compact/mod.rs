//! The compact encoding of RESULTS messages ([`ResultBatch`], [`ResultEvents`]).
//!
//! RESULTS carries every event of every message, read by three consumers (analytics,
//! points, webhooks): its JSON — each event's message id, trace context and field
//! names as text — was most of the bytes JetStream stored and sent, and most of what
//! its readers spent decoding. A RESULTS payload is now [`MAGIC`] followed by the
//! batch in [postcard](https://docs.rs/postcard) (a stable, documented serde format:
//! varints, length-prefixed strings, enums as variant indexes), with ids and trace
//! contexts as their bits:
//!
//! ```text
//! 0x00 0x01                    MAGIC: not JSON, version 1
//! customer_id                  string
//! events: [                    length, then each:
//!   request id (16 bytes), index, at_ms, accepted_at_ms, kind (EventKind index),
//!   carrier (option of string), hop, attempt, detail (string), points reserved,
//!   points spent, trace (option of: trace id (16 bytes), span id (8 bytes), sampled)
//! ]
//! messages: [ request id, index, accepted_at_ms, channel, message_type, from, to,
//!   subject?, text, points_reserved, schedule_id?, fallback? ]
//! ```
//!
//! Events come before records, so a reader of events alone ([`ResultEvents`]) stops
//! before the records. Enum variants are only ever appended, so indexes keep their
//! meaning. [`decode_results`] reads both encodings — a payload starting with `{` is
//! the JSON of before, so messages stored before an upgrade are still read — and
//! `rns-analytics results-json` prints any RESULTS payload as that JSON, for the
//! nats CLI: `nats stream view RESULTS --translate 'rns-analytics results-json'`.
//!
//! Ids and numbers are validated on decoding as in JSON (a customer, carrier or
//! phone number that would not parse is an error, not a value).
//!
//! Carrier queues have a compact encoding of their own ([`jobs`]).
use serde::{Deserialize, Serialize};

use crate::trace::TraceContext;
use crate::wire::{
    EventKind, Fallback, MessageEvent, MessageRecord, Points, ResultBatch, ResultEvents,
};
use crate::{CarrierId, Channel, CustomerId, MessageType, PhoneNumber, RequestId};

/// The first bytes of a compact RESULTS payload: a byte JSON never starts with, and
/// the version.
pub const MAGIC: [u8; 2] = [0x00, 0x01];

pub mod jobs;

/// Whether this process writes compact payloads (see [`write_compact`]).
static WRITE_COMPACT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Makes this process write RESULTS and carrier payloads compact (`true`, the
/// default) or as the JSON that versions before the compact encodings read (during
/// an upgrade from one); readers take both either way. Set once at start, from
/// `[nats] compact_payloads`.
pub fn write_compact(compact: bool) {
    WRITE_COMPACT.store(compact, std::sync::atomic::Ordering::Relaxed);
}

/// Whether payloads are written compact now.
pub fn writes_compact() -> bool {
    WRITE_COMPACT.load(std::sync::atomic::Ordering::Relaxed)
}

/// Why a RESULTS or carrier payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("JSON does not parse: {0}")]
    Json(#[from] serde_json::Error),
    #[error("compact payload does not parse: {0}")]
    Compact(#[from] postcard::Error),
    #[error("compact payload holds an invalid id: {0}")]
    Id(#[from] crate::InvalidId),
    #[error("compact payload holds an invalid phone number: {0}")]
    Phone(#[from] crate::phone::InvalidPhoneNumber),
    #[error("compact payload holds a trace context with a zero id")]
    ZeroTrace,
    #[error(
        "payload is neither JSON nor a compact encoding this version reads (second byte {0:#04x})"
    )]
    Unknown(u8),
}

/// `batch` in the compact encoding, [`MAGIC`] first.
pub fn encode_results(batch: &ResultBatch) -> Vec<u8> {
    let compact = CompactBatch {
        customer_id: batch.customer_id.as_str(),
        events: batch.events.iter().map(CompactEvent::of).collect(),
        messages: batch.messages.iter().map(CompactRecord::of).collect(),
    };
    let mut encoded = MAGIC.to_vec();
    postcard::to_io(&compact, &mut encoded).expect("a vector takes every byte");
    encoded
}

/// A RESULTS payload, compact or JSON.
pub fn decode_results(payload: &[u8]) -> Result<ResultBatch, DecodeError> {
    match compact_body(payload)? {
        None => Ok(serde_json::from_slice(payload)?),
        Some(body) => {
            let (compact, _) = postcard::take_from_bytes::<OwnedBatch>(body)?;
            Ok(ResultBatch {
                customer_id: customer(compact.customer_id)?,
                events: events(compact.events)?,
                messages: compact
                    .messages
                    .into_iter()
                    .map(OwnedRecord::into_record)
                    .collect::<Result<_, _>>()?,
            })
        }
    }
}

/// The events of a RESULTS payload, compact or JSON, its records left unread.
pub fn decode_result_events(payload: &[u8]) -> Result<ResultEvents, DecodeError> {
    match compact_body(payload)? {
        None => Ok(serde_json::from_slice(payload)?),
        Some(body) => {
            // The records follow the events: taking the prefix leaves them unread.
            let (compact, _) = postcard::take_from_bytes::<OwnedEvents>(body)?;
            Ok(ResultEvents {
                customer_id: customer(compact.customer_id)?,
                events: events(compact.events)?,
            })
        }
    }
}

/// The postcard body of a compact RESULTS payload; `None` for JSON.
fn compact_body(payload: &[u8]) -> Result<Option<&[u8]>, DecodeError> {
    compact_body_after(payload, MAGIC)
}

/// The postcard body of a payload starting with `magic`; `None` for JSON.
pub(crate) fn compact_body_after(
    payload: &[u8],
    magic: [u8; 2],
) -> Result<Option<&[u8]>, DecodeError> {
    match payload.first() {
        Some(first) if *first == magic[0] => payload
            .strip_prefix(&magic[..])
            .map(Some)
            .ok_or(DecodeError::Unknown(payload.get(1).copied().unwrap_or(0))),
        // JSON (or nothing, which JSON refuses with its own message).
        _ => Ok(None),
    }
}

fn customer(id: String) -> Result<CustomerId, DecodeError> {
    Ok(CustomerId::parse(&id)?)
}

fn events(events: Vec<OwnedEvent>) -> Result<Vec<MessageEvent>, DecodeError> {
    events.into_iter().map(OwnedEvent::into_event).collect()
}

type Trace = ([u8; 16], u64, bool);

fn trace_of(trace: &Option<TraceContext>) -> Option<Trace> {
    trace.map(|trace| {
        let (trace_id, span_id, sampled) = trace.parts();
        (trace_id.to_be_bytes(), span_id, sampled)
    })
}

fn trace_from(trace: Option<Trace>) -> Result<Option<TraceContext>, DecodeError> {
    trace
        .map(|(trace_id, span_id, sampled)| {
            TraceContext::from_parts((u128::from_be_bytes(trace_id), span_id, sampled))
                .ok_or(DecodeError::ZeroTrace)
        })
        .transpose()
}

fn phone(number: String) -> Result<PhoneNumber, DecodeError> {
    Ok(PhoneNumber::parse(&number)?)
}

#[derive(Serialize)]
struct CompactBatch<'a> {
    customer_id: &'a str,
    events: Vec<CompactEvent<'a>>,
    messages: Vec<CompactRecord<'a>>,
}

#[derive(Serialize)]
struct CompactEvent<'a> {
    request: [u8; 16],
    index: u32,
    at_ms: u64,
    accepted_at_ms: u64,
    kind: EventKind,
    carrier: Option<&'a str>,
    hop: u16,
    attempt: u16,
    detail: &'a str,
    points: Points,
    trace: Option<Trace>,
}

impl<'a> CompactEvent<'a> {
    fn of(event: &'a MessageEvent) -> Self {
        Self {
            request: event.message_id.request_id().to_bytes(),
            index: event.message_id.index(),
            at_ms: event.at_ms,
            accepted_at_ms: event.accepted_at_ms,
            kind: event.kind,
            carrier: event.carrier.as_ref().map(CarrierId::as_str),
            hop: event.hop,
            attempt: event.attempt,
            detail: &event.detail,
            points: event.points,
            trace: trace_of(&event.trace),
        }
    }
}

#[derive(Serialize)]
struct CompactRecord<'a> {
    request: [u8; 16],
    index: u32,
    accepted_at_ms: u64,
    channel: Channel,
    message_type: MessageType,
    from: &'a str,
    to: &'a str,
    subject: Option<&'a str>,
    text: &'a str,
    points_reserved: u32,
    schedule_id: Option<&'a str>,
    fallback: Option<CompactFallback<'a>>,
}

#[derive(Serialize)]
struct CompactFallback<'a> {
    message_type: MessageType,
    subject: Option<&'a str>,
    text: &'a str,
    price: u32,
}

impl<'a> CompactRecord<'a> {
    fn of(record: &'a MessageRecord) -> Self {
        Self {
            request: record.message_id.request_id().to_bytes(),
            index: record.message_id.index(),
            accepted_at_ms: record.accepted_at_ms,
            channel: record.channel,
            message_type: record.message_type,
            from: record.from.as_str(),
            to: record.to.as_str(),
            subject: record.subject.as_deref(),
            text: &record.text,
            points_reserved: record.points_reserved,
            schedule_id: record.schedule_id.as_deref(),
            fallback: record.fallback.as_ref().map(|fallback| CompactFallback {
                message_type: fallback.message_type,
                subject: fallback.subject.as_deref(),
                text: &fallback.text,
                price: fallback.price,
            }),
        }
    }
}

#[derive(Deserialize)]
struct OwnedBatch {
    customer_id: String,
    events: Vec<OwnedEvent>,
    messages: Vec<OwnedRecord>,
}

#[derive(Deserialize)]
struct OwnedEvents {
    customer_id: String,
    events: Vec<OwnedEvent>,
}

#[derive(Deserialize)]
struct OwnedEvent {
    request: [u8; 16],
    index: u32,
    at_ms: u64,
    accepted_at_ms: u64,
    kind: EventKind,
    carrier: Option<String>,
    hop: u16,
    attempt: u16,
    detail: String,
    points: Points,
    trace: Option<Trace>,
}

impl OwnedEvent {
    fn into_event(self) -> Result<MessageEvent, DecodeError> {
        Ok(MessageEvent {
            message_id: RequestId::from_bytes(self.request).message_id(self.index),
            at_ms: self.at_ms,
            accepted_at_ms: self.accepted_at_ms,
            kind: self.kind,
            carrier: self
                .carrier
                .map(|carrier| CarrierId::parse(&carrier))
                .transpose()?,
            hop: self.hop,
            attempt: self.attempt,
            detail: self.detail,
            points: self.points,
            trace: trace_from(self.trace)?,
        })
    }
}

#[derive(Deserialize)]
struct OwnedRecord {
    request: [u8; 16],
    index: u32,
    accepted_at_ms: u64,
    channel: Channel,
    message_type: MessageType,
    from: String,
    to: String,
    subject: Option<String>,
    text: String,
    points_reserved: u32,
    schedule_id: Option<String>,
    fallback: Option<OwnedFallback>,
}

#[derive(Deserialize)]
struct OwnedFallback {
    message_type: MessageType,
    subject: Option<String>,
    text: String,
    price: u32,
}

impl OwnedRecord {
    fn into_record(self) -> Result<MessageRecord, DecodeError> {
        Ok(MessageRecord {
            message_id: RequestId::from_bytes(self.request).message_id(self.index),
            accepted_at_ms: self.accepted_at_ms,
            channel: self.channel,
            message_type: self.message_type,
            from: phone(self.from)?,
            to: phone(self.to)?,
            subject: self.subject,
            text: self.text,
            points_reserved: self.points_reserved,
            schedule_id: self.schedule_id,
            fallback: self.fallback.map(|fallback| Fallback {
                message_type: fallback.message_type,
                subject: fallback.subject,
                text: fallback.text,
                price: fallback.price,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::{EventKind, Fallback};

    fn kind() -> impl Strategy<Value = EventKind> {
        prop::sample::select(EventKind::ALL.to_vec())
    }

    fn trace() -> impl Strategy<Value = Option<TraceContext>> {
        prop::option::of((1..=u128::MAX, 1..=u64::MAX, any::<bool>())).prop_map(|parts| {
            parts.map(|parts| TraceContext::from_parts(parts).expect("ids are not zero"))
        })
    }

    fn event() -> impl Strategy<Value = MessageEvent> {
        (
            (
                any::<u128>(),
                any::<u32>(),
                any::<u64>(),
                any::<u64>(),
                kind(),
            ),
            prop::option::of("[a-z0-9_]{1,8}"),
            (
                any::<u16>(),
                any::<u16>(),
                ".{0,12}",
                any::<u32>(),
                any::<u32>(),
            ),
            trace(),
        )
            .prop_map(
                |(
                    (request, index, at_ms, accepted_at_ms, kind),
                    carrier,
                    (hop, attempt, detail, reserved, spent),
                    trace,
                )| MessageEvent {
                    message_id: RequestId::from_bytes(request.to_be_bytes()).message_id(index),
                    at_ms,
                    accepted_at_ms,
                    kind,
                    carrier: carrier.map(|carrier| CarrierId::parse(&carrier).unwrap()),
                    hop,
                    attempt,
                    detail,
                    points: Points { reserved, spent },
                    trace,
                },
            )
    }

    fn record() -> impl Strategy<Value = MessageRecord> {
        (
            (any::<u128>(), any::<u32>(), any::<u64>(), any::<bool>()),
            (
                "010[0-9]{8}",
                "02[0-9]{7,8}",
                prop::option::of(".{0,8}"),
                ".{0,40}",
            ),
            (
                any::<u32>(),
                prop::option::of("[a-z0-9]{1,10}"),
                prop::option::of((prop::option::of(".{0,8}"), ".{0,20}", any::<u32>())),
            ),
        )
            .prop_map(
                |(
                    (request, index, accepted_at_ms, alimtalk),
                    (from, to, subject, text),
                    (points_reserved, schedule_id, fallback),
                )| MessageRecord {
                    message_id: RequestId::from_bytes(request.to_be_bytes()).message_id(index),
                    accepted_at_ms,
                    channel: if alimtalk {
                        Channel::Alimtalk
                    } else {
                        Channel::Sms
                    },
                    message_type: if subject.is_some() {
                        MessageType::Lms
                    } else {
                        MessageType::Sms
                    },
                    from: PhoneNumber::parse(&from).unwrap(),
                    to: PhoneNumber::parse(&to).unwrap(),
                    subject,
                    text,
                    points_reserved,
                    schedule_id,
                    fallback: fallback.map(|(subject, text, price)| Fallback {
                        message_type: MessageType::Lms,
                        subject,
                        text,
                        price,
                    }),
                },
            )
    }

    fn batch() -> impl Strategy<Value = ResultBatch> {
        (
            "[a-z0-9_-]{1,16}",
            prop::collection::vec(record(), 0..4),
            prop::collection::vec(event(), 0..6),
        )
            .prop_map(|(customer, messages, events)| ResultBatch {
                customer_id: CustomerId::parse(&customer).unwrap(),
                messages,
                events,
            })
    }

    proptest! {
        #[test]
        fn every_batch_reads_back_as_it_was_written(batch in batch()) {
            let encoded = encode_results(&batch);
            prop_assert_eq!(&encoded[..2], &MAGIC[..]);
            prop_assert_eq!(decode_results(&encoded).unwrap(), batch.clone());
            let events = decode_result_events(&encoded).unwrap();
            prop_assert_eq!(events.customer_id, batch.customer_id.clone());
            prop_assert_eq!(events.events, batch.events.clone());
            // The JSON of before reads back the same.
            let json = serde_json::to_vec(&batch).unwrap();
            prop_assert_eq!(decode_results(&json).unwrap(), batch);
        }
    }

    fn sample() -> ResultBatch {
        let request = RequestId::generate();
        let trace = TraceContext::generate();
        ResultBatch {
            customer_id: CustomerId::parse("acme").unwrap(),
            messages: vec![MessageRecord {
                message_id: request.message_id(0),
                accepted_at_ms: 1_700_000_000_000,
                channel: Channel::Sms,
                message_type: MessageType::Sms,
                from: PhoneNumber::parse("0212345678").unwrap(),
                to: PhoneNumber::parse("01012345678").unwrap(),
                subject: None,
                text: "인증번호 123456".to_owned(),
                points_reserved: 9,
                schedule_id: None,
                fallback: None,
            }],
            events: (0..3)
                .map(|attempt| MessageEvent {
                    message_id: request.message_id(0),
                    at_ms: 1_700_000_000_100,
                    accepted_at_ms: 1_700_000_000_000,
                    kind: EventKind::Submitted,
                    carrier: Some(CarrierId::parse("kt").unwrap()),
                    hop: 0,
                    attempt,
                    detail: String::new(),
                    points: Points::default(),
                    trace: Some(trace),
                })
                .collect(),
        }
    }

    #[test]
    fn a_compact_batch_is_a_fraction_of_its_json() {
        let batch = sample();
        let (compact, json) = (encode_results(&batch), serde_json::to_vec(&batch).unwrap());
        assert!(
            compact.len() * 3 < json.len(),
            "{} vs {}",
            compact.len(),
            json.len()
        );
    }

    #[test]
    fn the_events_are_read_without_the_records_that_follow_them() {
        let batch = sample();
        let mut encoded = encode_results(&batch);
        let whole = encoded.len();
        // Records cut short: the whole batch no longer reads, its events still do.
        encoded.truncate(whole - 4);
        assert!(decode_results(&encoded).is_err());
        assert_eq!(decode_result_events(&encoded).unwrap().events, batch.events);
    }

    #[test]
    fn payloads_that_are_neither_are_refused_with_what_they_are() {
        let batch = sample();
        let mut later_version = encode_results(&batch);
        later_version[1] = 2;
        assert!(matches!(
            decode_results(&later_version),
            Err(DecodeError::Unknown(2))
        ));
        assert!(matches!(
            decode_results(b"\0"),
            Err(DecodeError::Unknown(0))
        ));
        assert!(matches!(decode_results(b"[1]"), Err(DecodeError::Json(_))));
        assert!(matches!(decode_results(b""), Err(DecodeError::Json(_))));
        // A customer id that would not parse is refused, not taken.
        let mut bad = batch.clone();
        bad.customer_id = CustomerId::parse("acme").unwrap();
        let mut encoded = encode_results(&bad);
        let at = encoded
            .windows(4)
            .position(|window| window == b"acme")
            .unwrap();
        encoded[at] = b'A';
        assert!(matches!(decode_results(&encoded), Err(DecodeError::Id(_))));
    }
}
