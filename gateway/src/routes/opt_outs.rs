//! Opt-outs: `POST /v1/opt-outs` records one, `GET /v1/opt-outs?sender_number=` lists
//! them, `DELETE /v1/opt-outs/{sender_number}/{recipient}` removes one.
//!
//! `POST` takes the customer's key and `{"sender_number","recipient"}`; a sender
//! number that is not the caller's is 404. The 080 line's provider records opt-outs
//! with the line's own key instead ([`super::opt_out_lines`]).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::{CustomerId, PhoneNumber};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::opt_outs::OptOut;
use crate::pagination::PageQuery;
use crate::sending::opt_out_number_of;
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordOptOut {
    sender_number: String,
    recipient: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OptOutsQuery {
    sender_number: String,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// The caller's registered sender number, or 404.
async fn own_sender(
    state: &AppState,
    customer: &CustomerId,
    raw: &str,
) -> Result<PhoneNumber, ApiError> {
    let sender = PhoneNumber::parse(raw).map_err(|_| ApiError::NotFound("sender number"))?;
    if !state
        .profile(customer)
        .await?
        .sender_numbers
        .contains_key(&sender)
    {
        return Err(ApiError::NotFound("sender number"));
    }
    Ok(sender)
}

/// An opt-out just recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RecordedOptOut {
    sender_number: PhoneNumber,
    recipient: PhoneNumber,
}

/// A page of one sender number's opt-outs, with the 080 line that records them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OptOutPage {
    sender_number: PhoneNumber,
    opt_out_number: PhoneNumber,
    items: Vec<OptOut>,
    next_cursor: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/opt-outs",
    tag = "opt-outs",
    request_body = RecordOptOut,
    responses((status = 201, description = "Created", body = RecordedOptOut), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn record(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RecordOptOut>,
) -> Result<(StatusCode, Json<RecordedOptOut>), ApiError> {
    let recipient = PhoneNumber::parse_mobile(&body.recipient)
        .map_err(|error| ApiError::invalid("invalid_recipient", error.to_string()))?;
    let sender = own_sender(&state, &customer, &body.sender_number).await?;
    state
        .opt_outs()
        .record(&customer, &sender, &recipient)
        .await?;
    tracing::info!(customer = %customer, sender = %sender, "opt-out recorded");
    Ok((
        StatusCode::CREATED,
        Json(RecordedOptOut {
            sender_number: sender,
            recipient,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/opt-outs",
    tag = "opt-outs",
    params(OptOutsQuery, PageQuery),
    responses((status = 200, description = "OK", body = OptOutPage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<OptOutsQuery>,
) -> Result<Json<OptOutPage>, ApiError> {
    let sender = own_sender(&state, &customer, &query.sender_number).await?;
    let limit = query.page.limit()?;
    let cursor = query
        .page
        .cursor(|cursor| cursor.len() <= 11 && cursor.bytes().all(|byte| byte.is_ascii_digit()))?;
    let opt_out_number = opt_out_number_of(&state, &customer, &sender).await?;
    let page = state
        .opt_outs()
        .list(&customer, &sender, cursor, limit)
        .await?;
    Ok(Json(OptOutPage {
        sender_number: sender,
        opt_out_number,
        items: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/opt-outs/{sender_number}/{recipient}",
    tag = "opt-outs",
    params(("sender_number" = String, Path, description = "the opt-out line"), ("recipient" = String, Path, description = "the recipient")),
    responses((status = 204, description = "Done; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn remove(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path((sender, recipient)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let sender = own_sender(&state, &customer, &sender).await?;
    let recipient =
        PhoneNumber::parse_mobile(&recipient).map_err(|_| ApiError::NotFound("opt-out"))?;
    if !state
        .opt_outs()
        .remove(&customer, &sender, &recipient)
        .await?
    {
        return Err(ApiError::NotFound("opt-out"));
    }
    Ok(StatusCode::NO_CONTENT)
}
