//! Sender numbers (발신번호) and their verification.
//!
//! Korean law lets a message leave only from a number its sender registered and
//! proved to hold (발신번호 사전등록제). A customer's number starts `pending`; a
//! mobile number is verified by a code RNS texts to it, any other (landline, `070`,
//! `15xx` representative numbers) by the operator after checking the customer's
//! papers. Only a `verified` number sends; the operator may `suspend` one (it stops
//! sending, still held) or `reject` it (with a reason the customer sees). A number
//! is verified by at most one customer at a time.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Deserializer, Serialize};

use crate::phone::PhoneNumber;

/// Where a sender number stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SenderNumberStatus {
    /// Registered, not yet proved: it cannot send.
    Pending,
    /// Proved to be the customer's: it sends.
    Verified,
    /// Stopped by the operator; still the customer's, it cannot send.
    Suspended,
    /// Refused by the operator, with a reason; it cannot send.
    Rejected,
}

impl SenderNumberStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Suspended => "suspended",
            Self::Rejected => "rejected",
        }
    }

    /// Whether the number holds its place against other customers: a verified or
    /// suspended number stays with its customer.
    pub fn holds_the_number(&self) -> bool {
        matches!(self, Self::Verified | Self::Suspended)
    }
}

/// How a number proves it belongs to the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VerificationMethod {
    /// A code RNS texts to the (mobile) number, entered by the customer.
    SmsCode,
    /// The operator's decision after checking the customer's papers (a landline or
    /// representative number cannot receive a text).
    OperatorApproval,
}

impl VerificationMethod {
    /// Mobile numbers verify by code; every other number by the operator.
    pub fn for_number(number: &PhoneNumber) -> Self {
        if number.is_mobile() {
            Self::SmsCode
        } else {
            Self::OperatorApproval
        }
    }
}

/// One of a customer's sender numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderNumber {
    pub status: SenderNumberStatus,
    pub method: VerificationMethod,
    pub registered_at_ms: u64,
    /// When the status last changed after registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<u64>,
    /// The operator's reason for its status (approval, rejection, suspension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl SenderNumber {
    /// A number just registered: pending, verified the way its kind requires.
    pub fn registered(number: &PhoneNumber, now_ms: u64) -> Self {
        Self {
            status: SenderNumberStatus::Pending,
            method: VerificationMethod::for_number(number),
            registered_at_ms: now_ms,
            decided_at_ms: None,
            reason: None,
        }
    }

    /// A number the operator vouches for from the start (its own system number).
    pub fn verified(number: &PhoneNumber, now_ms: u64, reason: impl Into<String>) -> Self {
        Self {
            status: SenderNumberStatus::Verified,
            decided_at_ms: Some(now_ms),
            reason: Some(reason.into()),
            ..Self::registered(number, now_ms)
        }
    }

    pub fn can_send(&self) -> bool {
        self.status == SenderNumberStatus::Verified
    }

    /// Moves the number to `status` at `now_ms` for `reason`.
    pub fn decide(&mut self, status: SenderNumberStatus, now_ms: u64, reason: Option<String>) {
        self.status = status;
        self.decided_at_ms = Some(now_ms);
        self.reason = reason;
    }
}

/// A customer's sender numbers by number.
pub type SenderNumbers = BTreeMap<PhoneNumber, SenderNumber>;

/// Reads a profile's sender numbers, also in their first stored form (a bare list,
/// from before verification existed): those come back `pending`, to be verified
/// like any new registration, since nothing proved them.
pub fn deserialize_sender_numbers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SenderNumbers, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Current(SenderNumbers),
        Unverified(BTreeSet<PhoneNumber>),
    }
    Ok(match Stored::deserialize(deserializer)? {
        Stored::Current(numbers) => numbers,
        Stored::Unverified(numbers) => numbers
            .into_iter()
            .map(|number| {
                let registered = SenderNumber::registered(&number, 0);
                (number, registered)
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number(text: &str) -> PhoneNumber {
        PhoneNumber::parse(text).unwrap()
    }

    #[test]
    fn mobile_numbers_verify_by_code_and_every_other_number_by_the_operator() {
        assert_eq!(
            VerificationMethod::for_number(&number("010-5555-1234")),
            VerificationMethod::SmsCode
        );
        for other in ["02-1234-5678", "070-1234-5678", "1588-1234", "031-123-4567"] {
            assert_eq!(
                VerificationMethod::for_number(&number(other)),
                VerificationMethod::OperatorApproval,
                "{other}"
            );
        }
    }

    #[test]
    fn only_a_verified_number_sends_and_only_verified_or_suspended_ones_hold_the_number() {
        let mut sender = SenderNumber::registered(&number("02-1234-5678"), 1);
        assert!(!sender.can_send());
        assert!(!sender.status.holds_the_number());
        sender.decide(SenderNumberStatus::Verified, 2, Some("papers".into()));
        assert!(sender.can_send() && sender.status.holds_the_number());
        sender.decide(SenderNumberStatus::Suspended, 3, Some("spam".into()));
        assert!(!sender.can_send() && sender.status.holds_the_number());
        sender.decide(SenderNumberStatus::Rejected, 4, Some("forged".into()));
        assert!(!sender.can_send() && !sender.status.holds_the_number());
        assert_eq!(sender.decided_at_ms, Some(4));
    }

    #[test]
    fn the_first_stored_form_reads_back_as_pending_numbers() {
        #[derive(Deserialize)]
        struct Profile {
            #[serde(deserialize_with = "deserialize_sender_numbers")]
            sender_numbers: SenderNumbers,
        }
        let old: Profile =
            serde_json::from_str(r#"{"sender_numbers":["0212345678","01055551234"]}"#).unwrap();
        assert_eq!(old.sender_numbers.len(), 2);
        assert!(old
            .sender_numbers
            .values()
            .all(|sender| sender.status == SenderNumberStatus::Pending));
        assert_eq!(
            old.sender_numbers[&number("010-5555-1234")].method,
            VerificationMethod::SmsCode
        );
        let current = serde_json::json!({
            "sender_numbers": {"0212345678": SenderNumber::verified(&number("02-1234-5678"), 5, "ok")}
        });
        let read: Profile = serde_json::from_value(current).unwrap();
        assert!(read.sender_numbers[&number("02-1234-5678")].can_send());
    }
}
