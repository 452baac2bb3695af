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
    /// Requests were accepted: their messages' prices moved from balance to reserved
    /// (one entry for the requests of a customer reserved together).
    Reserve,
    /// Messages of requests were delivered: their price moved from reserved to spent
    /// (any excess reserved for a fallback returned to the balance; one entry for the
    /// messages of a customer settled together).
    Settle,
    /// A message finally failed: its reservation returned to the balance.
    Refund,
    /// A request was not accepted after all (its publish failed), or a scheduled send
    /// was cancelled: what remained reserved returned to the balance.
    Release,
}

/// One request's part of a [`LedgerEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestShare {
    pub request_id: RequestId,
    /// The points of the entry's `amount` that were this request's.
    pub amount: u64,
    /// Of a settlement: the points of this request returned to the balance.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub returned: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// One change of a customer's points, with the account as it was right after.
///
/// A reservation or settlement of several requests at once (the gateway gathers
/// concurrent sends, the settlement a batch of final events) is one entry whose
/// `requests` lists each request with its share, so `GET /v1/points/ledger?request_id=`
/// finds every entry a request is in, and a lost Redis is rebuilt exactly from the
/// entries ([`LedgerEntry::requests`] sum to `amount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(from = "StoredLedgerEntry")]
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
    /// The requests this change covers, each with its share of `amount` (none for a
    /// top-up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<RequestShare>,
    /// The message a [`LedgerKind::Refund`] is for.
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

impl LedgerEntry {
    /// Whether this change covers `request`.
    pub fn covers(&self, request: &RequestId) -> bool {
        self.requests
            .iter()
            .any(|share| share.request_id == *request)
    }
}

/// A ledger entry as stored: entries written before requests were gathered into one
/// entry name their one request in `request_id` (the whole `amount` and `returned`
/// were its own). Read into [`LedgerEntry::requests`].
#[derive(Deserialize)]
struct StoredLedgerEntry {
    #[serde(default)]
    id: String,
    customer_id: CustomerId,
    at_ms: u64,
    kind: LedgerKind,
    amount: u64,
    balance: i64,
    reserved: i64,
    spent: i64,
    #[serde(default)]
    requests: Vec<RequestShare>,
    #[serde(default)]
    request_id: Option<RequestId>,
    #[serde(default)]
    message_id: Option<MessageId>,
    #[serde(default)]
    messages: Option<u64>,
    #[serde(default)]
    returned: Option<u64>,
    #[serde(default)]
    reason: String,
}

impl From<StoredLedgerEntry> for LedgerEntry {
    fn from(stored: StoredLedgerEntry) -> Self {
        let mut requests = stored.requests;
        if let (true, Some(request_id)) = (requests.is_empty(), stored.request_id) {
            requests.push(RequestShare {
                request_id,
                amount: stored.amount,
                returned: stored.returned.unwrap_or(0),
            });
        }
        Self {
            id: stored.id,
            customer_id: stored.customer_id,
            at_ms: stored.at_ms,
            kind: stored.kind,
            amount: stored.amount,
            balance: stored.balance,
            reserved: stored.reserved,
            spent: stored.spent,
            requests,
            message_id: stored.message_id,
            messages: stored.messages,
            returned: stored.returned,
            reason: stored.reason,
        }
    }
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

    #[test]
    fn an_entry_of_a_gathered_round_lists_each_request_with_its_share() {
        let first = RequestId::generate();
        let second = RequestId::generate();
        let json = format!(
            r#"{{"id":"2-0","customer_id":"acme","at_ms":5,"kind":"settle","amount":4,"balance":10,"reserved":0,"spent":4,"messages":4,"returned":2,"requests":[{{"request_id":"{first}","amount":1,"returned":2}},{{"request_id":"{second}","amount":3}}]}}"#
        );
        let entry: LedgerEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(entry.requests.len(), 2);
        assert_eq!(
            (entry.requests[0].amount, entry.requests[0].returned),
            (1, 2)
        );
        assert_eq!(
            (entry.requests[1].amount, entry.requests[1].returned),
            (3, 0)
        );
        assert!(entry.covers(&first) && entry.covers(&second));
        assert!(!entry.covers(&RequestId::generate()));
        // Written back as read.
        let again: LedgerEntry =
            serde_json::from_str(&serde_json::to_string(&entry).unwrap()).unwrap();
        assert_eq!(again, entry);
    }

    #[test]
    fn an_entry_written_before_rounds_were_gathered_reads_as_one_share() {
        let request = RequestId::generate();
        let json = format!(
            r#"{{"id":"1-0","customer_id":"acme","at_ms":5,"kind":"settle","amount":3,"balance":10,"reserved":0,"spent":3,"request_id":"{request}","messages":3,"returned":1}}"#
        );
        let entry: LedgerEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(
            entry.requests,
            [RequestShare {
                request_id: request,
                amount: 3,
                returned: 1
            }]
        );
    }
}
