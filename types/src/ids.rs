//! Identifiers as newtypes.
//!
//! A customer id is chosen by the operator and becomes a token of NATS subjects
//! (`send.<customer>`) and KV keys, so it is validated on construction: 1 to 64 of
//! `[a-z0-9_-]`, which excludes `.`, `*`, `>` and whitespace. Request ids are ULIDs;
//! the message ids of a request are `<request id>-<index>`, so a message id names its
//! request and every id is derivable from the request without being stored twice.
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid id.
/// The OpenAPI schema of a type that travels as a string (`#[serde(try_from =
/// "String", into = "String")]`): a string, described.
#[macro_export]
macro_rules! string_schema {
    ($type:ty, $description:literal) => {
        impl utoipa::PartialSchema for $type {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some($description))
                    .into()
            }
        }
        impl utoipa::ToSchema for $type {}
    };
}

string_schema!(
    CustomerId,
    "A customer's id: lowercase letters, digits and `-`"
);
string_schema!(RequestId, "A send request's id (a ULID)");
string_schema!(
    MessageId,
    "A message's id: its request's id, `-`, and its position in the request"
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    pub kind: &'static str,
    pub reason: &'static str,
}

const MAX_CUSTOMER_ID_LENGTH: usize = 64;

/// A customer (tenant) id: 1-64 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerId(String);

impl CustomerId {
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let invalid = |reason| InvalidId {
            kind: "customer id",
            reason,
        };
        if value.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if value.len() > MAX_CUSTOMER_ID_LENGTH {
            return Err(invalid("must be at most 64 characters"));
        }
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        if !value.chars().all(allowed) {
            return Err(invalid("may contain only a-z, 0-9, '_' and '-'"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CustomerId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<CustomerId> for String {
    fn from(id: CustomerId) -> Self {
        id.0
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A request id: a ULID, so ids sort by acceptance time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(ulid::Ulid);

/// A new ULID, greater than every other this process made: within one millisecond
/// the random part counts up, so ids sort in the order they were made (lists
/// ordered by id are in creation order). Falls back to a random ULID in the
/// practically impossible case that one millisecond exhausts the random part.
pub fn monotonic_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> =
        std::sync::Mutex::new(ulid::Generator::new());
    GENERATOR
        .lock()
        .map(|mut generator| generator.generate().unwrap_or_else(|_| ulid::Ulid::new()))
        .unwrap_or_else(|_| ulid::Ulid::new())
}

impl RequestId {
    pub fn generate() -> Self {
        Self(monotonic_ulid())
    }

    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        ulid::Ulid::from_str(value)
            .map(Self)
            .map_err(|_| InvalidId {
                kind: "request id",
                reason: "must be a 26-character ULID",
            })
    }

    /// A request id made of a time (epoch milliseconds) and 80 bits chosen by the
    /// caller, for ids that must be the same every time they are derived.
    pub fn from_parts(at_ms: u64, random: u128) -> Self {
        Self(ulid::Ulid::from_parts(at_ms, random))
    }

    /// The id's 128 bits, for binary encodings ([`crate::compact`]).
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_bytes()
    }

    /// The id of 128 bits from [`RequestId::to_bytes`]; every value is a ULID.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(ulid::Ulid::from_bytes(bytes))
    }

    /// The lowest id of a request made at `at_ms`: every id made at or after that
    /// time sorts at or above it, every id made before sorts below.
    pub fn first_at(at_ms: u64) -> Self {
        Self::from_parts(at_ms, 0)
    }

    /// When the id was made, in epoch milliseconds.
    pub fn made_at_ms(&self) -> u64 {
        self.0.timestamp_ms()
    }

    /// The id of this request's message at `index` (0-based position in its recipients).
    pub fn message_id(&self, index: u32) -> MessageId {
        MessageId {
            request_id: *self,
            index,
        }
    }
}

impl TryFrom<String> for RequestId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

/// A message id: `<request id>-<index>`, one per recipient of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MessageId {
    request_id: RequestId,
    index: u32,
}

impl MessageId {
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let invalid = InvalidId {
            kind: "message id",
            reason: "must be '<request id>-<index>'",
        };
        let (request, index) = value.split_once('-').ok_or(invalid.clone())?;
        let request_id = RequestId::parse(request).map_err(|_| invalid.clone())?;
        if index.is_empty() || !index.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(invalid);
        }
        let index = index.parse().map_err(|_| invalid)?;
        Ok(Self { request_id, index })
    }

    pub fn request_id(&self) -> RequestId {
        self.request_id
    }

    pub fn index(&self) -> u32 {
        self.index
    }
}

impl TryFrom<String> for MessageId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MessageId> for String {
    fn from(id: MessageId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}-{}", self.request_id, self.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_in_a_row_sort_in_the_order_they_were_made() {
        let made: Vec<String> = (0..1_000).map(|_| monotonic_ulid().to_string()).collect();
        let mut sorted = made.clone();
        sorted.sort();
        assert_eq!(made, sorted);
        sorted.dedup();
        assert_eq!(sorted.len(), made.len());
    }

    #[test]
    fn customer_ids_that_could_escape_a_subject_are_rejected() {
        for bad in ["", "a.b", "a*", "a>", "a b", "A", "a\tb", &"x".repeat(65)] {
            assert!(CustomerId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(
            CustomerId::parse("acme-01_x").unwrap().as_str(),
            "acme-01_x"
        );
    }

    #[test]
    fn message_id_round_trips_and_names_its_request() {
        let request = RequestId::generate();
        let message = request.message_id(42);
        let parsed = MessageId::parse(&message.to_string()).unwrap();
        assert_eq!(parsed, message);
        assert_eq!(parsed.request_id(), request);
        assert_eq!(parsed.index(), 42);
    }

    #[test]
    fn malformed_message_ids_are_rejected() {
        let request = RequestId::generate();
        for bad in [
            String::new(),
            request.to_string(),
            format!("{request}-"),
            format!("{request}-x"),
            format!("{request}--1"),
            "nope-1".to_owned(),
        ] {
            assert!(MessageId::parse(&bad).is_err(), "{bad:?} was accepted");
        }
    }
}
