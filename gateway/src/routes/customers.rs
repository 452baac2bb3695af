//! Operator routes. `POST /v1/admin/customers`: the operator creates a customer and
//! receives its API key, shown this once; only the key's SHA-256 is stored.
//! `GET /v1/carriers`: the carriers and their circuit states.
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rand::RngCore;
use rns_types::{CustomerId, CustomerProfile};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{hash_api_key, Admin, ApiJson};
use crate::AppState;

const MAX_NAME_LENGTH: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomer {
    id: String,
    name: String,
}

pub async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateCustomer>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = CustomerId::parse(&body.id)
        .map_err(|error| ApiError::invalid("invalid_customer_id", error.to_string()))?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LENGTH {
        return Err(ApiError::invalid(
            "invalid_name",
            "name must be 1 to 200 characters",
        ));
    }
    let api_key = new_api_key();
    let profile = CustomerProfile::new(
        id.clone(),
        name.to_owned(),
        rns_types::time::now_milliseconds(),
    );
    state
        .directory()
        .create(&profile, &hash_api_key(&api_key))
        .await?;
    tracing::info!(customer = %id, "customer created");
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "name": profile.name, "api_key": api_key})),
    ))
}

/// `rns_` and 32 random bytes in hex.
fn new_api_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("rns_{}", hex::encode(bytes))
}

/// `GET /v1/carriers`: every carrier of the catalogue with its channel and circuit
/// state as the carrier workers last published it (`closed` when never published).
pub async fn carriers(
    _admin: Admin,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let records = state.health().read_all().await?;
    let items: Vec<Value> = state
        .catalog()
        .entries()
        .iter()
        .map(|entry| {
            let record = records.iter().find(|record| record.carrier == entry.id);
            json!({
                "id": entry.id,
                "channel": entry.channel,
                "circuit": record.map_or(rns_types::CircuitState::Closed, |record| record.state),
                "since": record.map(|record| rns_analytics::queries::rfc3339(record.since_ms)),
                "reason": record.map(|record| record.reason.clone()).filter(|reason| !reason.is_empty()),
            })
        })
        .collect();
    Ok(Json(json!({"items": items})))
}
