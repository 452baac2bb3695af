//! Sending and reading messages.
//!
//! `POST /v1/messages` validates everything before anything is published: the body's
//! shape, every recipient (Korean mobile numbers, duplicates removed keeping the first
//! occurrence), the sender (registered by this customer) and the text (SMS or LMS by
//! EUC-KR length). It then publishes one [`SendRequest`] to `send.<customer>` and
//! answers 202 only after JetStream acknowledged it, so a 202 means durable.
//!
//! With an `Idempotency-Key` header, a repeated request returns the first one's
//! answer and sends nothing (see [`crate::idempotency`]).
//!
//! `GET /v1/messages/{id}` and `GET /v1/requests/{id}` read ClickHouse through
//! [`rns_analytics::ResultQueries`], scoped to the caller: another customer's ids are
//! 404, exactly like ids that never existed.
use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use rns_nats::{publish_all, Outbound};
use rns_points::Reservation;
use rns_types::content::classify_text;
use rns_types::subjects::{message_ids, send_subject};
use rns_types::wire::{Recipient, SendRequest};
use rns_types::{Channel, CustomerId, MessageId, MessageType, PhoneNumber, RequestId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, Customer};
use crate::idempotency::{self, Claim};
use crate::AppState;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessages {
    from: String,
    to: Vec<String>,
    text: String,
    #[serde(default)]
    subject: Option<String>,
}

/// A send that passed every check, waiting for its request id.
struct ValidSend {
    from: PhoneNumber,
    recipients: Vec<PhoneNumber>,
    message_type: MessageType,
    subject: Option<String>,
    text: String,
}

pub async fn send(
    Customer(customer): Customer,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendMessages>,
) -> Result<Response, ApiError> {
    let idempotency_key = idempotency::key_from(&headers)?;
    let body_hash =
        idempotency::body_hash(&serde_json::to_vec(&body).expect("a send body serialises"));
    let valid = validate(&state, &customer, body).await?;
    let Some(key) = idempotency_key else {
        let response = accept(&state, &customer, valid, RequestId::generate()).await?;
        return Ok((StatusCode::ACCEPTED, Json(response)).into_response());
    };
    let store = state.idempotency();
    match store.claim(&customer, &key, &body_hash).await? {
        Claim::Replay(response) => Ok((
            StatusCode::ACCEPTED,
            [("idempotent-replayed", "true")],
            Json(response),
        )
            .into_response()),
        Claim::Conflict => Err(ApiError::invalid(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body",
        )),
        Claim::Send(request_id) => match accept(&state, &customer, valid, request_id).await {
            Ok(response) => {
                store
                    .complete(&customer, &key, &body_hash, request_id, &response)
                    .await?;
                Ok((StatusCode::ACCEPTED, Json(response)).into_response())
            }
            Err(error) => {
                store.release(&customer, &key).await;
                Err(error)
            }
        },
    }
}

/// Every check a send must pass before anything is published.
async fn validate(
    state: &AppState,
    customer: &CustomerId,
    body: SendMessages,
) -> Result<ValidSend, ApiError> {
    let recipients = parse_recipients(&body.to, state.max_recipients())?;
    let from = PhoneNumber::parse(&body.from)
        .map_err(|error| ApiError::invalid("invalid_sender", error.to_string()))?;
    let subject = body.subject.filter(|subject| !subject.trim().is_empty());
    let message_type = classify_text(&body.text, subject.as_deref())
        .map_err(|error| ApiError::invalid("invalid_text", error.to_string()))?;
    let profile = state.profile(customer).await?;
    if !profile.sender_numbers.contains(&from) {
        return Err(ApiError::invalid(
            "unknown_sender_number",
            format!("{from} is not a registered sender number; register it with POST /v1/sender-numbers"),
        ));
    }
    Ok(ValidSend {
        from,
        recipients,
        message_type,
        subject,
        text: body.text,
    })
}

/// Publishes the send under `request_id` and returns the 202 body once JetStream
/// acknowledged it.
async fn accept(
    state: &AppState,
    customer: &CustomerId,
    valid: ValidSend,
    request_id: RequestId,
) -> Result<Value, ApiError> {
    let prices = *state.prices();
    let price = prices.of(valid.message_type);
    let request = SendRequest {
        request_id,
        customer_id: customer.clone(),
        accepted_at_ms: rns_types::time::now_milliseconds(),
        channel: Channel::Sms,
        message_type: valid.message_type,
        from: valid.from,
        subject: valid.subject,
        text: valid.text,
        recipients: valid
            .recipients
            .into_iter()
            .map(|to| Recipient::new(to, price))
            .collect(),
        blocked: Vec::new(),
        prices,
        images: Vec::new(),
        alimtalk: None,
        fallback: None,
        advertisement: false,
    };
    publish_paid(state, &request).await?;
    let message_ids: Vec<String> = (0..request.recipients.len() as u32)
        .map(|index| request.request_id.message_id(index).to_string())
        .collect();
    tracing::debug!(customer = %customer, request = %request.request_id, recipients = message_ids.len(), "send accepted");
    Ok(json!({
        "request_id": request.request_id,
        "type": request.message_type,
        "points": request.points(),
        "recipients": message_ids.len(),
        "message_ids": message_ids,
    }))
}

/// Reserves the request's points, then publishes it; a publish that fails returns
/// the points. A 402 reserves and publishes nothing.
async fn publish_paid(state: &AppState, request: &SendRequest) -> Result<(), ApiError> {
    let customer = &request.customer_id;
    let needed = request.points();
    match state
        .points()
        .reserve(customer, &request.request_id, needed)
        .await?
    {
        Reservation::Reserved => {}
        Reservation::Insufficient { balance } => {
            return Err(ApiError::InsufficientPoints { needed, balance })
        }
    }
    let outbound = Outbound {
        subject: send_subject(customer),
        message_id: message_ids::send(&request.request_id),
        payload: Bytes::from(serde_json::to_vec(request).expect("a send request serialises")),
    };
    if let Err(error) = publish_all(state.jetstream(), [outbound], 1).await {
        if let Err(release_error) = state
            .points()
            .release(
                customer,
                &request.request_id,
                "the request was not accepted",
            )
            .await
        {
            tracing::error!(customer = %customer, request = %request.request_id, %release_error, "returning the points of a failed publish failed");
        }
        return Err(ApiError::Unavailable(error.to_string()));
    }
    Ok(())
}

/// Parses and de-duplicates recipients, naming the first invalid one by position.
fn parse_recipients(raw: &[String], max_recipients: usize) -> Result<Vec<PhoneNumber>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "no_recipients",
            "'to' must name at least one recipient",
        ));
    }
    if raw.len() > max_recipients {
        return Err(ApiError::invalid(
            "too_many_recipients",
            format!(
                "'to' has {} recipients; at most {max_recipients} are allowed per request",
                raw.len()
            ),
        ));
    }
    let mut seen = HashSet::with_capacity(raw.len());
    let mut recipients = Vec::with_capacity(raw.len());
    for (position, number) in raw.iter().enumerate() {
        let parsed = PhoneNumber::parse_mobile(number).map_err(|error| {
            ApiError::invalid("invalid_recipient", format!("to[{position}]: {error}"))
        })?;
        if seen.insert(parsed.clone()) {
            recipients.push(parsed);
        }
    }
    Ok(recipients)
}

pub async fn get_message(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let message_id = MessageId::parse(&id).map_err(|_| ApiError::NotFound("message"))?;
    let message = state
        .results()
        .message(&customer, &message_id)
        .await?
        .ok_or(ApiError::NotFound("message"))?;
    Ok(Json(
        serde_json::to_value(message).expect("a message view serialises"),
    ))
}

pub async fn get_request(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let request_id = RequestId::parse(&id).map_err(|_| ApiError::NotFound("request"))?;
    let summary = state
        .results()
        .request_summary(&customer, &request_id)
        .await?
        .ok_or(ApiError::NotFound("request"))?;
    Ok(Json(
        serde_json::to_value(summary).expect("a request summary serialises"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_normalised_and_deduplicated_in_order() {
        let raw: Vec<String> = ["010-2222-2222", "01011111111", "+82 10 2222 2222"]
            .map(String::from)
            .to_vec();
        let parsed = parse_recipients(&raw, 10).unwrap();
        let numbers: Vec<&str> = parsed.iter().map(PhoneNumber::as_str).collect();
        assert_eq!(numbers, ["01022222222", "01011111111"]);
    }

    #[test]
    fn the_first_invalid_recipient_is_named_by_position() {
        let raw: Vec<String> = ["01011111111", "02-123-4567"].map(String::from).to_vec();
        let error = parse_recipients(&raw, 10).unwrap_err().to_string();
        assert!(error.starts_with("to[1]:"), "{error}");
    }

    #[test]
    fn recipient_count_is_bounded() {
        assert!(parse_recipients(&[], 10).is_err());
        let raw = vec!["01011111111".to_owned(); 11];
        assert!(parse_recipients(&raw, 10).is_err());
    }
}
