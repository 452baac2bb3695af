//! Prepaid points: prices and the entries of a customer's ledger.
//!
//! A send reserves the price of every message when it is accepted; a message's final
//! state settles its reservation: delivered spends its price (and returns any excess
//! reserved for a fallback), failed returns it all. The price of a message is fixed
//! when it is accepted and travels with it ([`crate::wire::CarrierJob::price`]), so a
//! refund always uses the price that was charged.
use serde::{Deserialize, Serialize};

use crate::content::MessageType;
use crate::ids::{CustomerId, MessageId, RequestId};

/// Points per recipient of each message type (`[points.prices]` in `rns.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Prices {
    pub sms: u32,
    pub lms: u32,
    pub mms: u32,
    pub alimtalk: u32,
}

impl Default for Prices {
    /// SMS 1, LMS 3, MMS 6, AlimTalk 1 point.
    fn default() -> Self {
        Self {
            sms: 1,
            lms: 3,
            mms: 6,
            alimtalk: 1,
        }
    }
}

impl Prices {
    pub fn of(&self, message_type: MessageType) -> u32 {
        match message_type {
            MessageType::Sms => self.sms,
            MessageType::Lms => self.lms,
            MessageType::Mms => self.mms,
            MessageType::Alimtalk => self.alimtalk,
        }
    }
}

/// What changed a balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LedgerKind {
    /// The operator added points.
    TopUp,
    /// A request was accepted: its messages' prices moved from balance to reserved.
    Reserve,
    /// Messages of a request were delivered: their price moved from reserved to spent
    /// (any excess reserved for a fallback returned to the balance).
    Settle,
    /// A message finally failed: its reservation returned to the balance.
    Refund,
    /// A request was not accepted after all (its publish failed), or a scheduled send
    /// was cancelled: what remained reserved returned to the balance.
    Release,
}

/// One change of a customer's points, with the account as it was right after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// Unique per customer and increasing (the Redis stream id).
    #[serde(default)]
    pub id: String,
    pub customer_id: CustomerId,
    pub at_ms: u64,
    pub kind: LedgerKind,
    /// Points moved by this change.
    pub amount: u64,
    pub balance: i64,
    pub reserved: i64,
    pub spent: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// Messages settled by a [`LedgerKind::Settle`] entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u64>,
    /// Points a [`LedgerKind::Settle`] entry returned to the balance (reserved for a
    /// fallback that was not needed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub returned: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prices_are_those_of_the_original_system() {
        let prices = Prices::default();
        assert_eq!(prices.of(MessageType::Sms), 1);
        assert_eq!(prices.of(MessageType::Lms), 3);
        assert_eq!(prices.of(MessageType::Mms), 6);
        assert_eq!(prices.of(MessageType::Alimtalk), 1);
    }

    #[test]
    fn ledger_entries_read_back_from_the_script_format() {
        let json = r#"{"id":"1-0","customer_id":"acme","at_ms":5,"kind":"refund","amount":3,"balance":10,"reserved":0,"spent":0,"message_id":"01JDXYZ0000000000000000000-4","reason":"kt: rejected"}"#;
        let entry: LedgerEntry = serde_json::from_str(json).unwrap();
        assert_eq!(entry.kind, LedgerKind::Refund);
        assert_eq!(entry.message_id.unwrap().index(), 4);
    }
}
