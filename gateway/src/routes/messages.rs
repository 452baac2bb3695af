//! Sending and reading messages.
//!
//! `POST /v1/messages` validates everything before anything is published: the body's
//! shape, every recipient (Korean mobile numbers, duplicates removed keeping the first
//! occurrence), the sender (registered by this customer) and the text (SMS or LMS by
//! EUC-KR length). It then publishes one [`SendRequest`] to `send.<customer>` and
//! answers 202 only after JetStream acknowledged it, so a 202 means durable.
//!
//! `GET /v1/messages/{id}` and `GET /v1/requests/{id}` read ClickHouse through
//! [`rns_analytics::ResultQueries`], scoped to the caller: another customer's ids are
//! 404, exactly like ids that never existed.
use std::collections::HashSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use rns_nats::{publish_all, Outbound};
use rns_types::content::classify_text;
use rns_types::subjects::{message_ids, send_subject};
use rns_types::wire::SendRequest;
use rns_types::{Channel, MessageId, PhoneNumber, RequestId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{ApiJson, Customer};
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendMessages {
    from: String,
    to: Vec<String>,
    text: String,
    #[serde(default)]
    subject: Option<String>,
}

pub async fn send(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SendMessages>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let recipients = parse_recipients(&body.to, state.max_recipients())?;
    let from = PhoneNumber::parse(&body.from)
        .map_err(|error| ApiError::invalid("invalid_sender", error.to_string()))?;
    let subject = body.subject.filter(|subject| !subject.trim().is_empty());
    let message_type = classify_text(&body.text, subject.as_deref())
        .map_err(|error| ApiError::invalid("invalid_text", error.to_string()))?;
    let profile = state
        .directory()
        .profile(&customer)
        .await?
        .ok_or(ApiError::Unauthorized("customer no longer exists"))?;
    if !profile.sender_numbers.contains(&from) {
        return Err(ApiError::invalid(
            "unknown_sender_number",
            format!("{from} is not a registered sender number; register it with POST /v1/sender-numbers"),
        ));
    }

    let request = SendRequest {
        request_id: RequestId::generate(),
        customer_id: customer.clone(),
        accepted_at_ms: rns_types::time::now_milliseconds(),
        channel: Channel::Sms,
        message_type,
        from,
        subject,
        text: body.text,
        recipients,
    };
    let outbound = Outbound {
        subject: send_subject(&customer),
        message_id: message_ids::send(&request.request_id),
        payload: Bytes::from(serde_json::to_vec(&request).expect("a send request serialises")),
    };
    publish_all(state.jetstream(), [outbound], 1)
        .await
        .map_err(|error| ApiError::Unavailable(error.to_string()))?;

    let message_ids: Vec<String> = (0..request.recipients.len() as u32)
        .map(|index| request.request_id.message_id(index).to_string())
        .collect();
    tracing::debug!(customer = %customer, request = %request.request_id, recipients = message_ids.len(), "send accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "request_id": request.request_id,
            "type": request.message_type,
            "recipients": message_ids.len(),
            "message_ids": message_ids,
        })),
    ))
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
