//! A customer's API keys: `POST /v1/api-keys` issues one (named, with scopes; the key
//! is shown this once), `GET /v1/api-keys` lists them with when each was last used,
//! `POST /v1/api-keys/{id}/rotate` replaces one by a new key of the same name and
//! scopes, `DELETE /v1/api-keys/{id}` revokes one. Every replica stops taking a
//! revoked key at once (see [`crate::api_keys`]). Needs the `manage` scope to change,
//! `read` to list.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::api_key::Scope;
use serde::{Deserialize, Serialize};

use crate::api_keys::{checked, issue, revoke, Issued};
use crate::error::ApiError;
use crate::extract::{ApiJson, Customer};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    name: String,
    /// What the key may do: `send`, `read`, `manage`.
    scopes: Vec<Scope>,
}

/// A key just issued: `key` is shown only now; RNS keeps its hash.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NewKey {
    id: String,
    name: String,
    scopes: Vec<Scope>,
    key: String,
    created_at: String,
}

impl From<Issued> for NewKey {
    fn from(issued: Issued) -> Self {
        Self {
            id: issued.record.id,
            name: issued.record.name,
            scopes: issued.record.scopes.into_iter().collect(),
            key: issued.key,
            created_at: rns_types::time::rfc3339(issued.entry.created_at_ms),
        }
    }
}

/// A key as lists show it: never the key itself.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// The key's id: its first part (`rns_<id>_…`).
    id: String,
    name: String,
    scopes: Vec<Scope>,
    created_at: String,
    /// `null` if unused (it is noted at most once a minute).
    last_used_at: Option<String>,
}

/// The customer's keys, oldest first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct KeyList {
    items: Vec<KeyView>,
}

#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api-keys",
    request_body = CreateKey,
    responses((status = 201, description = "Issued", body = NewKey), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn create(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let (name, scopes) = checked(&body.name, &body.scopes)?;
    let issued = issue(&state, &customer, &name, scopes).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api-keys",
    responses((status = 200, description = "OK", body = KeyList), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
) -> Result<Json<KeyList>, ApiError> {
    let profile = state.profile(&customer).await?;
    let used = state.key_usage().last_used(&customer).await?;
    let mut items: Vec<KeyView> = profile
        .api_keys
        .into_iter()
        .map(|(id, entry)| KeyView {
            last_used_at: used.get(&id).map(|at_ms| rns_types::time::rfc3339(*at_ms)),
            id,
            name: entry.name,
            scopes: entry.scopes.into_iter().collect(),
            created_at: rns_types::time::rfc3339(entry.created_at_ms),
        })
        .collect();
    items.sort_by(|left, right| {
        left.created_at
            .cmp(&right.created_at)
            .then(left.id.cmp(&right.id))
    });
    Ok(Json(KeyList { items }))
}

#[utoipa::path(
    post,
    path = "/v1/api-keys/{id}/rotate",
    tag = "api-keys",
    params(("id" = String, Path, description = "the key's id")),
    responses((status = 201, description = "A new key of the same name and scopes; the old one no longer works", body = NewKey), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn rotate(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<NewKey>), ApiError> {
    let profile = state.profile(&customer).await?;
    let entry = profile
        .api_keys
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::NotFoundNamed {
            what: "api key",
            id: id.chars().take(40).collect(),
        })?;
    let issued = issue(&state, &customer, &entry.name, entry.scopes).await?;
    revoke(&state, &customer, &id).await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "api-keys",
    params(("id" = String, Path, description = "the key's id")),
    responses((status = 204, description = "Revoked; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn delete(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    revoke(&state, &customer, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
