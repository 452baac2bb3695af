//! The compact encoding of `carrier.<name>` messages ([`CarrierPayload`]).
//!
//! A job's JSON — its message id, customer, numbers, trace and every field name as
//! text — was most of the bytes of a carrier queue, and decoding it was the largest
//! part of what a carrier worker spent on a message besides the submit itself. A
//! compact payload is [`JOBS_MAGIC`] followed by the payload in postcard, with ids
//! and trace contexts as their bits:
//!
//! ```text
//! 0x00 0x02                    JOBS_MAGIC: not JSON, carrier jobs version 1
//! variant                      0: one job, 1: a batch (then its length)
//! job: request id (16 bytes), index, customer_id, accepted_at_ms, carrier, hop,
//!   message_type, from, to, subject?, text, tried [(carrier, reason)], channel,
//!   points_reserved, price, images [name], alimtalk? (its JSON), fallback?,
//!   attempts_before, ambiguous_since_ms?, priority, expires_at_ms?, trace?
//! ```
//!
//! AlimTalk content is rare, nested and has optional fields of its own, so it travels
//! as its JSON inside the job. A batch is built from jobs encoded one by one
//! ([`JobBatch`]), so the dispatcher can bound a batch's bytes as it fills it.
//! [`CarrierPayload::decode`] reads both encodings (JSON jobs queued before an
//! upgrade are still worked); `rns-analytics results-json` prints a compact job
//! payload as its JSON too.
use serde::{Deserialize, Serialize};

use super::{phone, trace_from, trace_of, DecodeError, Trace};
use crate::alimtalk::AlimTalk;
use crate::wire::{CarrierJob, CarrierPayload, Fallback, TriedCarrier};
use crate::{CarrierId, Channel, CustomerId, MessageType, Priority, RequestId};

/// The first bytes of a compact carrier payload: a byte JSON never starts with, and
/// the kind and version (RESULTS payloads are `00 01`).
pub const JOBS_MAGIC: [u8; 2] = [0x00, 0x02];

/// postcard's variant index of a single job and of a batch.
const ONE: u8 = 0;
const BATCH: u8 = 1;

/// `job` alone: compact, or its JSON while [`super::writes_compact`] says so.
pub fn encode_job(job: &CarrierJob) -> Vec<u8> {
    if !super::writes_compact() {
        return serde_json::to_vec(job).expect("a carrier job serialises");
    }
    let mut encoded = Vec::with_capacity(128 + job.text.len());
    encoded.extend_from_slice(&JOBS_MAGIC);
    encoded.push(ONE);
    push_job(&mut encoded, job);
    encoded
}

/// A batch of jobs, filled one job at a time: compact, or a JSON array while
/// [`super::writes_compact`] says so (as it was when the batch was made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobBatch {
    compact: bool,
    body: Vec<u8>,
    jobs: usize,
}

impl Default for JobBatch {
    fn default() -> Self {
        Self {
            compact: super::writes_compact(),
            body: Vec::new(),
            jobs: 0,
        }
    }
}

impl JobBatch {
    /// Appends `job`.
    pub fn push(&mut self, job: &CarrierJob) {
        self.append(job);
        self.jobs += 1;
    }

    /// Appends `job` unless the payload would pass `max_bytes` with it (a first job
    /// is always taken); whether it was appended.
    pub fn push_within(&mut self, job: &CarrierJob, max_bytes: usize) -> bool {
        let before = self.body.len();
        self.append(job);
        if self.jobs > 0 && self.body.len() > max_bytes {
            self.body.truncate(before);
            return false;
        }
        self.jobs += 1;
        true
    }

    fn append(&mut self, job: &CarrierJob) {
        if self.compact {
            push_job(&mut self.body, job);
        } else {
            if self.jobs > 0 {
                self.body.push(b',');
            }
            serde_json::to_writer(&mut self.body, job).expect("a carrier job serialises");
        }
    }

    /// How many jobs it holds.
    pub fn len(&self) -> usize {
        self.jobs
    }

    pub fn is_empty(&self) -> bool {
        self.jobs == 0
    }

    /// Bytes of the payload it would make (without its few header bytes).
    pub fn byte_len(&self) -> usize {
        self.body.len()
    }

    /// The payload of the jobs pushed so far; empties it.
    pub fn take(&mut self) -> Vec<u8> {
        let body = std::mem::take(&mut self.body);
        let jobs = std::mem::take(&mut self.jobs);
        let mut payload = Vec::with_capacity(body.len() + 8);
        if self.compact {
            payload.extend_from_slice(&JOBS_MAGIC);
            payload.push(BATCH);
            postcard::to_io(&jobs, &mut payload).expect("a vector takes every byte");
            payload.extend_from_slice(&body);
        } else {
            payload.push(b'[');
            payload.extend_from_slice(&body);
            payload.push(b']');
        }
        payload
    }
}

fn push_job(encoded: &mut Vec<u8>, job: &CarrierJob) {
    let alimtalk = job
        .alimtalk
        .as_ref()
        .map(|alimtalk| serde_json::to_string(alimtalk).expect("AlimTalk content serialises"));
    let compact = CompactJob {
        request: job.message_id.request_id().to_bytes(),
        index: job.message_id.index(),
        customer_id: job.customer_id.as_str(),
        accepted_at_ms: job.accepted_at_ms,
        carrier: job.carrier.as_str(),
        hop: job.hop,
        message_type: job.message_type,
        from: job.from.as_str(),
        to: job.to.as_str(),
        subject: job.subject.as_deref(),
        text: &job.text,
        tried: job
            .tried
            .iter()
            .map(|tried| (tried.carrier.as_str(), tried.reason.as_str()))
            .collect(),
        channel: job.channel,
        points_reserved: job.points_reserved,
        price: job.price,
        images: job.images.iter().map(String::as_str).collect(),
        alimtalk: alimtalk.as_deref(),
        fallback: job
            .fallback
            .as_ref()
            .map(|fallback| super::CompactFallback {
                message_type: fallback.message_type,
                subject: fallback.subject.as_deref(),
                text: &fallback.text,
                price: fallback.price,
            }),
        attempts_before: job.attempts_before,
        ambiguous_since_ms: job.ambiguous_since_ms,
        priority: job.priority,
        expires_at_ms: job.expires_at_ms,
        trace: trace_of(&job.trace),
    };
    postcard::to_io(&compact, &mut *encoded).expect("a vector takes every byte");
}

/// A compact carrier payload's body (after [`JOBS_MAGIC`]).
pub(crate) fn decode_jobs(body: &[u8]) -> Result<CarrierPayload, DecodeError> {
    let (payload, _) = postcard::take_from_bytes::<OwnedPayload>(body)?;
    Ok(match payload {
        OwnedPayload::One(job) => CarrierPayload::One(Box::new(job.into_job()?)),
        OwnedPayload::Batch(jobs) => CarrierPayload::Batch(
            jobs.into_iter()
                .map(OwnedJob::into_job)
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[derive(Serialize)]
struct CompactJob<'a> {
    request: [u8; 16],
    index: u32,
    customer_id: &'a str,
    accepted_at_ms: u64,
    carrier: &'a str,
    hop: u16,
    message_type: MessageType,
    from: &'a str,
    to: &'a str,
    subject: Option<&'a str>,
    text: &'a str,
    tried: Vec<(&'a str, &'a str)>,
    channel: Channel,
    points_reserved: u32,
    price: u32,
    images: Vec<&'a str>,
    alimtalk: Option<&'a str>,
    fallback: Option<super::CompactFallback<'a>>,
    attempts_before: u16,
    ambiguous_since_ms: Option<u64>,
    priority: Priority,
    expires_at_ms: Option<u64>,
    trace: Option<Trace>,
}

#[derive(Deserialize)]
enum OwnedPayload {
    One(Box<OwnedJob>),
    Batch(Vec<OwnedJob>),
}

#[derive(Deserialize)]
struct OwnedJob {
    request: [u8; 16],
    index: u32,
    customer_id: String,
    accepted_at_ms: u64,
    carrier: String,
    hop: u16,
    message_type: MessageType,
    from: String,
    to: String,
    subject: Option<String>,
    text: String,
    tried: Vec<(String, String)>,
    channel: Channel,
    points_reserved: u32,
    price: u32,
    images: Vec<String>,
    alimtalk: Option<String>,
    fallback: Option<super::OwnedFallback>,
    attempts_before: u16,
    ambiguous_since_ms: Option<u64>,
    priority: Priority,
    expires_at_ms: Option<u64>,
    trace: Option<Trace>,
}

impl OwnedJob {
    fn into_job(self) -> Result<CarrierJob, DecodeError> {
        Ok(CarrierJob {
            message_id: RequestId::from_bytes(self.request).message_id(self.index),
            customer_id: CustomerId::parse(&self.customer_id)?,
            accepted_at_ms: self.accepted_at_ms,
            carrier: CarrierId::parse(&self.carrier)?,
            hop: self.hop,
            message_type: self.message_type,
            from: phone(self.from)?,
            to: phone(self.to)?,
            subject: self.subject,
            text: self.text,
            tried: self
                .tried
                .into_iter()
                .map(|(carrier, reason)| {
                    Ok(TriedCarrier {
                        carrier: CarrierId::parse(&carrier)?,
                        reason,
                    })
                })
                .collect::<Result<_, DecodeError>>()?,
            channel: self.channel,
            points_reserved: self.points_reserved,
            price: self.price,
            images: self.images,
            alimtalk: self
                .alimtalk
                .map(|json| serde_json::from_str::<AlimTalk>(&json))
                .transpose()?,
            fallback: self.fallback.map(|fallback| Fallback {
                message_type: fallback.message_type,
                subject: fallback.subject,
                text: fallback.text,
                price: fallback.price,
            }),
            attempts_before: self.attempts_before,
            ambiguous_since_ms: self.ambiguous_since_ms,
            priority: self.priority,
            expires_at_ms: self.expires_at_ms,
            trace: trace_from(self.trace)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::alimtalk::{Button, ButtonKind};
    use crate::trace::TraceContext;
    use crate::PhoneNumber;

    fn job() -> impl Strategy<Value = CarrierJob> {
        (
            (
                any::<u128>(),
                any::<u32>(),
                any::<u64>(),
                prop::sample::select(vec!["kt", "skt", "lgu"]),
                any::<u16>(),
                prop::sample::select(vec![MessageType::Sms, MessageType::Lms, MessageType::Mms]),
                prop::option::of(".{0,8}"),
                ".{0,40}",
            ),
            (
                prop::collection::vec(("[a-z]{2,4}", ".{0,10}"), 0..3),
                any::<u32>(),
                any::<u32>(),
                prop::collection::vec("[a-z0-9.]{1,12}", 0..3),
                any::<bool>(),
                prop::option::of((".{0,12}", any::<u32>())),
                any::<u16>(),
                prop::option::of(any::<u64>()),
            ),
            (
                prop::sample::select(Priority::ALL.to_vec()),
                prop::option::of(any::<u64>()),
                prop::option::of((1..=u128::MAX, 1..=u64::MAX, any::<bool>())),
                0..100_000_000u32,
            ),
        )
            .prop_map(
                |(
                    (request, index, accepted_at_ms, carrier, hop, message_type, subject, text),
                    (
                        tried,
                        points_reserved,
                        price,
                        images,
                        alimtalk,
                        fallback,
                        attempts,
                        ambiguous,
                    ),
                    (priority, expires_at_ms, trace, number),
                )| CarrierJob {
                    message_id: RequestId::from_bytes(request.to_be_bytes()).message_id(index),
                    customer_id: CustomerId::parse("acme").unwrap(),
                    accepted_at_ms,
                    carrier: CarrierId::parse(carrier).unwrap(),
                    hop,
                    message_type,
                    from: PhoneNumber::parse("0212345678").unwrap(),
                    to: PhoneNumber::parse(&format!("010{number:08}")).unwrap(),
                    subject,
                    text,
                    tried: tried
                        .into_iter()
                        .map(|(carrier, reason)| TriedCarrier {
                            carrier: CarrierId::parse(&carrier).unwrap(),
                            reason,
                        })
                        .collect(),
                    channel: if alimtalk {
                        Channel::Alimtalk
                    } else {
                        Channel::Sms
                    },
                    points_reserved,
                    price,
                    images,
                    alimtalk: alimtalk.then(|| AlimTalk {
                        template_code: "order_shipped".into(),
                        title: Some("배송".into()),
                        buttons: vec![Button {
                            kind: ButtonKind::DeliveryTracking,
                            name: "조회".into(),
                            url_mobile: None,
                            url_pc: None,
                            scheme_android: None,
                            scheme_ios: None,
                        }],
                        ..Default::default()
                    }),
                    fallback: fallback.map(|(text, price)| Fallback {
                        message_type: MessageType::Lms,
                        subject: None,
                        text,
                        price,
                    }),
                    attempts_before: attempts,
                    ambiguous_since_ms: ambiguous,
                    priority,
                    expires_at_ms,
                    trace: trace.map(|parts| TraceContext::from_parts(parts).unwrap()),
                },
            )
    }

    proptest! {
        #[test]
        fn a_job_and_a_batch_read_back_as_they_were(
            one in job(),
            batch in prop::collection::vec(job(), 2..6),
        ) {
            let decoded = CarrierPayload::decode(&encode_job(&one)).unwrap();
            prop_assert_eq!(decoded, CarrierPayload::One(Box::new(one)));
            let mut jobs = JobBatch::default();
            for job in &batch {
                jobs.push(job);
            }
            // A job past the bytes is left out, unless it would be the first.
            let mut bounded = JobBatch::default();
            prop_assert!(bounded.push_within(&batch[0], 0), "a first job is always taken");
            prop_assert!(!bounded.push_within(&batch[1], bounded.byte_len()), "no room");
            prop_assert_eq!(bounded.len(), 1);
            prop_assert_eq!(
                CarrierPayload::decode(&bounded.take()).unwrap(),
                CarrierPayload::Batch(vec![batch[0].clone()])
            );
            prop_assert_eq!(jobs.len(), batch.len());
            let decoded = CarrierPayload::decode(&jobs.take()).unwrap();
            prop_assert_eq!(decoded, CarrierPayload::Batch(batch));
            prop_assert!(jobs.is_empty(), "taking empties it");
        }
    }

    fn sms() -> CarrierJob {
        CarrierJob {
            trace: TraceContext::from_parts((7, 9, true)),
            ..CarrierJob::sms(
                RequestId::from_bytes([1; 16]).message_id(3),
                CustomerId::parse("acme").unwrap(),
                CarrierId::parse("kt").unwrap(),
                PhoneNumber::parse("0212345678").unwrap(),
                PhoneNumber::parse("01012345678").unwrap(),
                "[RNS] 인증번호 123456",
                13,
            )
        }
    }

    #[test]
    fn a_compact_job_is_under_half_its_json() {
        let job = sms();
        let json = serde_json::to_vec(&job).unwrap().len();
        let compact = encode_job(&job).len();
        assert!(compact * 2 < json, "compact {compact} bytes, JSON {json}");
    }

    #[test]
    fn json_jobs_queued_before_an_upgrade_are_still_read() {
        let job = sms();
        let json = serde_json::to_vec(&job).unwrap();
        assert_eq!(
            CarrierPayload::decode(&json).unwrap(),
            CarrierPayload::One(Box::new(job.clone()))
        );
        let batch = serde_json::to_vec(&vec![job.clone(), job.clone()]).unwrap();
        assert_eq!(
            CarrierPayload::decode(&batch).unwrap(),
            CarrierPayload::Batch(vec![job.clone(), job])
        );
    }

    #[test]
    fn a_cut_or_invalid_compact_job_is_refused() {
        let encoded = encode_job(&sms());
        assert!(matches!(
            CarrierPayload::decode(&encoded[..encoded.len() - 4]),
            Err(DecodeError::Compact(_))
        ));
        // A carrier id that would not parse is an error, not a value.
        let mut encoded = encode_job(&sms());
        let at = encoded
            .windows(2)
            .position(|window| window == b"kt")
            .expect("the carrier is in the payload");
        encoded[at] = b'K';
        assert!(matches!(
            CarrierPayload::decode(&encoded),
            Err(DecodeError::Id(_))
        ));
        assert!(matches!(
            CarrierPayload::decode(&[0x00, 0x09, 0x00]),
            Err(DecodeError::Unknown(0x09))
        ));
    }
}
