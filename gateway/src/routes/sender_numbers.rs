//! Sender numbers (발신번호): a message may leave only from a number its customer
//! registered and verified (see [`rns_types::sender_number`]). Numbers are
//! normalised, so `02-123-4567` and `021234567` are one. Each gets its own opt-out
//! (080) number when registered (see [`crate::opt_outs`]).
//!
//! `POST /v1/sender-numbers` registers a number as `pending`: a mobile number is
//! texted a code at once, entered with `POST /v1/sender-numbers/{number}/verification`
//! (a new one with `…/verification-code`); any other number waits for the
//! operator's decision ([`super::sender_number_reviews`]). A number another customer
//! verified is refused (409).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use rns_types::sender_number::{SenderNumber, SenderNumberStatus, VerificationMethod};
use rns_types::PhoneNumber;
use std::ops::Bound;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::sender_numbers::{change_status, opt_out_line, view_of, SenderNumberView};
use crate::verification_codes::{refusal, send_code, CodeCheck, Purpose};
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
    responses(
        (status = 201, description = "Registered, pending verification (a mobile number was texted its code)", body = SenderNumberView),
        (status = 409, description = "Already registered, or verified by another customer", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
    security(("api_key" = [])),
)]
pub async fn register(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterSenderNumber>,
) -> Result<(StatusCode, Json<SenderNumberView>), ApiError> {
    let number = PhoneNumber::parse(&body.number)
        .map_err(|error| ApiError::invalid("invalid_number", error.to_string()))?;
    if state
        .sender_numbers()
        .held_by_another(&state, &customer, &number)
        .await?
        .is_some()
    {
        return Err(ApiError::Conflict(format!(
            "{number} is verified by another customer; a number sends for one customer only"
        )));
    }
    // The number and its opt-out line go into the profile in one change: a second
    // change right after could read a copy of the profile from before the first
    // (a lagging replica in a cluster) and not find the number.
    let allocated = state.opt_outs().allocate_line(&customer, &number).await?;
    let registered = number.clone();
    let line = allocated.clone();
    let now_ms = rns_types::time::now_milliseconds();
    let changed = state
        .directory()
        .update(&customer, move |profile| {
            if profile.sender_numbers.contains_key(&registered) {
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
            profile.sender_numbers.insert(
                registered.clone(),
                SenderNumber::registered(&registered, now_ms),
            );
            profile
                .opt_out_numbers
                .entry(registered.clone())
                .or_insert_with(|| line.clone());
            Ok(())
        })
        .await;
    let profile = match changed.map_err(ApiError::from).and_then(|changed| changed) {
        Ok(profile) => profile,
        Err(error) => {
            state.opt_outs().free_line(&allocated).await;
            return Err(error);
        }
    };
    let opt_out_number = profile.opt_out_numbers[&number].clone();
    if opt_out_number != allocated {
        state.opt_outs().free_line(&allocated).await;
    }
    let sender = &profile.sender_numbers[&number];
    let mut view = SenderNumberView::new(&number, sender, opt_out_number);
    if sender.method == VerificationMethod::SmsCode {
        // The registration stands even if no code could be sent now: the customer
        // asks for one again, within the limits.
        match send_code(&state, &holder(&customer), &number, Purpose::SenderNumber).await {
            Ok(expires_ms) => view.code_expires_at = Some(rns_types::time::rfc3339(expires_ms)),
            Err(error) => {
                tracing::warn!(%customer, %number, %error, "no verification code sent at registration");
                view.next_step = Some(format!(
                    "no code could be sent now ({error}); ask for one with POST /v1/sender-numbers/{number}/verification-code"
                ));
            }
        }
    }
    Ok((StatusCode::CREATED, Json(view)))
}

/// Who a sender number's codes are for.
fn holder(customer: &rns_types::CustomerId) -> String {
    format!("customer:{customer}")
}

/// When the code just texted expires.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodeSent {
    code_expires_at: String,
}

/// The customer's pending mobile `number`, else the reason it takes no code.
async fn pending_by_code(
    state: &AppState,
    customer: &rns_types::CustomerId,
    number: &str,
) -> Result<PhoneNumber, ApiError> {
    let number = PhoneNumber::parse(number).map_err(|_| ApiError::NotFound("sender number"))?;
    let sender = state
        .directory()
        .profile_part(customer, |profile| {
            profile.sender_numbers.get(&number).cloned()
        })
        .await?
        .flatten()
        .ok_or(ApiError::NotFound("sender number"))?;
    expect_code_pending(&sender)?;
    Ok(number)
}

fn expect_code_pending(sender: &SenderNumber) -> Result<(), ApiError> {
    if sender.method != VerificationMethod::SmsCode {
        return Err(ApiError::Conflict(
            "this number is verified by the operator, not by a code".to_owned(),
        ));
    }
    if sender.status != SenderNumberStatus::Pending {
        return Err(ApiError::Conflict(format!(
            "this number is {}, not pending verification",
            sender.status.as_str()
        )));
    }
    Ok(())
}

#[utoipa::path(
    post,
    path = "/v1/sender-numbers/{number}/verification-code",
    tag = "sender numbers",
    params(("number" = String, Path, description = "the sender number")),
    responses(
        (status = 202, description = "A new code is on its way by SMS", body = CodeSent),
        (status = 409, description = "Not a pending mobile number", body = crate::error::ErrorBody),
        (status = 429, description = "A code was sent under a minute ago, or five today", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
    security(("api_key" = [])),
)]
pub async fn send_new_code(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(number): Path<String>,
) -> Result<(StatusCode, Json<CodeSent>), ApiError> {
    let number = pending_by_code(&state, &customer, &number).await?;
    let expires_ms = send_code(&state, &holder(&customer), &number, Purpose::SenderNumber).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(CodeSent {
            code_expires_at: rns_types::time::rfc3339(expires_ms),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnterCode {
    /// The six digits texted to the number.
    code: String,
}

#[utoipa::path(
    post,
    path = "/v1/sender-numbers/{number}/verification",
    tag = "sender numbers",
    params(("number" = String, Path, description = "the sender number")),
    request_body = EnterCode,
    responses(
        (status = 200, description = "Verified: the number sends", body = SenderNumberView),
        (status = 409, description = "Not a pending mobile number, or verified by another customer meanwhile", body = crate::error::ErrorBody),
        (status = 422, description = "Wrong code (`wrong_code`), none waiting (`no_code`), or too many wrong entries (`too_many_attempts`)", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
    security(("api_key" = [])),
)]
pub async fn verify(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(number): Path<String>,
    ApiJson(body): ApiJson<EnterCode>,
) -> Result<Json<SenderNumberView>, ApiError> {
    let number = pending_by_code(&state, &customer, &number).await?;
    match state
        .codes()
        .check_code(&holder(&customer), &number, &body.code)
        .await?
    {
        CodeCheck::Right => {}
        refused => return Err(refusal(refused, &number)),
    }
    let profile = change_status(
        &state,
        &customer,
        &number,
        SenderNumberStatus::Verified,
        Some("verified by a code texted to the number".to_owned()),
        expect_code_pending,
    )
    .await?;
    Ok(Json(view_of(&state, &profile, &number).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SenderNumbersQuery {
    /// Only numbers with this status.
    status: Option<SenderNumberStatus>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// A page of a customer's sender numbers, in number order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SenderNumberPage {
    items: Vec<SenderNumberView>,
    /// The last number of this page; `null` on the last page.
    next_cursor: Option<String>,
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
    let mut numbers: Vec<(&PhoneNumber, &SenderNumber)> = profile
        .sender_numbers
        .range((start, Bound::Unbounded))
        .filter(|(_, sender)| query.status.is_none_or(|status| sender.status == status))
        .take(limit + 1)
        .collect();
    let next_cursor = (numbers.len() > limit).then(|| {
        numbers.truncate(limit);
        numbers
            .last()
            .map(|(number, _)| number.to_string())
            .unwrap_or_default()
    });
    let mut items = Vec::with_capacity(numbers.len());
    for (number, sender) in numbers {
        let line = opt_out_line(&state, &profile, number).await?;
        items.push(SenderNumberView::new(number, sender, line));
    }
    Ok(Json(SenderNumberPage { items, next_cursor }))
}

#[utoipa::path(
    delete,
    path = "/v1/sender-numbers/{number}",
    tag = "sender numbers",
    params(("number" = String, Path, description = "the sender number")),
    responses(
        (status = 204, description = "Done; no body"),
        (status = 409, description = "Suspended or rejected: only the operator changes it", body = crate::error::ErrorBody),
        crate::openapi::Errors,
    ),
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
            let sender = profile
                .sender_numbers
                .get(&number)
                .ok_or(ApiError::NotFound("sender number"))?;
            // Else removing and registering again would undo the operator's decision.
            if matches!(
                sender.status,
                SenderNumberStatus::Suspended | SenderNumberStatus::Rejected
            ) {
                return Err(ApiError::Conflict(format!(
                    "{number} is {} by the operator; only the operator changes it",
                    sender.status.as_str()
                )));
            }
            // The 080 line stays allocated to it: opt-outs recorded through it
            // still apply if the number is registered again.
            profile.sender_numbers.remove(&number);
            Ok(())
        })
        .await??;
    state.sender_numbers().release(&customer, &number).await;
    Ok(StatusCode::NO_CONTENT)
}
