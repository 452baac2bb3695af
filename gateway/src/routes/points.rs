//! Prepaid points. `GET /v1/points`: the caller's balance (available), what is
//! reserved for messages not yet final, and what was spent. `GET /v1/points/ledger`:
//! every change, newest first, with its reason and request or message id.
//! `POST /v1/admin/customers/{id}/points`: the operator tops a customer up.
use axum::extract::{Path, State};
use axum::Json;
use rns_points::store::{Account, LedgerFilter, LedgerPage};
use rns_types::points::LedgerKind;
use rns_types::{CustomerId, RequestId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::AppState;

/// The largest single top-up; larger amounts are surely a typo.
const MAX_TOP_UP: u64 = 1_000_000_000_000;
const MAX_REASON_LENGTH: usize = 200;

#[utoipa::path(
    get,
    path = "/v1/points",
    tag = "points",
    responses((status = 200, description = "OK", body = Account), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn account(
    Customer(customer): Customer,
    State(state): State<AppState>,
) -> Result<Json<Account>, ApiError> {
    Ok(Json(state.points().account(&customer).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    /// Only entries of this kind (`top_up`, `reserve`, `settle`, `refund`, `release`).
    #[serde(default)]
    kind: Option<String>,
    /// Only entries that cover this request (an entry of several requests reserved
    /// or settled together lists each in `requests`).
    #[serde(default)]
    request_id: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

#[utoipa::path(
    get,
    path = "/v1/points/ledger",
    tag = "points",
    params(LedgerQuery, PageQuery),
    responses((status = 200, description = "OK", body = LedgerPage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn ledger(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<LedgerQuery>,
) -> Result<Json<LedgerPage>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query.page.cursor(rns_points::store::is_ledger_cursor)?;
    let kind = query
        .kind
        .map(|kind| {
            serde_json::from_value::<LedgerKind>(Value::String(kind)).map_err(|_| {
                ApiError::invalid(
                    "invalid_kind",
                    "kind is one of top_up, reserve, settle, refund, release",
                )
            })
        })
        .transpose()?;
    let request_id = query
        .request_id
        .map(|request| {
            RequestId::parse(&request).map_err(|_| {
                ApiError::invalid("invalid_request_id", "request_id is not a request id")
            })
        })
        .transpose()?;
    let filter = LedgerFilter { kind, request_id };
    Ok(Json(
        state
            .points()
            .ledger(&customer, cursor, limit, &filter)
            .await?,
    ))
}

/// A customer's balance after a top-up.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToppedUp {
    customer_id: CustomerId,
    balance: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopUp {
    amount: u64,
    #[serde(default)]
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/admin/customers/{id}/points",
    tag = "customers",
    params(("id" = String, Path, description = "the customer")),
    request_body = TopUp,
    responses((status = 200, description = "OK", body = ToppedUp), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn top_up(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TopUp>,
) -> Result<Json<ToppedUp>, ApiError> {
    let customer = CustomerId::parse(&id).map_err(|_| ApiError::NotFound("customer"))?;
    if body.amount == 0 || body.amount > MAX_TOP_UP {
        return Err(ApiError::invalid(
            "invalid_amount",
            format!("amount must be between 1 and {MAX_TOP_UP}"),
        ));
    }
    let reason = body.reason.unwrap_or_else(|| "top-up".to_owned());
    if reason.chars().count() > MAX_REASON_LENGTH {
        return Err(ApiError::invalid(
            "invalid_reason",
            format!("reason must be at most {MAX_REASON_LENGTH} characters"),
        ));
    }
    state
        .directory()
        .profile(&customer)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let balance = state
        .points()
        .top_up(&customer, body.amount, &reason)
        .await?;
    tracing::info!(customer = %customer, amount = body.amount, balance, "points topped up");
    Ok(Json(ToppedUp {
        customer_id: customer,
        balance,
    }))
}
