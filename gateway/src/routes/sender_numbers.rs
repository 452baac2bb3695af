//! Sender numbers (발신번호): a message may leave only from a number its customer
//! registered. Numbers are normalised, so `02-123-4567` and `021234567` are one.
//! Each gets its own opt-out (080) number when registered (see [`crate::opt_outs`]).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::PhoneNumber;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::sending::opt_out_number_of;
use crate::AppState;

/// Registered sender numbers per customer; carriers cap caller-id lists similarly.
const MAX_SENDER_NUMBERS: usize = 1_000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterSenderNumber {
    number: String,
}

#[utoipa::path(
    post,
    path = "/v1/sender-numbers",
    tag = "sender numbers",
    request_body = RegisterSenderNumber,
    responses((status = 201, description = "Created", body = SenderNumberItem), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn register(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterSenderNumber>,
) -> Result<(StatusCode, Json<SenderNumberItem>), ApiError> {
    let number = PhoneNumber::parse(&body.number)
        .map_err(|error| ApiError::invalid("invalid_number", error.to_string()))?;
    // The number and its opt-out line go into the profile in one change: a second
    // change right after could read a copy of the profile from before the first
    // (a lagging replica in a cluster) and not find the number.
    let allocated = state.opt_outs().allocate_line(&customer, &number).await?;
    let registered = number.clone();
    let line = allocated.clone();
    let changed = state
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
            profile
                .opt_out_numbers
                .entry(registered.clone())
                .or_insert_with(|| line.clone());
            Ok(())
        })
        .await;
    let opt_out_number = match changed {
        Ok(Ok(profile)) => profile.opt_out_numbers[&number].clone(),
        Ok(Err(error)) => {
            state.opt_outs().free_line(&allocated).await;
            return Err(error);
        }
        Err(error) => {
            state.opt_outs().free_line(&allocated).await;
            return Err(error.into());
        }
    };
    if opt_out_number != allocated {
        state.opt_outs().free_line(&allocated).await;
    }
    Ok((
        StatusCode::CREATED,
        Json(SenderNumberItem {
            number,
            opt_out_number,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SenderNumbersQuery {
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// A page of a customer's sender numbers, in number order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SenderNumberPage {
    items: Vec<SenderNumberItem>,
    /// The last number of this page; `null` on the last page.
    next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SenderNumberItem {
    number: PhoneNumber,
    /// The 080 line whose calls and texts opt recipients out of this number.
    opt_out_number: PhoneNumber,
}

#[utoipa::path(
    get,
    path = "/v1/sender-numbers",
    tag = "sender numbers",
    params(SenderNumbersQuery, PageQuery),
    responses((status = 200, description = "OK", body = SenderNumberPage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SenderNumbersQuery>,
) -> Result<Json<SenderNumberPage>, ApiError> {
    let limit = query.page.limit()?;
    let after = query
        .page
        .cursor_as(|cursor| PhoneNumber::parse(cursor).ok())?;
    let profile = state.profile(&customer).await?;
    let start = match &after {
        Some(after) => Bound::Excluded(after),
        None => Bound::Unbounded,
    };
    let mut numbers: Vec<&PhoneNumber> = profile
        .sender_numbers
        .range((start, Bound::Unbounded))
        .take(limit + 1)
        .collect();
    let next_cursor = (numbers.len() > limit).then(|| {
        numbers.truncate(limit);
        numbers
            .last()
            .map(|number| number.to_string())
            .unwrap_or_default()
    });
    let mut items = Vec::with_capacity(numbers.len());
    for number in numbers {
        let line = match profile.opt_out_numbers.get(number) {
            Some(line) => line.clone(),
            None => opt_out_number_of(&state, &customer, number).await?,
        };
        items.push(SenderNumberItem {
            number: number.clone(),
            opt_out_number: line,
        });
    }
    Ok(Json(SenderNumberPage { items, next_cursor }))
}

#[utoipa::path(
    delete,
    path = "/v1/sender-numbers/{number}",
    tag = "sender numbers",
    params(("number" = String, Path, description = "the sender number")),
    responses((status = 204, description = "Done; no body"), crate::openapi::Errors),
    security(("api_key" = [])),
)]
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
