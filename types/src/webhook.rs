//! Status webhooks: what a customer configures, what is POSTed, how it is signed, and
//! the record of each attempt.
//!
//! A delivery is one POST of the events of one result (a message's final state, or
//! with `events: all` every event) as JSON, with these headers:
//! - `X-RNS-Delivery`: the delivery id, the same on every retry: receivers
//!   deduplicate by it, since delivery is at least once.
//! - `X-RNS-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with
//!   the secret>`; receivers recompute it and refuse old `t` to stop replays.
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ids::CustomerId;
use crate::wire::MessageEvent;

/// Which events a customer's webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookEvents {
    /// Only final states: delivered, failed, blocked.
    #[default]
    Final,
    /// Every event of the timeline.
    All,
}

/// A customer's webhook, stored in the `webhooks` bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookConfig {
    pub url: String,
    pub secret: String,
    #[serde(default)]
    pub events: WebhookEvents,
    pub updated_at_ms: u64,
}

impl WebhookConfig {
    /// Whether the webhook receives `event`.
    pub fn wants(&self, event: &MessageEvent) -> bool {
        self.events == WebhookEvents::All || event.kind.status().is_final()
    }
}

/// A delivery waiting for a retry: everything needed to POST it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDelivery {
    pub id: String,
    pub customer_id: CustomerId,
    /// The attempt the retry will be (the first attempt is 1).
    pub attempt: u32,
    pub first_attempt_at_ms: u64,
    pub events: Vec<MessageEvent>,
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It did not; another attempt is scheduled.
    Failed,
    /// It did not, and retries ran out (more than a day after the first attempt).
    Abandoned,
}

/// One attempt, as `GET /v1/webhook/deliveries` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub attempt: u32,
    pub at_ms: u64,
    pub url: String,
    pub outcome: AttemptOutcome,
    /// The receiver's HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub error: String,
    pub duration_ms: u64,
    pub events: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at_ms: Option<u64>,
}

/// The Redis stream of a customer's attempts, newest kept.
pub fn attempts_key(customer: &CustomerId) -> String {
    format!("rns:webhook:{customer}:attempts")
}

/// Attempts kept per customer.
pub const ATTEMPTS_KEPT: usize = 1_000;

/// A delivery id from the id of the result it carries: letters, digits, `-` and `_`
/// only, so it is safe in a subject and a header.
pub fn delivery_id(result_id: &str) -> String {
    result_id
        .chars()
        .map(|character| {
            if character.is_ascii_alphanumeric() || character == '-' || character == '_' {
                character
            } else {
                '_'
            }
        })
        .collect()
}

/// The `X-RNS-Signature` value for `body` sent at `unix_seconds`.
pub fn signature(secret: &str, unix_seconds: u64, body: &[u8]) -> String {
    let digest = mac(secret, unix_seconds, body).finalize().into_bytes();
    format!("t={unix_seconds},v1={}", hex::encode(digest))
}

/// Whether `header` is a valid signature of `body` with `secret` (what a receiver
/// does; the time check is the receiver's own). The digest is compared in constant
/// time (`Mac::verify_slice`).
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut seconds = None;
    let mut digest = None;
    for part in header.split(',') {
        if let Some(value) = part.strip_prefix("t=") {
            seconds = value.parse::<u64>().ok();
        } else if let Some(value) = part.strip_prefix("v1=") {
            digest = hex::decode(value).ok();
        }
    }
    match (seconds, digest) {
        (Some(seconds), Some(digest)) => mac(secret, seconds, body).verify_slice(&digest).is_ok(),
        _ => false,
    }
}

/// The HMAC-SHA256 of `<unix_seconds>.<body>` under `secret`.
fn mac(secret: &str, unix_seconds: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_any_change_breaks_them() {
        let header = signature("s3cret", 1_795_564_800, br#"{"events":[]}"#);
        assert!(header.starts_with("t=1795564800,v1="));
        assert_eq!(header.len(), "t=1795564800,v1=".len() + 64);
        assert!(verify("s3cret", &header, br#"{"events":[]}"#));
        assert!(!verify("s3cret", &header, br#"{"events":[1]}"#));
        assert!(!verify("other", &header, br#"{"events":[]}"#));
        let replayed = header.replace("t=1795564800", "t=1795564801");
        assert!(!verify("s3cret", &replayed, br#"{"events":[]}"#));
        assert!(!verify("s3cret", "garbage", b""));
        let truncated = &header[..header.len() - 2];
        assert!(!verify("s3cret", truncated, br#"{"events":[]}"#));
        assert!(!verify("s3cret", "t=1795564800", br#"{"events":[]}"#));
    }

    #[test]
    fn a_vector_computed_elsewhere_matches() {
        // Python: hmac.new(b"key", b"1.The quick brown fox jumps over the lazy dog",
        // hashlib.sha256).hexdigest()
        assert_eq!(
            signature("key", 1, b"The quick brown fox jumps over the lazy dog"),
            "t=1,v1=3ff4d3cc115b639a16dc5b217aa5c89be41d1e4b54efc356d63d0cd2a65b30f1"
        );
    }

    #[test]
    fn delivery_ids_are_safe_in_subjects() {
        assert_eq!(delivery_id("01J.result:3/x"), "01J_result_3_x");
    }
}
