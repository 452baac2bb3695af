//! API keys: what a customer's key may do, and how one is stored.
//!
//! A key is `rns_<id>_<secret>`: the id (8 lowercase hex characters) names the key in
//! lists and logs, the secret (48 hex characters, 192 random bits) proves it. Only the
//! SHA-256 of the whole key is stored: `api_keys/<sha256 hex>` in KV holds an
//! [`ApiKeyRecord`] (its customer, id, name and scopes), and the customer's profile
//! lists its keys by id ([`crate::CustomerProfile::api_keys`]) so they can be listed,
//! rotated and revoked. A record written before keys had names (the customer id as
//! plain text) is read as a key with every scope.
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::CustomerId;

/// What a key may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Send messages (`POST /v1/messages`).
    Send,
    /// Read anything of the customer's (every `GET`).
    Read,
    /// Change the customer's configuration and data (every other write), keys too.
    Manage,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Send, Scope::Read, Scope::Manage];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Manage => "manage",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A stored key: `api_keys/<sha256 hex of the key>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub customer: CustomerId,
    pub id: String,
    pub name: String,
    pub scopes: BTreeSet<Scope>,
}

impl ApiKeyRecord {
    /// Reads a stored record, or a customer id stored as plain text by an earlier
    /// version (a key with every scope).
    pub fn parse(stored: &[u8]) -> Option<Self> {
        if let Ok(record) = serde_json::from_slice(stored) {
            return Some(record);
        }
        let text = std::str::from_utf8(stored).ok()?;
        Some(Self {
            customer: CustomerId::parse(text.trim()).ok()?,
            id: String::new(),
            name: String::new(),
            scopes: Scope::ALL.into_iter().collect(),
        })
    }
}

/// A key as its customer's profile lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyEntry {
    pub name: String,
    pub scopes: BTreeSet<Scope>,
    /// The SHA-256 of the key (hex), to revoke it.
    pub hash: String,
    pub created_at_ms: u64,
}

/// The id of a key (`rns_<id>_…`), if it has the shape of one.
pub fn key_id(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("rns_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 8 && !secret.is_empty() && id.bytes().all(|byte| byte.is_ascii_hexdigit()))
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_earlier_versions_have_every_scope() {
        let legacy = ApiKeyRecord::parse(b"acme").unwrap();
        assert_eq!(legacy.customer.as_str(), "acme");
        assert_eq!(legacy.scopes.len(), 3);
        let record = ApiKeyRecord {
            customer: CustomerId::parse("acme").unwrap(),
            id: "0a1b2c3d".to_owned(),
            name: "reports".to_owned(),
            scopes: [Scope::Read].into_iter().collect(),
        };
        let stored = serde_json::to_vec(&record).unwrap();
        assert_eq!(ApiKeyRecord::parse(&stored), Some(record));
        assert!(ApiKeyRecord::parse(b"not a customer!").is_none());
    }

    #[test]
    fn a_keys_id_is_its_first_part() {
        assert_eq!(key_id("rns_0a1b2c3d_ffee"), Some("0a1b2c3d"));
        assert_eq!(key_id("rns_0a1b2c3d"), None);
        assert_eq!(key_id("rns_zzzzzzzz_ff"), None);
        assert_eq!(key_id("other"), None);
    }
}
