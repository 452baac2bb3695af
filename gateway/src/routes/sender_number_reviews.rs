//! The operator's side of sender numbers: `GET /v1/admin/sender-numbers` lists every
//! customer's numbers (`?status=pending`: the ones waiting for a decision), and
//! `PUT /v1/admin/customers/{id}/sender-numbers/{number}` decides one — `verified`
//! after checking its registration papers, `rejected`, `suspended` (it stops
//! sending at once), or back to `pending` — always with a reason the customer sees.
//! Verifying a number another customer holds is refused (409).
use axum::extract::{Path, State};
use axum::Json;
use rns_types::sender_number::SenderNumberStatus;
use rns_types::{CustomerId, CustomerProfile, PhoneNumber};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiQuery};
use crate::pagination::PageQuery;
use crate::sender_numbers::{change_status, view_of, SenderNumberView};
use crate::AppState;

const MAX_REASON_LENGTH: usize = 500;
/// Customers read per directory page while looking for numbers.
const CUSTOMERS_PER_SCAN: usize = 100;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// Only numbers with this status (`pending`: waiting for a decision).
    status: Option<SenderNumberStatus>,
    /// Only this customer's numbers.
    customer: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// A customer's sender number, for the operator.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewedNumber {
    customer: CustomerId,
    #[serde(flatten)]
    number: SenderNumberView,
}

/// A page of sender numbers by customer, then number.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewPage {
    items: Vec<ReviewedNumber>,
    /// `<customer>/<number>` of this page's last item; `null` on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/sender-numbers",
    tag = "sender numbers",
    params(ReviewQuery, PageQuery),
    responses((status = 200, description = "OK", body = ReviewPage), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ReviewQuery>,
) -> Result<Json<ReviewPage>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query.page.cursor_as(|cursor| {
        let (customer, number) = cursor.split_once('/')?;
        Some((
            CustomerId::parse(customer).ok()?,
            PhoneNumber::parse(number).ok()?,
        ))
    })?;
    let only = query
        .customer
        .as_deref()
        .map(|customer| CustomerId::parse(customer).map_err(|_| ApiError::NotFound("customer")))
        .transpose()?;
    let mut found: Vec<(CustomerProfile, PhoneNumber)> = Vec::new();
    let status = query.status;
    let take = |found: &mut Vec<_>, profile: &CustomerProfile, after: Option<&PhoneNumber>| {
        for (number, sender) in &profile.sender_numbers {
            if after.is_some_and(|after| number <= after)
                || status.is_some_and(|status| sender.status != status)
            {
                continue;
            }
            found.push((profile.clone(), number.clone()));
        }
    };
    // The customer the cursor is in, from its number on; then the customers after.
    let mut after_customer = None;
    if let Some((customer, number)) = &cursor {
        if let Some(profile) = state.directory().profile(customer).await? {
            if only.as_ref().is_none_or(|only| only == customer) {
                take(&mut found, &profile, Some(number));
            }
        }
        after_customer = Some(customer.clone());
    }
    if let Some(only) = &only {
        if cursor.is_none() {
            if let Some(profile) = state.directory().profile(only).await? {
                take(&mut found, &profile, None);
            }
        }
    } else {
        while found.len() <= limit {
            let (profiles, more) = state
                .directory()
                .list(after_customer.as_ref(), CUSTOMERS_PER_SCAN)
                .await?;
            for profile in &profiles {
                take(&mut found, profile, None);
            }
            after_customer = profiles.last().map(|profile| profile.id.clone());
            if !more {
                break;
            }
        }
    }
    let next_cursor = (found.len() > limit).then(|| {
        found.truncate(limit);
        found
            .last()
            .map(|(profile, number)| format!("{}/{number}", profile.id))
            .unwrap_or_default()
    });
    let mut items = Vec::with_capacity(found.len());
    for (profile, number) in found {
        items.push(ReviewedNumber {
            number: view_of(&state, &profile, &number).await?,
            customer: profile.id,
        });
    }
    Ok(Json(ReviewPage { items, next_cursor }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    status: SenderNumberStatus,
    /// Why (the papers checked, the complaint received…); the customer sees it.
    reason: String,
}

#[utoipa::path(
    put,
    path = "/v1/admin/customers/{id}/sender-numbers/{number}",
    tag = "sender numbers",
    params(
        ("id" = String, Path, description = "the customer"),
        ("number" = String, Path, description = "the sender number"),
    ),
    request_body = Decision,
    responses(
        (status = 200, description = "Decided", body = SenderNumberView),
        (status = 409, description = "Verified by another customer", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
    security(("admin_key" = [])),
)]
pub async fn decide(
    _admin: Admin,
    State(state): State<AppState>,
    Path((customer, number)): Path<(String, String)>,
    ApiJson(body): ApiJson<Decision>,
) -> Result<Json<SenderNumberView>, ApiError> {
    let customer = CustomerId::parse(&customer).map_err(|_| ApiError::NotFound("customer"))?;
    let number = PhoneNumber::parse(&number).map_err(|_| ApiError::NotFound("sender number"))?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LENGTH {
        return Err(ApiError::invalid(
            "invalid_reason",
            format!("a decision needs a reason of 1 to {MAX_REASON_LENGTH} characters"),
        ));
    }
    let profile = change_status(
        &state,
        &customer,
        &number,
        body.status,
        Some(reason.to_owned()),
        |_| Ok(()),
    )
    .await?;
    tracing::info!(%customer, %number, status = body.status.as_str(), "operator decided a sender number");
    Ok(Json(view_of(&state, &profile, &number).await?))
}
