//! `Idempotency-Key` for `POST /v1/messages`, kept in Redis for 25 hours.
//!
//! The first request with a key claims it atomically (`SET NX`) with the hash of its
//! body and the request id it will use. A repeat with the same body gets the stored
//! 202 back and sends nothing; a repeat with another body is 422. A repeat that finds
//! the claim without a response (the first is still running, or its gateway died
//! after publishing) re-runs the send under the *same* request id, so JetStream drops
//! the second publish as a duplicate and both callers get the same answer. A send
//! that was refused (402, say) releases the claim, so the retry is a new request; one
//! that failed for an outage (503) keeps it, with its points reserved, because its
//! publish may have been stored: the retry goes out under the same request id.
use axum::http::HeaderMap;
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use rns_types::{CustomerId, RequestId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";
const MAX_KEY_LENGTH: usize = 255;
/// Keys live at least 24 hours; the extra hour covers clock skew between clients.
const KEY_SECONDS: u64 = 25 * 60 * 60;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    body_hash: String,
    request_id: RequestId,
    #[serde(default)]
    response: Option<Value>,
}

/// What a request with an idempotency key should do.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Send under this request id.
    Send(RequestId),
    /// Answer with this stored response and send nothing.
    Replay(Value),
    /// The key was used with another body.
    Conflict,
}

/// The `Idempotency-Key` header, validated: 1 to 255 visible ASCII characters.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::invalid(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty()
        || key.len() > MAX_KEY_LENGTH
        || !key.bytes().all(|byte| byte.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// The hash that identifies a request body.
pub fn body_hash(canonical_body: &[u8]) -> String {
    hex::encode(Sha256::digest(canonical_body))
}

#[derive(Clone)]
pub struct IdempotencyStore {
    connection: ConnectionManager,
}

impl std::fmt::Debug for IdempotencyStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("IdempotencyStore")
            .finish_non_exhaustive()
    }
}

fn redis_key(customer: &CustomerId, key: &str) -> String {
    // The key is hashed so that any visible ASCII is safe in the Redis key.
    format!("rns:idempotency:{customer}:{}", body_hash(key.as_bytes()))
}

fn unavailable(error: redis::RedisError) -> ApiError {
    ApiError::unavailable("redis", error)
}

impl IdempotencyStore {
    /// On the gateway's shared Redis connection.
    pub fn new(connection: ConnectionManager) -> Self {
        Self { connection }
    }

    pub async fn claim(
        &self,
        customer: &CustomerId,
        key: &str,
        body_hash: &str,
    ) -> Result<Claim, ApiError> {
        let redis_key = redis_key(customer, key);
        let mut connection = self.connection.clone();
        let fresh = Record {
            body_hash: body_hash.to_owned(),
            request_id: RequestId::generate(),
            response: None,
        };
        let options = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::EX(KEY_SECONDS));
        let claimed: Option<String> = connection
            .set_options(
                &redis_key,
                serde_json::to_string(&fresh).expect("a record serialises"),
                options,
            )
            .await
            .map_err(unavailable)?;
        if claimed.is_some() {
            return Ok(Claim::Send(fresh.request_id));
        }
        let stored: Option<String> = connection.get(&redis_key).await.map_err(unavailable)?;
        let Some(stored) = stored.and_then(|text| serde_json::from_str::<Record>(&text).ok())
        else {
            // Expired or released between the two calls: claim again.
            return Box::pin(self.claim(customer, key, body_hash)).await;
        };
        if stored.body_hash != body_hash {
            return Ok(Claim::Conflict);
        }
        Ok(match stored.response {
            Some(response) => Claim::Replay(response),
            None => Claim::Send(stored.request_id),
        })
    }

    /// Stores the response of a successful send under the key.
    pub async fn complete(
        &self,
        customer: &CustomerId,
        key: &str,
        body_hash: &str,
        request_id: RequestId,
        response: &impl serde::Serialize,
    ) -> Result<(), ApiError> {
        let record = Record {
            body_hash: body_hash.to_owned(),
            request_id,
            response: Some(serde_json::to_value(response).expect("an answer serialises")),
        };
        let mut connection = self.connection.clone();
        let _: () = connection
            .set_ex(
                redis_key(customer, key),
                serde_json::to_string(&record).expect("a record serialises"),
                KEY_SECONDS,
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Releases the key after a send that failed, so a retry may send.
    pub async fn release(&self, customer: &CustomerId, key: &str) {
        let mut connection = self.connection.clone();
        let released: Result<(), _> = connection.del(redis_key(customer, key)).await;
        if let Err(error) = released {
            tracing::warn!(%error, "releasing an idempotency key failed; it expires in 25 h");
        }
    }
}
