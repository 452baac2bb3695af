//! Customers' API keys: issued (shown once), listed, rotated and revoked; what a
//! request needs of its key ([`required_scope`]); when each key was last used.
//!
//! A key is stored only as its SHA-256 (`api_keys/<hash>` in KV, with its customer,
//! id, name and scopes) and listed in its customer's profile by id. Every gateway
//! follows the `api_keys` bucket and forgets a cached key the moment it changes, so a
//! revoked key stops working on every replica within the bucket's watch delay
//! (milliseconds), not the cache's lifetime. Last use is written to Redis at most
//! once a minute per key per replica (`rns:c:<customer>:keys-used`, id → ms).
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use axum::http::Method;
use rand::RngCore;
use redis::aio::ConnectionManager;
use rns_types::api_key::{ApiKeyEntry, ApiKeyRecord, Scope};
use rns_types::CustomerId;

use crate::error::ApiError;
use crate::extract::hash_api_key;
use crate::AppState;

/// Most keys one customer may hold.
pub const MAX_KEYS_PER_CUSTOMER: usize = 20;
/// Longest key name.
pub const MAX_NAME_LENGTH: usize = 100;

/// Whether a change on `path` is for owners only when made by a person: API keys
/// and people.
pub fn owners_only(method: &Method, path: &str) -> bool {
    *method != Method::GET && (path.starts_with("/v1/api-keys") || path.starts_with("/v1/members"))
}

/// What a request to `path` (the route's pattern) with `method` needs of its key:
/// reading is `read`, sending `send`, every other change `manage`. Decided here for
/// every route at once, so a new route cannot be left unchecked.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else if method == Method::POST && path == "/v1/messages" {
        Scope::Send
    } else {
        Scope::Manage
    }
}

/// A key just issued: the key itself (shown once) and its record.
#[derive(Debug)]
pub struct Issued {
    pub key: String,
    pub record: ApiKeyRecord,
    pub entry: ApiKeyEntry,
}

/// Makes a new key for `customer`: `rns_<id>_<secret>`.
pub fn new_key(customer: &CustomerId, name: &str, scopes: BTreeSet<Scope>) -> Issued {
    let mut id = [0u8; 4];
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let id = hex::encode(id);
    let key = format!("rns_{id}_{}", hex::encode(secret));
    Issued {
        entry: ApiKeyEntry {
            name: name.to_owned(),
            scopes: scopes.clone(),
            hash: hash_api_key(&key),
            created_at_ms: rns_types::time::now_milliseconds(),
        },
        record: ApiKeyRecord {
            customer: customer.clone(),
            id,
            name: name.to_owned(),
            scopes,
        },
        key,
    }
}

/// Checks a key's name and scopes as a client gave them.
pub fn checked(name: &str, scopes: &[Scope]) -> Result<(String, BTreeSet<Scope>), ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LENGTH {
        return Err(ApiError::invalid(
            "invalid_name",
            format!("name must be 1 to {MAX_NAME_LENGTH} characters"),
        ));
    }
    if scopes.is_empty() {
        return Err(ApiError::invalid(
            "invalid_scopes",
            "scopes must name at least one of send, read, manage",
        ));
    }
    Ok((name.to_owned(), scopes.iter().copied().collect()))
}

/// Issues a key for `customer` and lists it in its profile.
pub async fn issue(
    state: &AppState,
    customer: &CustomerId,
    name: &str,
    scopes: BTreeSet<Scope>,
) -> Result<Issued, ApiError> {
    let issued = new_key(customer, name, scopes);
    let id = issued.record.id.clone();
    let entry = issued.entry.clone();
    state
        .directory()
        .update(customer, |profile| {
            if profile.api_keys.len() >= MAX_KEYS_PER_CUSTOMER {
                return Err(ApiError::invalid(
                    "too_many_keys",
                    format!(
                        "a customer holds at most {MAX_KEYS_PER_CUSTOMER} keys; revoke one first"
                    ),
                ));
            }
            profile.api_keys.insert(id.clone(), entry.clone());
            Ok(())
        })
        .await??;
    if let Err(error) = state
        .directory()
        .put_key(&issued.entry.hash, &issued.record)
        .await
    {
        forget(state, customer, &id).await;
        return Err(error.into());
    }
    tracing::info!(customer = %customer, key = %id, "api key issued");
    Ok(issued)
}

/// Revokes `customer`'s key `id`: it stops working, then leaves the list.
pub async fn revoke(
    state: &AppState,
    customer: &CustomerId,
    id: &str,
) -> Result<ApiKeyEntry, ApiError> {
    let profile = state.profile(customer).await?;
    let entry = profile
        .api_keys
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::NotFoundNamed {
            what: "api key",
            id: id.chars().take(40).collect(),
        })?;
    state.directory().delete_key(&entry.hash).await?;
    // Other replicas forget it as the bucket's change reaches them; this one now.
    state.forget_key(&entry.hash);
    forget(state, customer, id).await;
    tracing::info!(customer = %customer, key = %id, "api key revoked");
    Ok(entry)
}

async fn forget(state: &AppState, customer: &CustomerId, id: &str) {
    let removed = state
        .directory()
        .update(customer, |profile| {
            profile.api_keys.remove(id);
            Ok::<(), ApiError>(())
        })
        .await;
    if !matches!(removed, Ok(Ok(_))) {
        tracing::error!(customer = %customer, key = id, "removing a key from its customer's list failed");
    }
}

/// When each key was last used, kept in Redis at most once a minute per key.
#[derive(Clone)]
pub struct KeyUsage {
    connection: ConnectionManager,
    written: moka::sync::Cache<String, ()>,
}

impl std::fmt::Debug for KeyUsage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("KeyUsage").finish_non_exhaustive()
    }
}

fn usage_key(customer: &CustomerId) -> String {
    format!("rns:c:{customer}:keys-used")
}

impl KeyUsage {
    pub fn new(connection: ConnectionManager) -> Self {
        Self {
            connection,
            written: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// Notes that `customer`'s key `id` was used now (written unless it was this
    /// minute; never delays the request).
    pub fn touch(&self, customer: &CustomerId, id: &str) {
        if id.is_empty() || self.written.contains_key(id) {
            return;
        }
        self.written.insert(id.to_owned(), ());
        let mut connection = self.connection.clone();
        let key = usage_key(customer);
        let field = id.to_owned();
        tokio::spawn(async move {
            let written: redis::RedisResult<()> = redis::cmd("HSET")
                .arg(key)
                .arg(field)
                .arg(rns_types::time::now_milliseconds())
                .query_async(&mut connection)
                .await;
            if let Err(error) = written {
                tracing::warn!(%error, "recording a key's last use failed");
            }
        });
    }

    /// When each of `customer`'s keys was last used (ms), by id.
    pub async fn last_used(&self, customer: &CustomerId) -> Result<HashMap<String, u64>, ApiError> {
        redis::cmd("HGETALL")
            .arg(usage_key(customer))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(|error| ApiError::unavailable("key usage", error))
    }
}
