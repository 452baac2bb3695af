//! Status webhooks: `PUT /v1/webhook` sets where the caller's final states (or every
//! event, `"events":"all"`) are POSTed and the secret they are signed with;
//! `GET /v1/webhook` shows it (never the secret), `DELETE /v1/webhook` stops it, and
//! `GET /v1/webhook/deliveries` lists recent attempts, newest first. Delivery itself
//! is the webhook worker's (see `rns_analytics::webhooks`); the signature scheme is
//! [`rns_types::webhook`]'s.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rns_types::webhook::{WebhookConfig, WebhookEvents};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::webhooks::{check_url, AttemptPage, SECRET_LENGTHS};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWebhook {
    url: String,
    secret: String,
    #[serde(default)]
    events: WebhookEvents,
}

/// A webhook as the API shows it: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    url: String,
    events: WebhookEvents,
    updated_at: String,
}

fn view(config: &WebhookConfig) -> WebhookView {
    WebhookView {
        url: config.url.clone(),
        events: config.events,
        updated_at: rns_types::time::rfc3339(config.updated_at_ms),
    }
}

#[utoipa::path(
    put,
    path = "/v1/webhook",
    tag = "webhook",
    request_body = PutWebhook,
    responses((status = 200, description = "OK", body = WebhookView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn put(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PutWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    let url = check_url(body.url.trim(), state.allow_private_webhooks())
        .map_err(|message| ApiError::invalid("invalid_webhook", message))?;
    let secret_length = body.secret.chars().count();
    if !SECRET_LENGTHS.contains(&secret_length) {
        return Err(ApiError::invalid(
            "invalid_webhook",
            format!(
                "secret must be {} to {} characters, not {secret_length}",
                SECRET_LENGTHS.start(),
                SECRET_LENGTHS.end()
            ),
        ));
    }
    let config = WebhookConfig {
        url,
        secret: body.secret,
        events: body.events,
        updated_at_ms: rns_types::time::now_milliseconds(),
    };
    state.webhooks().put(&customer, &config).await?;
    tracing::info!(customer = %customer, url = %config.url, "webhook set");
    Ok(Json(view(&config)))
}

#[utoipa::path(
    get,
    path = "/v1/webhook",
    tag = "webhook",
    responses((status = 200, description = "OK", body = WebhookView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn get(
    Customer(customer): Customer,
    State(state): State<AppState>,
) -> Result<Json<WebhookView>, ApiError> {
    let config = state
        .webhooks()
        .get(&customer)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(view(&config)))
}

#[utoipa::path(
    delete,
    path = "/v1/webhook",
    tag = "webhook",
    responses((status = 204, description = "Done; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn delete(
    Customer(customer): Customer,
    State(state): State<AppState>,
) -> Result<StatusCode, ApiError> {
    if state.webhooks().delete(&customer).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook"))
    }
}

/// `GET /v1/webhook/deliveries?cursor=&limit=`: attempts, newest first, each with its
/// delivery id, attempt number, outcome (`delivered`, `failed` with the next attempt's
/// time, `abandoned`), the receiver's status or the error, and how long it took.
#[utoipa::path(
    get,
    path = "/v1/webhook/deliveries",
    tag = "webhook",
    params(PageQuery),
    responses((status = 200, description = "OK", body = AttemptPage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn deliveries(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<AttemptPage>, ApiError> {
    let limit = page.limit()?;
    let cursor = page.cursor(rns_points::store::is_ledger_cursor)?;
    Ok(Json(
        state.webhooks().attempts(&customer, cursor, limit).await?,
    ))
}
