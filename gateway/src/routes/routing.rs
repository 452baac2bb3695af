//! Distribution ratios: `PUT /v1/routing/{channel}` and `GET /v1/routing`.
//!
//! Weights are validated against the carriers of the channel in the catalogue:
//! non-negative integers, a positive sum of at most `MAX_TOTAL_WEIGHT`, no unknown
//! carrier. An optional `failover` order (carriers of the channel, each once) says
//! where a failing message goes next; without it, the other carriers by weight. A
//! stored change applies to the next message the dispatcher routes.
//! `POST /v1/routing/{channel}/preview` shows which carriers the next messages would
//! go to under some weights, changing nothing.
use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use rns_types::routing::{validate_failover, Schedule, Weights};
use rns_types::{CarrierId, Channel};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRouting {
    weights: BTreeMap<String, u32>,
    #[serde(default)]
    failover: Option<Vec<String>>,
}

/// A channel's routing as just set.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelRoutingSet {
    channel: Channel,
    weights: Weights,
    failover: Vec<CarrierId>,
}

/// A channel's routing: its weights (equal ones by `default`) and failover order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelRouting {
    weights: Option<Weights>,
    default: bool,
    failover: Vec<CarrierId>,
}

/// Per carrier of a channel, a count.
type CarrierCounts = BTreeMap<String, u64>;

/// One channel of the routing report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelReport {
    target: Option<Weights>,
    #[schema(value_type = BTreeMap<String, u64>)]
    first_choice: CarrierCounts,
    #[schema(value_type = BTreeMap<String, u64>)]
    delivered: CarrierCounts,
    #[schema(value_type = BTreeMap<String, u64>)]
    failed_over: CarrierCounts,
    #[schema(value_type = BTreeMap<String, u64>)]
    fell_back: CarrierCounts,
}

/// The routing report over `[from, to)`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoutingReport {
    from: String,
    to: String,
    channels: BTreeMap<String, ChannelReport>,
}

/// A channel's routing as asked: the channel, its weights, its failover order.
fn validate(
    state: &AppState,
    channel: &str,
    body: PutRouting,
) -> Result<(Channel, Weights, Option<Vec<CarrierId>>), ApiError> {
    let channel = Channel::parse(channel).ok_or(ApiError::NotFound("channel"))?;
    let weights = Weights::validate(&body.weights, channel, state.catalog())
        .map_err(|error| ApiError::invalid("invalid_weights", error.to_string()))?;
    let failover = body
        .failover
        .as_deref()
        .map(|order| validate_failover(order, channel, state.catalog()))
        .transpose()
        .map_err(|error| ApiError::invalid("invalid_failover", error.to_string()))?;
    Ok((channel, weights, failover))
}

#[utoipa::path(
    put,
    path = "/v1/routing/{channel}",
    tag = "routing",
    params(("channel" = String, Path, description = "`sms` or `alimtalk`")),
    request_body = PutRouting,
    responses((status = 200, description = "OK", body = ChannelRoutingSet), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn put(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(channel): Path<String>,
    ApiJson(body): ApiJson<PutRouting>,
) -> Result<Json<ChannelRoutingSet>, ApiError> {
    let (channel, weights, failover) = validate(&state, &channel, body)?;
    let profile = state
        .directory()
        .update(&customer, |profile| {
            profile.routing.insert(channel, weights.clone());
            match &failover {
                Some(order) => profile.failover.insert(channel, order.clone()),
                None => profile.failover.remove(&channel),
            };
            Ok::<(), ApiError>(())
        })
        .await??;
    tracing::info!(customer = %customer, %channel, weights = %weights.canonical(), "routing changed");
    Ok(Json(ChannelRoutingSet {
        channel,
        failover: profile.failover_order(channel, state.catalog()),
        weights,
    }))
}

/// How many next messages a routing preview shows.
pub const PREVIEWED_MESSAGES: u64 = 20;

/// Which carriers a channel's next messages would go to under some weights.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoutingPreview {
    channel: Channel,
    weights: Weights,
    /// The carriers of the next messages, in order, while every carrier is healthy
    /// (an open circuit's share goes to the others until it closes).
    next: Vec<CarrierId>,
    /// After this many messages the pattern repeats.
    cycle_length: usize,
}

/// `POST /v1/routing/{channel}/preview`: the carriers the next messages of the channel
/// would go to under these weights, from where their counter stands (a ratio never
/// used starts its cycle from the beginning). Nothing is changed.
#[utoipa::path(
    post,
    path = "/v1/routing/{channel}/preview",
    tag = "routing",
    params(("channel" = String, Path, description = "`sms` or `alimtalk`")),
    request_body = PutRouting,
    responses((status = 200, description = "OK", body = RoutingPreview), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn preview(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(channel): Path<String>,
    ApiJson(body): ApiJson<PutRouting>,
) -> Result<Json<RoutingPreview>, ApiError> {
    let (channel, weights, _) = validate(&state, &channel, body)?;
    let start = state
        .routing_positions()
        .next(&customer, channel, &weights)
        .await?;
    let schedule = Schedule::new(&weights);
    Ok(Json(RoutingPreview {
        channel,
        next: (start..start + PREVIEWED_MESSAGES)
            .map(|position| schedule.carrier_at(position).clone())
            .collect(),
        cycle_length: schedule.cycle_length(),
        weights,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/routing",
    tag = "routing",
    responses((status = 200, description = "OK", body = std::collections::BTreeMap<String, ChannelRouting>), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn get(
    Customer(customer): Customer,
    State(state): State<AppState>,
) -> Result<Json<BTreeMap<String, ChannelRouting>>, ApiError> {
    let profile = state.profile(&customer).await?;
    let channels = Channel::ALL
        .into_iter()
        .map(|channel| {
            let routing = ChannelRouting {
                weights: profile.weights(channel, state.catalog()),
                default: !profile.routing.contains_key(&channel),
                failover: profile.failover_order(channel, state.catalog()),
            };
            (channel.to_string(), routing)
        })
        .collect();
    Ok(Json(channels))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportRange {
    from: Option<String>,
    to: Option<String>,
}

const DEFAULT_REPORT_SECONDS: i64 = 24 * 60 * 60;

fn parse_time(name: &str, value: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|time| time.timestamp())
        .map_err(|error| {
            ApiError::invalid(
                "invalid_time",
                format!("'{name}' is not an RFC 3339 time: {error}"),
            )
        })
}

/// `GET /v1/routing/report?from=&to=`: per channel, the target weights, the split
/// of first choices (what routing did) and of deliveries (what failover made of it),
/// over `[from, to)`; the last 24 hours by default.
#[utoipa::path(
    get,
    path = "/v1/routing/report",
    tag = "routing",
    params(ReportRange),
    responses((status = 200, description = "OK", body = RoutingReport), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn report(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(range): ApiQuery<ReportRange>,
) -> Result<Json<RoutingReport>, ApiError> {
    let until = match range.to.as_deref() {
        Some(value) => parse_time("to", value)?,
        None => chrono::Utc::now().timestamp() + 1,
    };
    let since = match range.from.as_deref() {
        Some(value) => parse_time("from", value)?,
        None => until - DEFAULT_REPORT_SECONDS,
    };
    if since >= until {
        return Err(ApiError::invalid(
            "invalid_time",
            "'from' must be before 'to'",
        ));
    }
    let clamp = |seconds: i64| u32::try_from(seconds.max(0)).unwrap_or(u32::MAX);
    let splits = state
        .results()
        .carrier_split(&customer, clamp(since), clamp(until))
        .await?;
    let profile = state.profile(&customer).await?;
    let mut channels = BTreeMap::new();
    for channel in Channel::ALL {
        let carriers: Vec<_> = state.catalog().carriers_of(channel).collect();
        let column = |pick: fn(&rns_results::queries::CarrierSplit) -> u64| -> CarrierCounts {
            carriers
                .iter()
                .map(|carrier| {
                    let count = splits
                        .iter()
                        .find(|split| split.carrier == carrier.as_str())
                        .map_or(0, pick);
                    (carrier.to_string(), count)
                })
                .collect()
        };
        channels.insert(
            channel.to_string(),
            ChannelReport {
                target: profile.weights(channel, state.catalog()),
                first_choice: column(|split| split.first_choice),
                delivered: column(|split| split.delivered),
                failed_over: column(|split| split.failed_over),
                fell_back: column(|split| split.fell_back),
            },
        );
    }
    Ok(Json(RoutingReport {
        from: rns_results::queries::rfc3339(since as u64 * 1_000),
        to: rns_results::queries::rfc3339(until as u64 * 1_000),
        channels,
    }))
}
