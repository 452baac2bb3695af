//! The operator suspends and resumes a customer.
//!
//! `PUT /v1/admin/customers/{id}/suspension {"reason"}` suspends it at once on every
//! gateway replica and dispatcher (both follow the `customers` bucket): its keys may
//! still read (results, points, ledger), but every other request is 403
//! `customer_suspended`. What it had queued is **cancelled and refunded** rather
//! than held: each send request the dispatcher reaches while the customer is
//! suspended (waiting in `SEND`, or a scheduled or recurring firing coming due)
//! ends `failed` with the reason "cancelled: the customer is suspended", and the
//! points reserved for it return. Messages already handed to a carrier's queue are
//! delivered. `DELETE …/suspension` resumes the customer; schedules still in the
//! book fire again from their next firing.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::customer::Suspension;
use rns_types::CustomerId;
use serde::Deserialize;

use crate::error::ApiError;
use crate::extract::{Admin, ApiJson};
use crate::suspension::SuspensionView;
use crate::AppState;

const MAX_REASON_LENGTH: usize = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspend {
    /// Why, for the operator's records (the customer is not shown it).
    reason: String,
}

fn customer_of(id: &str) -> Result<CustomerId, ApiError> {
    CustomerId::parse(id).map_err(|_| ApiError::NotFoundNamed {
        what: "customer",
        id: id.chars().take(40).collect(),
    })
}

#[utoipa::path(
    put,
    path = "/v1/admin/customers/{id}/suspension",
    tag = "customers",
    params(("id" = String, Path, description = "the customer")),
    request_body = Suspend,
    responses((status = 200, description = "Suspended (again: the first time is kept)", body = SuspensionView), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn suspend(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Suspend>,
) -> Result<Json<SuspensionView>, ApiError> {
    let customer = customer_of(&id)?;
    let reason = body.reason.trim().to_owned();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LENGTH {
        return Err(ApiError::invalid(
            "invalid_reason",
            format!("a suspension needs a reason of 1 to {MAX_REASON_LENGTH} characters"),
        ));
    }
    let now_ms = rns_types::time::now_milliseconds();
    let profile = state
        .directory()
        .update(&customer, |profile| {
            let suspension = profile.suspension.get_or_insert_with(|| Suspension {
                reason: reason.clone(),
                since_ms: now_ms,
            });
            suspension.reason = reason.clone();
            Ok::<(), ApiError>(())
        })
        .await??;
    tracing::warn!(%customer, %reason, "customer suspended");
    let suspension = profile
        .suspension
        .as_ref()
        .expect("the update set the suspension");
    Ok(Json(suspension.into()))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/customers/{id}/suspension",
    tag = "customers",
    params(("id" = String, Path, description = "the customer")),
    responses((status = 204, description = "Resumed (or was not suspended)"), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn resume(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let customer = customer_of(&id)?;
    state
        .directory()
        .update(&customer, |profile| {
            profile.suspension = None;
            Ok::<(), ApiError>(())
        })
        .await??;
    tracing::warn!(%customer, "customer resumed");
    Ok(StatusCode::NO_CONTENT)
}
