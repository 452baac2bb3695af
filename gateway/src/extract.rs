//! Request extractors that answer in the API's error format.
//!
//! - [`ApiJson`]: a JSON body; malformed JSON is 400, a well-formed body of the wrong
//!   shape 422, a body over the limit 413, all as `{"error":{"code","message"}}`.
//! - [`ApiQuery`]: query parameters; unknown or malformed ones are 422.
//! - [`Customer`]: the customer authenticated by `Authorization: Bearer <api key>`,
//!   or by a console session's cookie ([`crate::accounts`]). Keys are looked up by
//!   their SHA-256, never stored or compared in clear.
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

/// The authenticated customer, by an API key or a console session. A key must
/// exist and hold the scope the request needs ([`crate::api_keys::required_scope`]:
/// 403 otherwise); a session must exist, carry its CSRF token on a change, belong
/// to a person who proved their phone, whose role allows the route. Then the
/// customer is not suspended unless the request only reads (403
/// `customer_suspended`), and it is within its request rate (429 otherwise).
#[derive(Debug, Clone)]
pub struct Customer(pub CustomerId);

impl FromRequestParts<AppState> for Customer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let path = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path(), axum::extract::MatchedPath::as_str)
            .to_owned();
        let (customer, key_id) = match bearer_token(parts) {
            Ok(token) => {
                let key = by_key(state, token, &parts.method, &path).await?;
                (key.customer, Some(key.id))
            }
            Err(no_key) => match cookie(&parts.headers, crate::accounts::SESSION_COOKIE) {
                Some(session) => (by_session(state, session, parts, &path).await?, None),
                None => return Err(no_key),
            },
        };
        let (limits, suspended) = state
            .profile_part(&customer, |profile| {
                (profile.limits, profile.suspension.is_some())
            })
            .await?;
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
        if let Some(key_id) = key_id {
            state.key_usage().touch(&customer, &key_id);
        }
        Ok(Self(customer))
    }
}

/// The API key `token`, if it exists and holds the scope the request needs.
async fn by_key(
    state: &AppState,
    token: &str,
    method: &axum::http::Method,
    path: &str,
) -> Result<rns_types::api_key::ApiKeyRecord, ApiError> {
    let key = state
        .key(&hash_api_key(token))
        .await?
        .ok_or(ApiError::Unauthorized("unknown API key"))?;
    let needed = crate::api_keys::required_scope(method, path);
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
    Ok(key)
}

/// The customer of the person signed in with session `token`: the session exists,
/// a change carries its CSRF token, the person proved their phone, and their role
/// allows the route.
async fn by_session(
    state: &AppState,
    token: &str,
    parts: &Parts,
    path: &str,
) -> Result<CustomerId, ApiError> {
    let (_, person) = session_of(state, token, parts).await?;
    if !person.phone_verified {
        return Err(ApiError::Forbidden(
            "verify your phone first: enter the code texted to it (POST /v1/auth/phone-verification)"
                .to_owned(),
        ));
    }
    if person.role == rns_types::account::Role::Member
        && crate::api_keys::owners_only(&parts.method, path)
    {
        return Err(ApiError::Forbidden(
            "only an owner may manage API keys and people".to_owned(),
        ));
    }
    Ok(person.customer)
}

/// A person signed in to the console, whatever the state of their phone: what the
/// `/v1/auth` routes take. A change carries the session's CSRF token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session cookie's token.
    pub token: String,
    pub session: crate::accounts::Session,
    pub person: rns_types::account::Person,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = cookie(&parts.headers, crate::accounts::SESSION_COOKIE)
            .ok_or(ApiError::Unauthorized("not signed in"))?
            .to_owned();
        let (session, person) = session_of(state, &token, parts).await?;
        Ok(Self {
            token,
            session,
            person,
        })
    }
}

/// The live session of `token` and its person; a change must carry the session's
/// CSRF token.
async fn session_of(
    state: &AppState,
    token: &str,
    parts: &Parts,
) -> Result<(crate::accounts::Session, rns_types::account::Person), ApiError> {
    let session = state
        .accounts()
        .session(token)
        .await?
        .ok_or(ApiError::Unauthorized("the session ended; sign in again"))?;
    check_csrf(parts, &session)?;
    let person = state
        .accounts()
        .person(&session.person)
        .await?
        .ok_or(ApiError::Unauthorized("this person no longer exists"))?;
    Ok((session, person))
}

/// A change made with `session` must carry its CSRF token.
fn check_csrf(parts: &Parts, session: &crate::accounts::Session) -> Result<(), ApiError> {
    if is_safe(&parts.method) {
        return Ok(());
    }
    let sent = parts
        .headers
        .get(crate::accounts::CSRF_HEADER)
        .and_then(|value| value.to_str().ok());
    // Digests are compared, so the time taken tells nothing of the token.
    if sent.map(hash_api_key) != Some(hash_api_key(&session.csrf_token)) {
        return Err(ApiError::Forbidden(format!(
            "a change made with a session needs its CSRF token in {}",
            crate::accounts::CSRF_HEADER
        )));
    }
    Ok(())
}

fn is_safe(method: &axum::http::Method) -> bool {
    *method == axum::http::Method::GET || *method == axum::http::Method::HEAD
}

/// The value of cookie `name` of the request, if it has one.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// The operator or a customer: for what both may read (the carriers' health).
#[derive(Debug, Clone)]
pub enum Viewer {
    Operator,
    Customer(CustomerId),
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let is_admin = bearer_token(parts)
            .ok()
            .is_some_and(|token| state.admin_key_hash() == Some(hash_api_key(token).as_str()));
        if is_admin {
            return Ok(Self::Operator);
        }
        let Customer(customer) = Customer::from_request_parts(parts, state).await?;
        Ok(Self::Customer(customer))
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
