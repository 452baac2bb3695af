//! Distribution ratios: `PUT /v1/routing/{channel}` and `GET /v1/routing`.
//!
//! Weights are validated against the carriers of the channel in the catalogue:
//! non-negative integers, a positive sum of at most `MAX_TOTAL_WEIGHT`, no unknown
//! carrier. An optional `failover` order (carriers of the channel, each once) says
//! where a failing message goes next; without it, the other carriers by weight. A
//! stored change applies to the next message the dispatcher routes.
use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use rns_types::routing::{validate_failover, Weights};
use rns_types::Channel;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutRouting {
    weights: BTreeMap<String, u32>,
    #[serde(default)]
    failover: Option<Vec<String>>,
}

pub async fn put(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(channel): Path<String>,
    ApiJson(body): ApiJson<PutRouting>,
) -> Result<Json<Value>, ApiError> {
    let channel = Channel::parse(&channel).ok_or(ApiError::NotFound("channel"))?;
    let weights = Weights::validate(&body.weights, channel, state.catalog())
        .map_err(|error| ApiError::invalid("invalid_weights", error.to_string()))?;
    let failover = body
        .failover
        .as_deref()
        .map(|order| validate_failover(order, channel, state.catalog()))
        .transpose()
        .map_err(|error| ApiError::invalid("invalid_failover", error.to_string()))?;
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
    Ok(Json(json!({
        "channel": channel,
        "weights": weights,
        "failover": profile.failover_order(channel, state.catalog()),
    })))
}

pub async fn get(
    Customer(customer): Customer,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let profile = state.profile(&customer).await?;
    let mut channels = Map::new();
    for channel in Channel::ALL {
        let is_default = !profile.routing.contains_key(&channel);
        let weights = profile.weights(channel, state.catalog());
        let failover = profile.failover_order(channel, state.catalog());
        channels.insert(
            channel.to_string(),
            json!({"weights": weights, "default": is_default, "failover": failover}),
        );
    }
    Ok(Json(Value::Object(channels)))
}

#[derive(Debug, Deserialize)]
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
pub async fn report(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(range): ApiQuery<ReportRange>,
) -> Result<Json<Value>, ApiError> {
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
    let mut channels = Map::new();
    for channel in Channel::ALL {
        let carriers: Vec<_> = state.catalog().carriers_of(channel).collect();
        let column =
            |pick: fn(&rns_analytics::queries::CarrierSplit) -> u64| -> Map<String, Value> {
                carriers
                    .iter()
                    .map(|carrier| {
                        let count = splits
                            .iter()
                            .find(|split| split.carrier == carrier.as_str())
                            .map_or(0, pick);
                        (carrier.to_string(), json!(count))
                    })
                    .collect()
            };
        channels.insert(
            channel.to_string(),
            json!({
                "target": profile.weights(channel, state.catalog()),
                "first_choice": column(|split| split.first_choice),
                "delivered": column(|split| split.delivered),
                "failed_over": column(|split| split.failed_over),
                "fell_back": column(|split| split.fell_back),
            }),
        );
    }
    Ok(Json(json!({
        "from": rns_analytics::queries::rfc3339(since as u64 * 1_000),
        "to": rns_analytics::queries::rfc3339(until as u64 * 1_000),
        "channels": channels,
    })))
}
