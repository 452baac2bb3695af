//! Delivery receipts: what a carrier reports about a message some time after it
//! accepted it.
//!
//! A carrier that works asynchronously answers a submit with `accepted` and its own id
//! for the message (the carrier reference), and later reports what became of it in a
//! receipt. RNS keeps one [`Correlation`] per carrier and carrier reference (bucket
//! `receipt_correlations`, key [`correlation_key`]), which moves through these states
//! by compare-and-set, so whichever of the submit answer, the receipt, a duplicate of
//! it or the deadline comes first, the message is settled exactly once:
//!
//! ```text
//!            submit answer recorded            receipt (or deadline)
//!  (none) ─────────────────────────► Awaiting ──────────────────────► Settled
//!    │                                  ▲
//!    │ receipt before the answer        │ submit answer recorded
//!    └────────────────────────► Early ──┘ (settles at once)
//! ```
//!
//! A message the carrier took in several parts (SMPP's concatenated `submit_sm`s, each
//! with its own id and its own receipt) is correlated under its last part's reference;
//! its `Awaiting` state lists the parts whose receipts are still awaited, and every
//! other part's key holds a [`Correlation::Part`] pointing at it. It is delivered when
//! every part's receipt says so, and settled at once by the first part's receipt that
//! says otherwise. A part's receipt that comes before the submit answer was recorded
//! is parked as `Early` under the part's key and taken when the part is linked.
//!
//! Receipts travel as [`ReceiptNotice`]s on `receipt.<carrier>.<reference>` (stored
//! before the carrier's POST is answered); the deadline of each awaited receipt is a
//! message schedule that publishes a [`ReceiptNotice::Deadline`] on
//! `receipt.<carrier>.deadline.<message>.<hop>` when it is due. A deadline that finds
//! a receipt of its message stored but not yet read takes it first: a receipt RNS
//! took before the deadline always decides.
//!
//! The deadline is stored first, under the message's own subject
//! (`receipt_deadline.<carrier>.<message>.<hop>`), and carries the whole [`Awaited`]
//! state; the correlation follows. A submit whose process stopped between the two is
//! therefore never forgotten: the redelivered job finds the deadline and correlates
//! what it carries, and a deadline that comes first does it itself (a receipt parked
//! `Early` then settles the message, none ends it `unknown`).
//!
//! A carrier may give a reference it gave before to another message (an SMSC that
//! restarted and counts its ids from the start again). The later message takes the
//! key over: a settled message's correlation is replaced; one still awaiting its
//! receipt ends `unknown` first (the receipt could now be either's), and its deadline,
//! which names its message, leaves the later one alone. A receipt for the later
//! message that comes before its submit answer was recorded finds the earlier
//! message under the reference: when it names its handset
//! ([`CarrierReceipt::handset`]: SMPP receipts always do) and that is not the earlier
//! message's, it waits as `Early` for the later one (an earlier message still
//! awaiting ends `unknown`); without a handset it is taken for a repeat of the
//! earlier message's receipt, and the later message ends `unknown` at its deadline.
use serde::{Deserialize, Serialize};

use crate::carrier::CarrierId;
use crate::ids::MessageId;
use crate::phone::PhoneNumber;
use crate::wire::{CarrierJob, EventKind};

/// Characters of a carrier reference at most.
pub const MAX_CARRIER_REFERENCE_CHARACTERS: usize = 128;
/// Characters of a receipt's detail at most (longer ones are cut).
pub const MAX_RECEIPT_DETAIL_CHARACTERS: usize = 256;

/// What a receipt says became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptState {
    /// The handset took it.
    Delivered,
    /// The handset could not be reached, for good.
    Undeliverable,
    /// The carrier's validity for it ran out before the handset took it.
    Expired,
}

impl ReceiptState {
    pub fn as_str(&self) -> &'static str {
        match self {
            ReceiptState::Delivered => "delivered",
            ReceiptState::Undeliverable => "undeliverable",
            ReceiptState::Expired => "expired",
        }
    }

    /// The final event a receipt in this state records.
    pub fn event_kind(&self) -> EventKind {
        match self {
            ReceiptState::Delivered => EventKind::Delivered,
            ReceiptState::Undeliverable => EventKind::Undeliverable,
            ReceiptState::Expired => EventKind::Expired,
        }
    }
}

/// One receipt as a carrier posts it (the HTTP carrier protocol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierReceipt {
    /// The carrier's id for the message, from its answer to the submit.
    pub carrier_reference: String,
    pub state: ReceiptState,
    /// The carrier's own words or code (e.g. `UNDELIV 001`), kept in the timeline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The number of the handset it is about, when the carrier says (SMPP receipts
    /// come from it): tells a receipt for a later message the carrier gave an earlier
    /// message's reference from a repeat of the earlier one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handset: Option<String>,
}

impl CarrierReceipt {
    /// Whether it names a handset other than `job`'s (one it does not name, or names
    /// unreadably, may be `job`'s).
    pub fn about_another_handset(&self, job: &CarrierJob) -> bool {
        self.handset
            .as_deref()
            .and_then(|handset| PhoneNumber::parse(handset).ok())
            .is_some_and(|handset| handset != job.to)
    }

    /// Why a receipt cannot be taken, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let reference = &self.carrier_reference;
        if reference.is_empty() || reference.chars().count() > MAX_CARRIER_REFERENCE_CHARACTERS {
            return Err(format!(
                "carrier_reference must be 1 to {MAX_CARRIER_REFERENCE_CHARACTERS} characters"
            ));
        }
        if reference.chars().any(char::is_control) {
            return Err("carrier_reference must not contain control characters".to_owned());
        }
        Ok(())
    }
}

/// What `receipt.<carrier>` carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum ReceiptNotice {
    /// A receipt the carrier posted, as RNS received it.
    Receipt {
        #[serde(flatten)]
        receipt: CarrierReceipt,
        /// When RNS stored it (ms since the epoch): the time of the final event.
        received_at_ms: u64,
    },
    /// The receipt deadline of the message the carrier accepted under
    /// `carrier_reference` came (published by its message schedule). `message` and
    /// `hop` name whose deadline it is, since a carrier may give the same reference
    /// to a later message (absent in deadlines stored before they were named: those
    /// concern whichever message awaits under the reference).
    Deadline {
        carrier_reference: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<MessageId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hop: Option<u16>,
        /// What the message's correlation holds while it awaits its receipt (absent in
        /// deadlines stored before they carried it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        awaited: Option<Box<Awaited>>,
    },
}

impl ReceiptNotice {
    /// The carrier reference it is about.
    pub fn carrier_reference(&self) -> &str {
        match self {
            ReceiptNotice::Receipt { receipt, .. } => &receipt.carrier_reference,
            ReceiptNotice::Deadline {
                carrier_reference, ..
            } => carrier_reference,
        }
    }
}

/// Where the receipt of one message a carrier accepted stands (see the module's
/// state diagram).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Correlation {
    /// The carrier accepted a message; its receipt is awaited.
    Awaiting(Awaited),
    /// A receipt that came before the carrier's answer to the submit was recorded.
    Early {
        receipt: CarrierReceipt,
        received_at_ms: u64,
    },
    /// Settled: the message's final step was decided, as [`Settlement`] says. Kept
    /// (until the bucket's age limit) so duplicates of the receipt are recognised.
    Settled(Box<Settlement>),
    /// One of the earlier parts of a message in several parts: the message is
    /// correlated under its last part's `message_reference`.
    Part { message_reference: String },
}

/// A message the carrier accepted, whose receipt is awaited: what its correlation
/// holds meanwhile, and what its deadline carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Awaited {
    /// The carrier accepted `job` on delivery `attempt`; its receipt is awaited until
    /// `deadline_at_ms`.
    pub job: Box<CarrierJob>,
    pub attempt: u16,
    pub submitted_at_ms: u64,
    pub deadline_at_ms: u64,
    /// A message in several parts: the carrier references of the parts whose
    /// receipts have not come yet (this one's included). Empty for a message in
    /// one part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts_awaited: Vec<String>,
}

impl Awaited {
    /// The references of the message's parts other than `carrier_reference` (the
    /// one it is correlated under).
    pub fn earlier_parts(&self, carrier_reference: &str) -> Vec<String> {
        self.parts_awaited
            .iter()
            .filter(|part| *part != carrier_reference)
            .cloned()
            .collect()
    }
}

/// The final step of a message decided by its receipt (or by its deadline); applying
/// it again publishes the same records under the same ids.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settlement {
    pub job: CarrierJob,
    pub attempt: u16,
    /// `delivered`, `undeliverable`, `expired`, `unknown` (the deadline came first),
    /// or `fell_back` (an AlimTalk message the receipt says could not be delivered,
    /// sent on as SMS/LMS).
    pub kind: EventKind,
    pub detail: String,
    pub at_ms: u64,
}

/// The key of the correlation of `carrier`'s message `carrier_reference`: the
/// reference itself when it is made of letters, digits, `-` and `_` only, else `=`
/// and its bytes in hex (KV keys allow few characters; `=` keeps the two forms apart).
pub fn correlation_key(carrier: &CarrierId, carrier_reference: &str) -> String {
    let plain = carrier_reference
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain && !carrier_reference.is_empty() {
        return format!("{carrier}.{carrier_reference}");
    }
    let hex: String = carrier_reference
        .bytes()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{carrier}.={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn correlation_keys_keep_plain_references_and_encode_the_rest_apart() {
        let kt = CarrierId::parse("kt").unwrap();
        assert_eq!(correlation_key(&kt, "kt-00ab_C"), "kt.kt-00ab_C");
        assert_eq!(correlation_key(&kt, "a.b"), "kt.=612e62");
        assert_eq!(correlation_key(&kt, "a b/ç"), "kt.=6120622fc3a7");
        // A plain reference can never look like an encoded one.
        assert_ne!(correlation_key(&kt, "=61"), correlation_key(&kt, "a"));
        let valid = |key: &str| {
            key.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c))
        };
        assert!(valid(&correlation_key(&kt, "한글 ref\u{1}")));
    }

    /// Correlations and deadlines stored before [`Awaited`] was its own type read as
    /// before, and a deadline carries the awaited state whole.
    #[test]
    fn an_awaiting_correlation_reads_as_stored_before_and_rides_in_its_deadline() {
        let stored = r#"{"state":"awaiting","job":{"message_id":"01JDXYZ0000000000000000000-0","customer_id":"acme","accepted_at_ms":1,"carrier":"kt","hop":0,"message_type":"sms","from":"0212345678","to":"01012345678","text":"hi","channel":"sms","points_reserved":1,"price":1},"attempt":2,"submitted_at_ms":10,"deadline_at_ms":20,"parts_awaited":["a","b"]}"#;
        let correlation: Correlation = serde_json::from_str(stored).unwrap();
        let Correlation::Awaiting(awaited) = &correlation else {
            panic!("{correlation:?}");
        };
        assert_eq!((awaited.attempt, awaited.deadline_at_ms), (2, 20));
        assert_eq!(awaited.earlier_parts("b"), ["a"]);
        assert_eq!(
            serde_json::to_value(&correlation).unwrap(),
            serde_json::from_str::<serde_json::Value>(stored).unwrap(),
            "written as it was read"
        );
        let deadline = ReceiptNotice::Deadline {
            carrier_reference: "b".into(),
            message: Some(awaited.job.message_id),
            hop: Some(0),
            awaited: Some(Box::new(awaited.clone())),
        };
        let read: ReceiptNotice =
            serde_json::from_slice(&serde_json::to_vec(&deadline).unwrap()).unwrap();
        assert_eq!(read, deadline);
        let earlier = r#"{"notice":"deadline","carrier_reference":"b"}"#;
        assert!(matches!(
            serde_json::from_str(earlier).unwrap(),
            ReceiptNotice::Deadline { awaited: None, .. }
        ));
    }

    #[test]
    fn receipts_read_as_carriers_post_them_and_check_their_reference() {
        let receipt: CarrierReceipt = serde_json::from_str(
            r#"{"carrier_reference":"kt-1","state":"undeliverable","detail":"UNDELIV 001"}"#,
        )
        .unwrap();
        assert_eq!(receipt.state.event_kind(), EventKind::Undeliverable);
        assert!(receipt.check().is_ok());
        assert!(serde_json::from_str::<CarrierReceipt>(
            r#"{"carrier_reference":"kt-1","state":"read"}"#
        )
        .is_err());
        let long = CarrierReceipt {
            carrier_reference: "x".repeat(MAX_CARRIER_REFERENCE_CHARACTERS + 1),
            ..receipt.clone()
        };
        assert!(long.check().is_err());
        let notice = ReceiptNotice::Receipt {
            receipt,
            received_at_ms: 5,
        };
        let json = serde_json::to_string(&notice).unwrap();
        assert_eq!(
            json,
            r#"{"notice":"receipt","carrier_reference":"kt-1","state":"undeliverable","detail":"UNDELIV 001","received_at_ms":5}"#
        );
        assert_eq!(
            serde_json::from_str::<ReceiptNotice>(&json).unwrap(),
            notice
        );
    }
}
