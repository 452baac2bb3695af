//! Opt-outs: `POST /v1/opt-outs` records one, `GET /v1/opt-outs?sender_number=` lists
//! them, `DELETE /v1/opt-outs/{sender_number}/{recipient}` removes one.
//!
//! `POST` works two ways. With the customer's key: `{"sender_number","recipient"}`.
//! Without any key, as the carrier's 080 line calls it: `{"opt_out_number",
//! "recipient"}`, where the opt-out number identifies the customer and sender. An
//! unknown opt-out number, or a sender number that is not the caller's, is 404.
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
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
    #[serde(default)]
    sender_number: Option<String>,
    #[serde(default)]
    opt_out_number: Option<String>,
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

/// The caller, if an `Authorization` header is present (and then it must be valid).
#[derive(Debug)]
pub struct MaybeCustomer(Option<CustomerId>);

impl FromRequestParts<AppState> for MaybeCustomer {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if !parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            return Ok(Self(None));
        }
        let Customer(customer) = Customer::from_request_parts(parts, state).await?;
        Ok(Self(Some(customer)))
    }
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
        .contains(&sender)
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
    security((), ("api_key" = [])),
)]
pub async fn record(
    MaybeCustomer(caller): MaybeCustomer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RecordOptOut>,
) -> Result<(StatusCode, Json<RecordedOptOut>), ApiError> {
    let recipient = PhoneNumber::parse_mobile(&body.recipient)
        .map_err(|error| ApiError::invalid("invalid_recipient", error.to_string()))?;
    let (customer, sender) = match (caller, &body.sender_number, &body.opt_out_number) {
        (Some(customer), Some(sender), None) => {
            let sender = own_sender(&state, &customer, sender).await?;
            (customer, sender)
        }
        (_, None, Some(line)) => {
            let line =
                PhoneNumber::parse(line).map_err(|_| ApiError::NotFound("opt-out number"))?;
            let (customer, sender) = state
                .opt_outs()
                .line(&line)
                .await?
                .ok_or(ApiError::NotFound("opt-out number"))?;
            (customer, sender)
        }
        (None, Some(_), None) => {
            return Err(ApiError::Unauthorized(
                "recording by sender_number needs the customer's API key; the 080 line sends opt_out_number",
            ))
        }
        _ => {
            return Err(ApiError::invalid(
                "invalid_body",
                "give exactly one of sender_number (with an API key) or opt_out_number",
            ))
        }
    };
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
