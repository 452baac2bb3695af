//! Sender numbers (발신번호): a message may leave only from a number its customer
//! registered. Numbers are normalised, so `02-123-4567` and `021234567` are one.
//! Each gets its own opt-out (080) number when registered (see [`crate::opt_outs`]).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::{CustomerId, PhoneNumber};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, Customer};
use crate::AppState;

/// Registered sender numbers per customer; carriers cap caller-id lists similarly.
const MAX_SENDER_NUMBERS: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSenderNumber {
    number: String,
}

pub async fn register(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterSenderNumber>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let number = PhoneNumber::parse(&body.number)
        .map_err(|error| ApiError::invalid("invalid_number", error.to_string()))?;
    let registered = number.clone();
    state
        .directory()
        .update(&customer, move |profile| {
            if profile.sender_numbers.contains(&registered) {
                return Err(ApiError::Conflict(format!(
                    "{registered} is already registered"
                )));
            }
            if profile.sender_numbers.len() >= MAX_SENDER_NUMBERS {
                return Err(ApiError::invalid(
                    "too_many_sender_numbers",
                    format!("at most {MAX_SENDER_NUMBERS} sender numbers may be registered"),
                ));
            }
            profile.sender_numbers.insert(registered.clone());
            Ok(())
        })
        .await??;
    let opt_out_number = opt_out_number_of(&state, &customer, &number).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"number": number, "opt_out_number": opt_out_number})),
    ))
}

/// The opt-out number of a registered sender number, allocated on first use (sender
/// numbers registered before opt-out numbers existed get theirs here).
pub async fn opt_out_number_of(
    state: &AppState,
    customer: &CustomerId,
    sender: &PhoneNumber,
) -> Result<PhoneNumber, ApiError> {
    let profile = state.profile(customer).await?;
    if let Some(line) = profile.opt_out_numbers.get(sender) {
        return Ok(line.clone());
    }
    let allocated = state.opt_outs().allocate_line(customer, sender).await?;
    let profile = state
        .directory()
        .update(customer, |profile| {
            if !profile.sender_numbers.contains(sender) {
                return Err(ApiError::NotFound("sender number"));
            }
            profile
                .opt_out_numbers
                .entry(sender.clone())
                .or_insert_with(|| allocated.clone());
            Ok(())
        })
        .await?;
    let line = match profile {
        Ok(profile) => profile.opt_out_numbers[sender].clone(),
        Err(error) => {
            state.opt_outs().free_line(&allocated).await;
            return Err(error);
        }
    };
    if line != allocated {
        state.opt_outs().free_line(&allocated).await;
    }
    Ok(line)
}

pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
) -> Result<Json<Value>, ApiError> {
    let profile = state.profile(&customer).await?;
    let mut items = Vec::with_capacity(profile.sender_numbers.len());
    for number in &profile.sender_numbers {
        let line = match profile.opt_out_numbers.get(number) {
            Some(line) => line.clone(),
            None => opt_out_number_of(&state, &customer, number).await?,
        };
        items.push(json!({"number": number, "opt_out_number": line}));
    }
    Ok(Json(json!({"items": items})))
}

pub async fn delete(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<StatusCode, ApiError> {
    let number = PhoneNumber::parse(&number).map_err(|_| ApiError::NotFound("sender number"))?;
    state
        .directory()
        .update(&customer, |profile| {
            if profile.sender_numbers.remove(&number) {
                // The 080 line stays allocated to it: opt-outs recorded through it
                // still apply if the number is registered again.
                Ok(())
            } else {
                Err(ApiError::NotFound("sender number"))
            }
        })
        .await??;
    Ok(StatusCode::NO_CONTENT)
}
