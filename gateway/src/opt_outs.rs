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
        let _: () = redis::pipe()
            .atomic()
            .cmd("ZADD")
            .arg(set_key(customer, sender))
            .arg(0)
            .arg(recipient.as_str())
            .ignore()
            .cmd("HSETNX")
            .arg(times_key(customer, sender))
            .arg(recipient.as_str())
            .arg(rns_types::time::now_milliseconds())
            .ignore()
            .query_async(&mut self.connection())
            .await?;
        Ok(())
    }

    /// Removes an opt-out (the recipient opted back in); false if there was none.
    pub async fn remove(
        &self,
        customer: &CustomerId,
        sender: &PhoneNumber,
        recipient: &PhoneNumber,
    ) -> Result<bool, ApiError> {
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .cmd("ZREM")
            .arg(set_key(customer, sender))
            .arg(recipient.as_str())
            .cmd("HDEL")
            .arg(times_key(customer, sender))
            .arg(recipient.as_str())
            .query_async(&mut self.connection())
            .await?;
        Ok(removed == 1)
    }

    /// Which of `recipients` opted out of `sender`.
    pub async fn opted_out(
        &self,
        customer: &CustomerId,
        sender: &PhoneNumber,
        recipients: &[PhoneNumber],
    ) -> Result<HashSet<PhoneNumber>, ApiError> {
        let key = set_key(customer, sender);
        let mut blocked = HashSet::new();
        for chunk in recipients.chunks(CHECK_CHUNK) {
            let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
                .arg(&key)
                .arg(chunk.iter().map(PhoneNumber::as_str).collect::<Vec<_>>())
                .query_async(&mut self.connection())
                .await?;
            blocked.extend(
                chunk
                    .iter()
                    .zip(scores)
                    .filter(|(_, score)| score.is_some())
                    .map(|(recipient, _)| recipient.clone()),
            );
        }
        Ok(blocked)
    }

    /// Opt-outs of `sender` by recipient number, after `cursor`.
    pub async fn list(
        &self,
        customer: &CustomerId,
        sender: &PhoneNumber,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<OptOut>, ApiError> {
        let start = cursor.map_or_else(|| "-".to_owned(), |cursor| format!("({cursor}"));
        let mut recipients: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(set_key(customer, sender))
            .arg(start)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + 1)
            .query_async(&mut self.connection())
            .await?;
        let next_cursor = (recipients.len() > limit).then(|| {
            recipients.truncate(limit);
            recipients.last().cloned().unwrap_or_default()
        });
        let times: Vec<Option<u64>> = if recipients.is_empty() {
            Vec::new()
        } else {
            redis::cmd("HMGET")
                .arg(times_key(customer, sender))
                .arg(&recipients)
                .query_async(&mut self.connection())
                .await?
        };
        let items = recipients
            .into_iter()
            .zip(times)
            .map(|(recipient, at)| OptOut {
                recipient,
                opted_out_at_ms: at.unwrap_or_default(),
            })
            .collect();
        Ok(Page { items, next_cursor })
    }
}
