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
use crate::extract::{ApiJson, Customer};
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
    let profile = state
        .directory()
        .profile(&customer)
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
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
