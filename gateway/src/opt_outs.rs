//! Opt-outs (수신거부): recipients who asked a sender number to stop messaging them.
//!
//! Every sender number gets its own opt-out (080) number, allocated once from the
//! `opt_out_lines` KV bucket (080 number → customer and sender; creating the key is
//! the allocation, so no two senders ever share a line). The carrier's 080 line, or
//! the customer, records an opt-out; a send skips opted-out recipients and reports
//! them as `blocked`, never charging them.
//!
//! The 080 line's provider calls `POST /v1/opt-out-lines/{line}/opt-outs` with that
//! line's own key, which the operator issues (and reissues) through the admin API:
//! only its SHA-256 is kept, at `rns:opt-out-line:<line>:key`.
//!
//! The opt-outs themselves are in Redis (with AOF), per customer and sender:
//! `rns:c:<customer>:opt-outs:<sender>` is a sorted set of recipients (paged by
//! number) and `rns:c:<customer>:opt-out-times:<sender>` a hash of when each opted out.
//! A send checks up to 10,000 recipients with one `ZMSCORE` per thousand.
use std::collections::HashSet;

use async_nats::jetstream::kv;
use bytes::Bytes;
use rand::Rng;
use redis::aio::ConnectionManager;
use rns_types::subjects::OPT_OUT_LINES_BUCKET;
use rns_types::{CustomerId, PhoneNumber};

use crate::contacts::Page;
use crate::error::ApiError;

const CHECK_CHUNK: usize = 1_000;
const ALLOCATION_ATTEMPTS: usize = 32;

/// One recorded opt-out.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OptOut {
    pub recipient: String,
    pub opted_out_at_ms: u64,
}

#[derive(Clone)]
pub struct OptOutStore {
    lines: kv::Store,
    connection: ConnectionManager,
}

impl std::fmt::Debug for OptOutStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OptOutStore")
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl Into<crate::error::BoxError>) -> ApiError {
    ApiError::unavailable("opt-out lines", error)
}

fn line_key(line: &PhoneNumber) -> String {
    format!("rns:opt-out-line:{line}:key")
}

fn set_key(customer: &CustomerId, sender: &PhoneNumber) -> String {
    format!("rns:c:{customer}:opt-outs:{sender}")
}

fn times_key(customer: &CustomerId, sender: &PhoneNumber) -> String {
    format!("rns:c:{customer}:opt-out-times:{sender}")
}

impl OptOutStore {
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        connection: ConnectionManager,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            lines: jetstream
                .get_key_value(OPT_OUT_LINES_BUCKET)
                .await
                .map_err(unavailable)?,
            connection,
        })
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Allocates a new 080 number for `sender` of `customer`.
    pub async fn allocate_line(
        &self,
        customer: &CustomerId,
        sender: &PhoneNumber,
    ) -> Result<PhoneNumber, ApiError> {
        for _ in 0..ALLOCATION_ATTEMPTS {
            let candidate = format!("080{:07}", rand::rng().random_range(1_000_000..10_000_000));
            let number = PhoneNumber::parse(&candidate).map_err(|error| {
                ApiError::unavailable("opt-out lines (an invalid 080 number was drawn)", error)
            })?;
            let owner = Bytes::from(format!("{customer} {sender}"));
            match self.lines.create(number.as_str(), owner).await {
                Ok(_) => return Ok(number),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                Err(error) => return Err(unavailable(error)),
            }
        }
        Err(ApiError::unavailable(
            "opt-out lines",
            "no free opt-out number found; try again",
        ))
    }

    /// Returns an allocated but unused line (lost a race to another allocation).
    pub async fn free_line(&self, line: &PhoneNumber) {
        if let Err(error) = self.lines.purge(line.as_str()).await {
            tracing::warn!(%line, %error, "freeing an unused opt-out number failed");
        }
    }

    /// Issues a new key for the 080 line, replacing any earlier one; returns it (it
    /// is kept only as its hash).
    pub async fn issue_line_key(&self, line: &PhoneNumber) -> Result<String, ApiError> {
        let mut bytes = [0u8; 24];
        rand::rng().fill(&mut bytes);
        let key = format!("rns_line_{}", hex::encode(bytes));
        let _: () = redis::cmd("SET")
            .arg(line_key(line))
            .arg(crate::extract::hash_api_key(&key))
            .query_async(&mut self.connection())
            .await
            .map_err(|error| ApiError::unavailable("opt-out lines", error))?;
        Ok(key)
    }

    /// Whether `key` is the 080 line's current key (a line without one has none).
    pub async fn line_key_matches(&self, line: &PhoneNumber, key: &str) -> Result<bool, ApiError> {
        let stored: Option<String> = redis::cmd("GET")
            .arg(line_key(line))
            .query_async(&mut self.connection())
            .await
            .map_err(|error| ApiError::unavailable("opt-out lines", error))?;
        // Digests are compared, so the time taken tells nothing of the key's prefix.
        Ok(stored.is_some_and(|hash| hash == crate::extract::hash_api_key(key)))
    }

    /// The customer and sender number an opt-out (080) number serves.
    pub async fn line(
        &self,
        opt_out_number: &PhoneNumber,
    ) -> Result<Option<(CustomerId, PhoneNumber)>, ApiError> {
        let Some(value) = self
            .lines
            .get(opt_out_number.as_str())
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&value);
        let parsed = text.split_once(' ').and_then(|(customer, sender)| {
            Some((
                CustomerId::parse(customer).ok()?,
                PhoneNumber::parse(sender).ok()?,
            ))
        });
        Ok(parsed)
    }

    pub async fn record(
        &self,
        customer: &CustomerId,
        sender: &PhoneNumber,
        recipient: &PhoneNumber,
    ) -> Result<(), ApiError> {
        NumberSet::opt_outs(customer, sender)
            .add(&mut self.connection(), std::slice::from_ref(recipient))
            .await
            .map(|_| ())
    }

    /// Removes an opt-out (the recipient opted back in); false if there was none.
    pub async fn remove(
        &self,
        customer: &CustomerId,
        sender: &PhoneNumber,
        recipient: &PhoneNumber,
    ) -> Result<bool, ApiError> {
        NumberSet::opt_outs(customer, sender)
            .remove(&mut self.connection(), recipient)
            .await
    }

    /// Opt-outs of `sender` by recipient number, after `cursor`.
    pub async fn list(
        &self,
        customer: &CustomerId,
        sender: &PhoneNumber,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<OptOut>, ApiError> {
        let page = NumberSet::opt_outs(customer, sender)
            .page(&mut self.connection(), cursor, limit)
            .await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|(recipient, opted_out_at_ms)| OptOut {
                    recipient,
                    opted_out_at_ms,
                })
                .collect(),
            next_cursor: page.next_cursor,
        })
    }

    /// Which of `recipients` a send from `sender` must not reach: those who opted
    /// out of it and those on the customer's blocklist (one round trip per thousand).
    pub async fn blocked(
        &self,
        customer: &CustomerId,
        sender: &PhoneNumber,
        recipients: &[PhoneNumber],
    ) -> Result<HashSet<PhoneNumber>, ApiError> {
        let opted_out = NumberSet::opt_outs(customer, sender);
        let blocklist = NumberSet::blocklist(customer);
        let mut blocked = HashSet::new();
        for chunk in recipients.chunks(CHECK_CHUNK) {
            let numbers: Vec<&str> = chunk.iter().map(PhoneNumber::as_str).collect();
            let (opted, listed): (Vec<Option<f64>>, Vec<Option<f64>>) = redis::pipe()
                .cmd("ZMSCORE")
                .arg(&opted_out.members)
                .arg(&numbers)
                .cmd("ZMSCORE")
                .arg(&blocklist.members)
                .arg(&numbers)
                .query_async(&mut self.connection())
                .await?;
            blocked.extend(
                chunk
                    .iter()
                    .zip(opted.into_iter().zip(listed))
                    .filter(|(_, (opted, listed))| opted.is_some() || listed.is_some())
                    .map(|(number, _)| number.clone()),
            );
        }
        Ok(blocked)
    }

    /// Adds numbers to the customer's blocklist; how many were not on it yet.
    pub async fn block(
        &self,
        customer: &CustomerId,
        numbers: &[PhoneNumber],
    ) -> Result<usize, ApiError> {
        NumberSet::blocklist(customer)
            .add(&mut self.connection(), numbers)
            .await
    }

    /// Takes a number off the customer's blocklist; false if it was not on it.
    pub async fn unblock(
        &self,
        customer: &CustomerId,
        number: &PhoneNumber,
    ) -> Result<bool, ApiError> {
        NumberSet::blocklist(customer)
            .remove(&mut self.connection(), number)
            .await
    }

    /// The customer's blocklist by number, after `cursor`: (number, added at ms).
    pub async fn blocklist(
        &self,
        customer: &CustomerId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, u64)>, ApiError> {
        NumberSet::blocklist(customer)
            .page(&mut self.connection(), cursor, limit)
            .await
    }
}

/// Numbers with the time each was added, paged by number: one sender's opt-outs
/// (`rns:c:<customer>:opt-outs:<sender>`), or a customer's blocklist
/// (`rns:c:<customer>:blocklist`). A sorted set of the numbers (all score 0, so
/// ordered and paged by number) and a hash of when each was added.
struct NumberSet {
    members: String,
    times: String,
}

impl NumberSet {
    fn opt_outs(customer: &CustomerId, sender: &PhoneNumber) -> Self {
        Self {
            members: set_key(customer, sender),
            times: times_key(customer, sender),
        }
    }

    fn blocklist(customer: &CustomerId) -> Self {
        Self {
            members: format!("rns:c:{customer}:blocklist"),
            times: format!("rns:c:{customer}:blocklist-times"),
        }
    }

    /// Adds `numbers`; how many were new.
    async fn add(
        &self,
        connection: &mut ConnectionManager,
        numbers: &[PhoneNumber],
    ) -> Result<usize, ApiError> {
        let now_ms = rns_types::time::now_milliseconds();
        let mut added = 0;
        for chunk in numbers.chunks(CHECK_CHUNK) {
            let mut pipe = redis::pipe();
            pipe.atomic().cmd("ZADD").arg(&self.members);
            for number in chunk {
                pipe.arg(0).arg(number.as_str());
            }
            for number in chunk {
                pipe.cmd("HSETNX")
                    .arg(&self.times)
                    .arg(number.as_str())
                    .arg(now_ms)
                    .ignore();
            }
            let (new,): (usize,) = pipe.query_async(connection).await?;
            added += new;
        }
        Ok(added)
    }

    async fn remove(
        &self,
        connection: &mut ConnectionManager,
        number: &PhoneNumber,
    ) -> Result<bool, ApiError> {
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(&self.members)
            .arg(number.as_str())
            .cmd("HDEL")
            .arg(&self.times)
            .arg(number.as_str())
            .query_async(connection)
            .await?;
        Ok(removed == 1)
    }

    async fn page(
        &self,
        connection: &mut ConnectionManager,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<(String, u64)>, ApiError> {
        let start = cursor.map_or_else(|| "-".to_owned(), |cursor| format!("({cursor}"));
        let mut numbers: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(&self.members)
            .arg(start)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + 1)
            .query_async(connection)
            .await?;
        let next_cursor = (numbers.len() > limit).then(|| {
            numbers.truncate(limit);
            numbers.last().cloned().unwrap_or_default()
        });
        let times: Vec<Option<u64>> = if numbers.is_empty() {
            Vec::new()
        } else {
            redis::cmd("HMGET")
                .arg(&self.times)
                .arg(&numbers)
                .query_async(connection)
                .await?
        };
        let items = numbers
            .into_iter()
            .zip(times)
            .map(|(number, at)| (number, at.unwrap_or_default()))
            .collect();
        Ok(Page { items, next_cursor })
    }
}
