//! Carriers (relay providers, 중계사) and the channels they serve.
//!
//! The catalogue is configuration: which carriers exist and which channel each serves.
//! Every service reads the same catalogue, so the gateway validates weights against
//! exactly the carriers the dispatcher routes to and the topology creates queues for.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::InvalidId;

/// The Redis hash of carrier rates the operator set at run time: field the carrier
/// id, value submits per second. The carriers service reads it before every slot of a
/// carrier's shared budget; a carrier without a field uses its configured rate.
pub const CARRIER_RATES_KEY: &str = "carrier_rates";

/// A channel is a family of message types that share carriers and routing weights.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// SMS, LMS and MMS through mobile carriers.
    #[default]
    Sms,
    /// Kakao AlimTalk through Kakao relay partners.
    Alimtalk,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Sms, Channel::Alimtalk];

    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Alimtalk => "alimtalk",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|channel| channel.as_str() == value)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A carrier name: 1-32 characters of `[a-z0-9_]`, a token of `carrier.<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CarrierId(String);

crate::string_schema!(CarrierId, "A carrier: 1-32 characters of `[a-z0-9_]`");

impl CarrierId {
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let valid_character = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        if value.is_empty() || value.len() > 32 || !value.chars().all(valid_character) {
            return Err(InvalidId {
                kind: "carrier id",
                reason: "must be 1-32 characters of a-z, 0-9 and '_'",
            });
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CarrierId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CarrierId> for String {
    fn from(id: CarrierId) -> Self {
        id.0
    }
}

impl fmt::Display for CarrierId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// One carrier of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierEntry {
    pub id: CarrierId,
    pub channel: Channel,
}

/// The carriers this deployment knows, in configuration order (`[[carriers]]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CarrierCatalog {
    entries: Vec<CarrierEntry>,
}

impl CarrierCatalog {
    pub fn new(entries: Vec<CarrierEntry>) -> Self {
        Self { entries }
    }

    /// KT, SKT and LG U+ for SMS; KE and CNS for AlimTalk.
    pub fn korean_default() -> Self {
        let entry = |id: &str, channel| CarrierEntry {
            id: CarrierId::parse(id).expect("catalogue ids are valid"),
            channel,
        };
        Self::new(vec![
            entry("kt", Channel::Sms),
            entry("skt", Channel::Sms),
            entry("lgu", Channel::Sms),
            entry("ke", Channel::Alimtalk),
            entry("cns", Channel::Alimtalk),
        ])
    }

    pub fn entries(&self) -> &[CarrierEntry] {
        &self.entries
    }

    pub fn channel_of(&self, carrier: &CarrierId) -> Option<Channel> {
        self.entries
            .iter()
            .find(|entry| &entry.id == carrier)
            .map(|entry| entry.channel)
    }

    pub fn carriers_of(&self, channel: Channel) -> impl Iterator<Item = &CarrierId> {
        self.entries
            .iter()
            .filter(move |entry| entry.channel == channel)
            .map(|entry| &entry.id)
    }
}

/// Whether a carrier takes traffic, as its circuit breaker decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Healthy: traffic flows.
    Closed,
    /// Failing: no new traffic; queued messages move on; probes test recovery.
    Open,
}

/// A carrier's circuit as published in the `carrier_health` bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CircuitRecord {
    pub carrier: CarrierId,
    pub state: CircuitState,
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}
