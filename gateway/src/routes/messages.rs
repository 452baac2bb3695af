//! `POST /v1/messages`: the send use case ([`crate::sending`]: validate, then accept)
//! behind HTTP — the body read, the caller's trace continued, and with an
//! `Idempotency-Key` header a repeated request answered with the first one's answer,
//! sending nothing (see [`crate::idempotency`]).
//!
//! `POST /v1/messages/preview`: what the same body would do, doing nothing.
//!
//! Reading what was sent is [`super::results`].
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rns_types::trace::{TraceContext, TRACEPARENT};
use rns_types::RequestId;

use crate::error::ApiError;
use crate::extract::{ApiJson, Customer};
use crate::idempotency::{self, Claim};
use crate::sending::{accept, preview, validate, Purpose, SendAnswer, SendMessages, SendPreview};
use crate::AppState;

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    params(
        ("traceparent" = Option<String>, Header, description = "A W3C trace context to continue: the send's messages are logged under its trace id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeating a send with the same key and body answers the first answer, sending nothing again"),
    ),
    request_body = SendMessages,
    responses(
        (status = 202, description = "Accepted: JetStream holds the send", body = SendAnswer, headers(
            ("traceparent" = String, description = "The send's trace context (the caller's trace under a new span, or a new trace): grep its trace id in the services' logs"),
            ("idempotent-replayed" = String, description = "`true` when this is the first answer to the same key, replayed"),
        )),
        crate::openapi::Errors,
    ),
    security(("api_key" = [])),
)]
pub async fn send(
    Customer(customer): Customer,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendMessages>,
) -> Result<Response, ApiError> {
    // Only a keyed send is compared with an earlier body.
    let keyed = idempotency::key_from(&headers)?.map(|key| {
        let body = serde_json::to_vec(&body).expect("a send body serialises");
        (key, idempotency::body_hash(&body))
    });
    let valid = validate(&state, &customer, body, Purpose::Send).await?;
    // The caller's trace goes on under a span of ours; without one, a trace starts.
    let trace = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceContext::parse)
        .map_or_else(TraceContext::generate, |context| context.child());
    let traced = [(TRACEPARENT, trace.to_string())];
    let Some((key, body_hash)) = keyed else {
        // A fresh id is never published again: the send may share a SEND message.
        let response = accept(
            &state,
            &customer,
            valid,
            RequestId::generate(),
            false,
            trace,
        )
        .await?;
        return Ok((StatusCode::ACCEPTED, traced, Json(response)).into_response());
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
        Claim::Send(request_id) => {
            match accept(&state, &customer, valid, request_id, true, trace).await {
                Ok(response) => {
                    store
                        .complete(&customer, &key, &body_hash, request_id, &response)
                        .await?;
                    Ok((StatusCode::ACCEPTED, traced, Json(response)).into_response())
                }
                // After an outage the send may have been stored before it failed, so
                // the claim stays: a retry goes out under the same request id, which
                // JetStream drops if the first arrived. A refusal stored nothing.
                Err(error @ ApiError::Unavailable { .. }) => Err(error),
                Err(error) => {
                    store.release(&customer, &key).await;
                    Err(error)
                }
            }
        }
    }
}

/// `POST /v1/messages/preview`: what sending this body would do — type, EUC-KR bytes,
/// the first recipients' filled messages, recipient count, points against the
/// balance, when it would go — checked as a send is, but nothing is reserved, stored
/// or sent. A body without recipients yet is previewed too.
#[utoipa::path(
    post,
    path = "/v1/messages/preview",
    tag = "messages",
    request_body = SendMessages,
    responses((status = 200, description = "What the send would do", body = SendPreview), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn preview_send(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SendMessages>,
) -> Result<Json<SendPreview>, ApiError> {
    let valid = validate(&state, &customer, body, Purpose::Preview).await?;
    Ok(Json(preview(&state, &customer, valid).await?))
}
