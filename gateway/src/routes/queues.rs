//! `GET /v1/admin/queues` (the operator): every stream of the topology with what it
//! holds, its oldest message and that message's age — the lag of a queue — and each
//! consumer's pending and in-flight counts. A stream of schedules holds future
//! firings and a record (the ledger, the audit log) keeps what was consumed, so their
//! oldest message is no lag and none is given.
use axum::extract::State;
use axum::Json;
use serde::Serialize;

use crate::error::ApiError;
use crate::extract::Admin;
use crate::AppState;

/// One stream as a queue.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueView {
    stream: String,
    /// Messages it holds.
    messages: u64,
    bytes: u64,
    /// When its oldest message was stored; none when it is empty.
    oldest_at: Option<String>,
    /// Seconds the oldest message has waited; none when empty, for schedules and for
    /// records.
    lag_seconds: Option<u64>,
    consumers: Vec<ConsumerView>,
}

/// One consumer of a stream.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConsumerView {
    name: String,
    /// Messages not yet delivered to it.
    pending: u64,
    /// Delivered, not yet acknowledged.
    ack_pending: u64,
    /// Delivered more than once.
    redelivered: u64,
}

/// `GET /v1/admin/queues`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueList {
    items: Vec<QueueView>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/queues",
    tag = "queues",
    responses((status = 200, description = "OK", body = QueueList), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn list(_: Admin, State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    let unavailable = |error: crate::error::BoxError| ApiError::unavailable("JetStream", error);
    let now = time::OffsetDateTime::now_utc();
    let mut items = Vec::with_capacity(state.streams().len());
    for (name, waits) in state.streams() {
        let stream = state
            .jetstream()
            .get_stream(name)
            .await
            .map_err(|error| unavailable(error.into()))?;
        let info = stream.cached_info().clone();
        let mut consumers = Vec::new();
        let mut listing = stream.consumers();
        while let Some(consumer) = futures::StreamExt::next(&mut listing).await {
            let consumer = consumer.map_err(|error| unavailable(error.into()))?;
            consumers.push(ConsumerView {
                name: consumer.name,
                pending: consumer.num_pending,
                ack_pending: consumer.num_ack_pending as u64,
                redelivered: consumer.num_redelivered as u64,
            });
        }
        let held = info.state.messages > 0;
        let oldest = info.state.first_timestamp;
        items.push(QueueView {
            stream: name.clone(),
            messages: info.state.messages,
            bytes: info.state.bytes,
            oldest_at: held.then(|| {
                let milliseconds = (oldest.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
                rns_types::time::rfc3339(milliseconds)
            }),
            lag_seconds: (held && *waits).then(|| (now - oldest).whole_seconds().max(0) as u64),
            consumers,
        });
    }
    Ok(Json(QueueList { items }))
}
