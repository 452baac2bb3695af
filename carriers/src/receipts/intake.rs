//! `POST /v1/receipts/{carrier}`: where carriers of the HTTP protocol post delivery
//! receipts, on the carriers service's receipts listener (`receipts_listen`).
//!
//! ```text
//! POST /v1/receipts/kt
//! Authorization: Bearer <the carrier's receipt_token>
//! Content-Type: application/json
//!
//! {"receipts":[{"carrier_reference":"kt-0a1b…","state":"delivered"},
//!              {"carrier_reference":"kt-77e0…","state":"undeliverable","detail":"UNDELIV 001"}]}
//! ```
//!
//! A single receipt may also be posted on its own (the object without the list); at
//! most [`MAX_RECEIPTS_PER_POST`] per post. States: `delivered`, `undeliverable`,
//! `expired`. The answer, `200 {"stored": n}`, comes only once every receipt is stored
//! in JetStream (`RECEIPTS`): a carrier that got no 200 posts again, and the repeat
//! is dropped (`Nats-Msg-Id` of carrier, reference and state) or recognised later.
//! Errors: 401 without the carrier's token, 404 for a carrier that takes no receipts,
//! 400/415/422 for a body that is not a list of receipts, 503 while JetStream cannot
//! store them — each as `{"error":{"code","message"}}`.
use std::collections::HashMap;
use std::sync::Arc;

use async_nats::jetstream::context::Context;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use rns_nats::{publish_all, Outbound, PublishFailed};
use rns_types::receipt::{
    correlation_key, CarrierReceipt, ReceiptNotice, MAX_RECEIPT_DETAIL_CHARACTERS,
};
use rns_types::subjects::{message_ids, receipt_subject};
use rns_types::CarrierId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// Receipts in one post at most.
pub const MAX_RECEIPTS_PER_POST: usize = 1_000;

/// The body of a post: a list of receipts, or one.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum ReceiptPost {
    Many { receipts: Vec<CarrierReceipt> },
    One(CarrierReceipt),
}

impl ReceiptPost {
    fn into_receipts(self) -> Vec<CarrierReceipt> {
        match self {
            ReceiptPost::Many { receipts } => receipts,
            ReceiptPost::One(receipt) => vec![receipt],
        }
    }
}

/// The answer to a post that was stored.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    pub stored: usize,
}

/// Why a post was refused; the one place that maps errors to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("{0} takes no receipts here")]
    UnknownCarrier(String),
    #[error("a bearer token of this carrier is required")]
    Unauthorized,
    #[error("{0}")]
    Body(#[from] JsonRejection),
    #[error("receipt {index}: {reason}")]
    InvalidReceipt { index: usize, reason: String },
    #[error("at most {MAX_RECEIPTS_PER_POST} receipts per post, and at least one")]
    Count,
    #[error("receipts cannot be stored now: {0}")]
    Unavailable(#[from] PublishFailed),
}

#[derive(Serialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize)]
struct ErrorDetail {
    code: &'static str,
    message: String,
}

impl IntoResponse for IntakeError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            IntakeError::UnknownCarrier(_) => (StatusCode::NOT_FOUND, "unknown_carrier"),
            IntakeError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            IntakeError::Body(rejection) => (rejection.status(), "invalid_body"),
            IntakeError::InvalidReceipt { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_receipt")
            }
            IntakeError::Count => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_receipt_count"),
            IntakeError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        if let IntakeError::Unavailable(error) = &self {
            tracing::warn!(%error, "storing receipts failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        };
        (status, Json(body)).into_response()
    }
}

/// What the intake needs: where to store receipts, and each carrier's token (as its
/// SHA-256, compared digest to digest).
#[derive(Clone)]
pub struct Intake(Arc<Inner>);

struct Inner {
    jetstream: Context,
    tokens: HashMap<CarrierId, [u8; 32]>,
}

impl Intake {
    /// Takes receipts for the carriers in `tokens`, each with its own token.
    pub fn new(jetstream: Context, tokens: HashMap<CarrierId, String>) -> Self {
        let tokens = tokens
            .into_iter()
            .map(|(carrier, token)| (carrier, digest(&token)))
            .collect();
        Self(Arc::new(Inner { jetstream, tokens }))
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/v1/receipts/{carrier}", post(receive))
            .fallback(|| async {
                IntakeError::UnknownCarrier("this path".to_owned()).into_response()
            })
            .with_state(self)
    }

    /// Serves the intake on `listener` until `shutdown`; posts in progress finish.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }

    fn authorize(&self, carrier: &str, headers: &HeaderMap) -> Result<CarrierId, IntakeError> {
        let unknown = || IntakeError::UnknownCarrier(carrier.to_owned());
        let carrier = CarrierId::parse(carrier).map_err(|_| unknown())?;
        let expected = self.0.tokens.get(&carrier).ok_or_else(unknown)?;
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or(IntakeError::Unauthorized)?;
        if digest(presented.trim()) != *expected {
            return Err(IntakeError::Unauthorized);
        }
        Ok(carrier)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

async fn receive(
    State(intake): State<Intake>,
    Path(carrier): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ReceiptPost>, JsonRejection>,
) -> Result<Json<Stored>, IntakeError> {
    let carrier = intake.authorize(&carrier, &headers)?;
    let Json(post) = body?;
    let receipts = post.into_receipts();
    if receipts.is_empty() || receipts.len() > MAX_RECEIPTS_PER_POST {
        return Err(IntakeError::Count);
    }
    for (index, receipt) in receipts.iter().enumerate() {
        receipt
            .check()
            .map_err(|reason| IntakeError::InvalidReceipt { index, reason })?;
    }
    let stored = receipts.len();
    store(&intake.0.jetstream, &carrier, receipts).await?;
    Ok(Json(Stored { stored }))
}

/// Stores `carrier`'s receipts (already checked) in `RECEIPTS` and returns once
/// JetStream has them all: what a carrier's receipt is acknowledged after, whichever
/// protocol brought it.
pub async fn store(
    jetstream: &Context,
    carrier: &CarrierId,
    receipts: Vec<CarrierReceipt>,
) -> Result<(), PublishFailed> {
    let received_at_ms = rns_types::time::now_milliseconds();
    let count = receipts.len();
    let outbound: Vec<Outbound> = receipts
        .into_iter()
        .map(|mut receipt| {
            if let Some(detail) = &mut receipt.detail {
                *detail = detail.chars().take(MAX_RECEIPT_DETAIL_CHARACTERS).collect();
            }
            let message_id = message_ids::receipt(carrier, &receipt);
            let key = correlation_key(carrier, &receipt.carrier_reference);
            let notice = ReceiptNotice::Receipt {
                receipt,
                received_at_ms,
            };
            Outbound {
                subject: receipt_subject(&key),
                message_id,
                payload: Bytes::from(serde_json::to_vec(&notice).expect("a notice serialises")),
            }
        })
        .collect();
    publish_all(jetstream, outbound, 256).await?;
    metrics::counter!(crate::metric_names::RECEIPTS_RECEIVED_TOTAL, "carrier" => carrier.to_string())
        .increment(count as u64);
    Ok(())
}
