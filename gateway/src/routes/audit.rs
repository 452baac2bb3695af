//! `GET /v1/admin/audit`: the audit log for the operator (see [`crate::audit`]):
//! who changed what, when, oldest first from `since` (default: the last 7 days) or
//! a page's cursor, for one customer (`?customer=`) or everyone.
use axum::extract::State;
use axum::Json;
use rns_types::audit::Actor;
use rns_types::CustomerId;
use serde::{Deserialize, Serialize};

use crate::audit::{read, From};
use crate::error::ApiError;
use crate::extract::{Admin, ApiQuery};
use crate::pagination::PageQuery;
use crate::AppState;

const DEFAULT_DAYS: u64 = 7;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only what concerns this customer.
    customer: Option<String>,
    /// From this time on (RFC 3339); default 7 days ago. Ignored with a cursor.
    since: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// One action.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    at: String,
    actor: Actor,
    customer: Option<CustomerId>,
    /// Method and route: `PUT /v1/admin/customers/{id}/limits`.
    action: String,
    path: String,
    status: u16,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    items: Vec<AuditView>,
    /// Where the next page starts; `null` when there is nothing after this page.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    tag = "customers",
    params(AuditQuery, PageQuery),
    responses((status = 200, description = "OK", body = AuditPage), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query
        .page
        .cursor_as(|cursor| cursor.parse::<u64>().ok().filter(|sequence| *sequence > 0))?;
    let customer = query
        .customer
        .as_deref()
        .map(CustomerId::parse)
        .transpose()
        .map_err(|error| ApiError::invalid("invalid_query", error.to_string()))?;
    let from = match (cursor, query.since.as_deref()) {
        (Some(sequence), _) => From::Sequence(sequence),
        (None, Some(since)) => {
            From::Time(rns_types::time::parse_rfc3339(since).ok_or_else(|| {
                ApiError::invalid("invalid_query", "since must be an RFC 3339 time")
            })?)
        }
        (None, None) => From::Time(
            rns_types::time::now_milliseconds().saturating_sub(DEFAULT_DAYS * 24 * 3_600_000),
        ),
    };
    let (entries, more) = read(&state, customer.as_ref(), from, limit).await?;
    let next_cursor = more
        .then(|| {
            entries
                .last()
                .map(|(sequence, _)| (sequence + 1).to_string())
        })
        .flatten();
    let items = entries
        .into_iter()
        .map(|(_, entry)| AuditView {
            at: rns_types::time::rfc3339(entry.at_ms),
            actor: entry.actor,
            customer: entry.customer,
            action: entry.action,
            path: entry.path,
            status: entry.status,
        })
        .collect();
    Ok(Json(AuditPage { items, next_cursor }))
}
