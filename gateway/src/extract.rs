//! Request extractors that answer in the API's error format.
//!
//! - [`ApiJson`]: a JSON body; malformed JSON is 400, a well-formed body of the wrong
//!   shape 422, a body over the limit 413, all as `{"error":{"code","message"}}`.
//! - [`ApiQuery`]: query parameters; unknown or malformed ones are 422.
//! - [`Customer`]: the customer authenticated by `Authorization: Bearer <api key>`.
//!   Keys are looked up by their SHA-256, never stored or compared in clear.
//! - [`Admin`]: the operator, authenticated by the configured admin key.
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::Json;
use rns_types::api_key::Scope;
use rns_types::CustomerId;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// A JSON request body, rejected in the API's error format. Every body is a JSON
/// object: serde would also read a struct from an array of its fields in order
/// (`[null, null]`), which no client means and the API's document does not allow.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(ObjectOnly(value)) = Json::<ObjectOnly<T>>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// `T`, read only from a JSON object.
struct ObjectOnly<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<T>(std::marker::PhantomData<T>);

        impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visitor<T> {
            type Value = ObjectOnly<T>;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
            }
        }

        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}

/// Query parameters, rejected in the API's error format (422 `invalid_query`).
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid("invalid_query", rejection.body_text()))?;
        Ok(Self(value))
    }
}

/// The SHA-256 of an API key, hex-encoded: the only form in which keys are stored.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

pub fn bearer_token(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(ApiError::Unauthorized("missing Authorization header"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization header is not text"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or(ApiError::Unauthorized(
            "Authorization must be 'Bearer <api key>'",
        ))
}

/// The authenticated customer: its key exists, holds the scope the request needs
/// ([`crate::api_keys::required_scope`]: 403 otherwise), the customer is not
/// suspended unless the request only reads (403 `customer_suspended`), and it is
/// within its request rate (429 otherwise).
#[derive(Debug, Clone)]
pub struct Customer(pub CustomerId);

impl FromRequestParts<AppState> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?;
        let key = state
            .key(&hash_api_key(token))
            .await?
            .ok_or(ApiError::Unauthorized("unknown API key"))?;
        let path = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path(), axum::extract::MatchedPath::as_str);
        let needed = crate::api_keys::required_scope(&parts.method, path);
        if !key.scopes.contains(&needed) {
            return Err(ApiError::Forbidden(format!(
                "this key may not {} (it lacks the {needed} scope)",
                match needed {
                    Scope::Send => "send",
                    Scope::Read => "read",
                    Scope::Manage => "change anything",
                }
            )));
        }
        let customer = key.customer;
        let (limits, suspended) = state
            .directory()
            .profile_part(&customer, |profile| {
                (profile.limits, profile.suspension.is_some())
            })
            .await?
            .ok_or(ApiError::Unauthorized("customer no longer exists"))?;
        if suspended && parts.method != axum::http::Method::GET {
            return Err(ApiError::Suspended);
        }
        state
            .rate_limits()
            .take(
                &format!("rns:rate:customer:{customer}"),
                state.request_rate(&limits),
                "this customer",
            )
            .await?;
        state.key_usage().touch(&customer, &key.id);
        Ok(Self(customer))
    }
}

/// The operator, holder of the admin key.
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts)?;
        let Some(expected) = state.admin_key_hash() else {
            return Err(ApiError::Unauthorized("no admin key is configured"));
        };
        // Comparing digests keeps the comparison time independent of the key's prefix.
        if hash_api_key(token) != expected {
            return Err(ApiError::Unauthorized("wrong admin key"));
        }
        Ok(Self)
    }
}
