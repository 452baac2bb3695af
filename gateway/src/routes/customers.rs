//! Operator routes. `POST /v1/admin/customers`: the operator creates a customer and
//! receives its API key, shown this once; only the key's SHA-256 is stored.
//! `GET /v1/admin/customers`: every customer, a page at a time; `?q=` searches ids
//! and names, `?suspended=true` finds the suspended.
//! `GET /v1/carriers` (the operator, or any customer key that may read): the
//! carriers, their circuit states and the rates the operator set. `PUT /v1/admin/carriers/{id}/rate`: the operator sets (or with `null` clears)
//! a carrier's send rate at run time, shared by every carriers process.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::api_key::Scope;
use rns_types::{CustomerId, CustomerProfile};
use serde::{Deserialize, Serialize};

use crate::api_keys::new_key;
use crate::carrier_rates::MAX_RATE_PER_SECOND;
use crate::error::ApiError;
use crate::extract::{Admin, ApiJson, ApiQuery, Viewer};
use crate::pagination::PageQuery;
use crate::AppState;

const MAX_NAME_LENGTH: usize = 200;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CustomersQuery {
    /// Only customers whose id or name contains this (any case).
    q: Option<String>,
    /// Only suspended (`true`) or active (`false`) customers.
    suspended: Option<bool>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// Customers read per directory page while searching.
const CUSTOMERS_PER_SCAN: usize = 100;

/// A page of customers, in id order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerPage {
    items: Vec<CustomerSummary>,
    /// The last id of this page; `null` on the last page.
    next_cursor: Option<String>,
}

/// What the operator's list shows of a customer (never its key).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CustomerSummary {
    id: CustomerId,
    name: String,
    created_at: String,
    sender_numbers: usize,
    /// Set while the operator suspended the customer.
    suspension: Option<crate::suspension::SuspensionView>,
}

/// `GET /v1/admin/customers`: every customer (or those matching `q` and
/// `suspended`), a page at a time.
#[utoipa::path(
    get,
    path = "/v1/admin/customers",
    tag = "customers",
    params(CustomersQuery, PageQuery),
    responses((status = 200, description = "OK", body = CustomerPage), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn list(
    _admin: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<CustomersQuery>,
) -> Result<Json<CustomerPage>, ApiError> {
    let limit = query.page.limit()?;
    let after = query
        .page
        .cursor_as(|cursor| CustomerId::parse(cursor).ok())?;
    let needle = query.q.as_deref().map(str::to_lowercase);
    let wanted = |profile: &CustomerProfile| {
        needle.as_deref().is_none_or(|needle| {
            profile.id.as_str().contains(needle) || profile.name.to_lowercase().contains(needle)
        }) && query
            .suspended
            .is_none_or(|suspended| profile.suspension.is_some() == suspended)
    };
    // Pages of the directory until a page of matches (and one more) is found.
    let mut found: Vec<CustomerProfile> = Vec::with_capacity(limit + 1);
    let mut scanned_to = after;
    loop {
        let (profiles, more) = state
            .directory()
            .list(scanned_to.as_ref(), CUSTOMERS_PER_SCAN)
            .await?;
        scanned_to = profiles.last().map(|profile| profile.id.clone());
        found.extend(profiles.into_iter().filter(|profile| wanted(profile)));
        if !more || found.len() > limit {
            break;
        }
    }
    let next_cursor = (found.len() > limit).then(|| {
        found.truncate(limit);
        found
            .last()
            .map(|profile| profile.id.to_string())
            .unwrap_or_default()
    });
    let items = found
        .into_iter()
        .map(|profile| CustomerSummary {
            created_at: rns_types::time::rfc3339(profile.created_at_ms),
            sender_numbers: profile.sender_numbers.len(),
            suspension: profile.suspension.as_ref().map(Into::into),
            id: profile.id,
            name: profile.name,
        })
        .collect();
    Ok(Json(CustomerPage { items, next_cursor }))
}

#[utoipa::path(
    post,
    path = "/v1/admin/customers",
    tag = "customers",
    request_body = CreateCustomer,
    responses((status = 201, description = "Created", body = CreatedCustomer), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateCustomer>,
) -> Result<(StatusCode, Json<CreatedCustomer>), ApiError> {
    let id = CustomerId::parse(&body.id)
        .map_err(|error| ApiError::invalid("invalid_customer_id", error.to_string()))?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LENGTH {
        return Err(ApiError::invalid(
            "invalid_name",
            "name must be 1 to 200 characters",
        ));
    }
    // The first key may do everything; the customer makes narrower ones.
    let issued = new_key(&id, "first key", Scope::ALL.into_iter().collect());
    let mut profile = CustomerProfile::new(
        id.clone(),
        name.to_owned(),
        rns_types::time::now_milliseconds(),
    );
    profile
        .api_keys
        .insert(issued.record.id.clone(), issued.entry.clone());
    state
        .directory()
        .create(&profile, &issued.entry.hash, &issued.record)
        .await?;
    let api_key = issued.key;
    tracing::info!(customer = %id, "customer created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedCustomer {
            id,
            name: profile.name,
            api_key,
        }),
    ))
}

/// A customer just created, with its API key: shown this once (only its hash is
/// stored).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedCustomer {
    id: CustomerId,
    name: String,
    api_key: String,
}

/// One carrier as the operator sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CarrierView {
    id: rns_types::CarrierId,
    channel: rns_types::Channel,
    circuit: rns_types::CircuitState,
    /// When the circuit took its state; none when it never changed.
    since: Option<String>,
    /// Why the circuit opened.
    reason: Option<String>,
    /// The rate the operator set; none when the configured one applies.
    rate_per_second: Option<u32>,
}

/// `GET /v1/carriers`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CarrierList {
    items: Vec<CarrierView>,
}

/// `GET /v1/carriers`: every carrier of the catalogue with its channel and circuit
/// state as the carrier workers last published it (`closed` when never published),
/// and the rate the operator set for it.
#[utoipa::path(
    get,
    path = "/v1/carriers",
    tag = "carriers",
    responses((status = 200, description = "OK", body = CarrierList), crate::openapi::Errors),
    security(("admin_key" = []), ("api_key" = [])),
)]
pub async fn carriers(
    _viewer: Viewer,
    State(state): State<AppState>,
) -> Result<Json<CarrierList>, ApiError> {
    let records = state.health().read_all().await?;
    let rates = state.carrier_rates().all().await?;
    let items = state
        .catalog()
        .entries()
        .iter()
        .map(|entry| {
            let record = records.iter().find(|record| record.carrier == entry.id);
            CarrierView {
                id: entry.id.clone(),
                channel: entry.channel,
                circuit: record.map_or(rns_types::CircuitState::Closed, |record| record.state),
                since: record.map(|record| rns_results::queries::rfc3339(record.since_ms)),
                reason: record
                    .map(|record| record.reason.clone())
                    .filter(|reason| !reason.is_empty()),
                rate_per_second: rates.get(entry.id.as_str()).copied(),
            }
        })
        .collect();
    Ok(Json(CarrierList { items }))
}

/// `PUT /v1/admin/carriers/{id}/rate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRate {
    /// Submits per second, or `null` to return to the configured rate; required, so
    /// an empty body never clears a rate by accident.
    #[serde(deserialize_with = "present")]
    per_second: Option<u32>,
}

/// Reads a field that must be given, though it may be `null` (serde takes a missing
/// `Option` field as `None` unless it has its own reader).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Option::deserialize(deserializer)
}

/// The rate the operator set for a carrier (`null`: the configured one applies).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CarrierRate {
    id: rns_types::CarrierId,
    rate_per_second: Option<u32>,
}

/// Sets a carrier's send rate for every carriers process; the next slot of its
/// budget uses it.
#[utoipa::path(
    put,
    path = "/v1/admin/carriers/{id}/rate",
    tag = "carriers",
    params(("id" = String, Path, description = "the carrier")),
    request_body = SetRate,
    responses((status = 200, description = "OK", body = CarrierRate), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn set_rate(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetRate>,
) -> Result<Json<CarrierRate>, ApiError> {
    let carrier = rns_types::CarrierId::parse(&id)
        .ok()
        .filter(|carrier| state.catalog().channel_of(carrier).is_some())
        .ok_or(ApiError::NotFoundNamed {
            what: "carrier",
            id,
        })?;
    if body
        .per_second
        .is_some_and(|rate| rate == 0 || rate > MAX_RATE_PER_SECOND)
    {
        return Err(ApiError::invalid(
            "invalid_rate",
            format!(
                "per_second must be 1 to {MAX_RATE_PER_SECOND}, or null for the configured rate"
            ),
        ));
    }
    state.carrier_rates().set(&carrier, body.per_second).await?;
    tracing::info!(carrier = %carrier, rate_per_second = ?body.per_second, "carrier rate set");
    Ok(Json(CarrierRate {
        id: carrier,
        rate_per_second: body.per_second,
    }))
}

/// Most requests per second the operator may give one customer.
pub const MAX_REQUESTS_PER_SECOND: u32 = 100_000;

/// A customer's limits as the operator sets them; `null` (or absent) is the default.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetLimits {
    #[serde(default)]
    requests_per_second: Option<u32>,
    #[serde(default)]
    burst: Option<u32>,
    #[serde(default)]
    daily_messages: Option<u64>,
}

/// A customer's limits: what the operator set, and what applies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Limits {
    id: CustomerId,
    /// `null`: the gateway's default.
    requests_per_second: Option<u32>,
    /// `null`: twice the rate.
    burst: Option<u32>,
    /// `null`: no cap.
    daily_messages: Option<u64>,
    /// The request rate in force, per second.
    effective_requests_per_second: f64,
    /// The burst in force.
    effective_burst: f64,
}

/// Sets a customer's request rate, burst and daily cap of messages; effective on
/// every gateway replica at once (the rate's bucket is shared in Redis).
#[utoipa::path(
    put,
    path = "/v1/admin/customers/{id}/limits",
    tag = "customers",
    params(("id" = String, Path, description = "the customer")),
    request_body = SetLimits,
    responses((status = 200, description = "OK", body = Limits), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn set_limits(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SetLimits>,
) -> Result<Json<Limits>, ApiError> {
    let customer = CustomerId::parse(&id).map_err(|_| ApiError::NotFoundNamed {
        what: "customer",
        id: id.chars().take(40).collect(),
    })?;
    let within =
        |value: Option<u64>, most: u64| value.is_none_or(|value| (1..=most).contains(&value));
    if !within(
        body.requests_per_second.map(u64::from),
        MAX_REQUESTS_PER_SECOND.into(),
    ) || !within(
        body.burst.map(u64::from),
        2 * u64::from(MAX_REQUESTS_PER_SECOND),
    ) || !within(body.daily_messages, 1_000_000_000)
    {
        return Err(ApiError::invalid(
            "invalid_limits",
            format!("requests_per_second must be 1 to {MAX_REQUESTS_PER_SECOND}, burst 1 to twice that, daily_messages 1 to 1,000,000,000, or null for the default"),
        ));
    }
    let limits = rns_types::customer::CustomerLimits {
        requests_per_second: body.requests_per_second,
        burst: body.burst,
        daily_messages: body.daily_messages,
    };
    state
        .directory()
        .update(&customer, |profile| {
            profile.limits = limits;
            Ok::<(), ApiError>(())
        })
        .await??;
    tracing::info!(customer = %customer, ?limits, "customer limits set");
    let rate = state.request_rate(&limits);
    Ok(Json(Limits {
        id: customer,
        requests_per_second: limits.requests_per_second,
        burst: limits.burst,
        daily_messages: limits.daily_messages,
        effective_requests_per_second: rate.per_second,
        effective_burst: rate.burst,
    }))
}
