//! Settles points from final message events: the `points` consumer of `RESULTS`.
//!
//! Results are read in rounds ([`rns_nats::polled`]: what gathered since the last
//! read, at most 100 ms before) of up to [`BATCH`] JetStream messages; the final events
//! in them that carry points are settled with one script call per customer, and only
//! then are the messages acknowledged. A batch that fails is redelivered, and
//! settling is idempotent per message (see [`crate::store`]), so nothing is settled
//! twice or skipped.
use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use rns_nats::Topology;
use rns_types::subjects::{POINTS_CONSUMER, RESULTS_STREAM};
use rns_types::wire::{EventKind, ResultEvents};
use rns_types::CustomerId;
use tokio_util::sync::CancellationToken;

use crate::error::PointsError;
use crate::store::{PointsStore, Settlement};

/// RESULTS messages settled together.
pub const BATCH: usize = 512;

/// Most bytes of RESULTS messages pulled at once (a message carries up to a few
/// hundred outcomes, so the count alone does not bound memory).
pub const BATCH_BYTES: usize = 4 << 20;

/// The settlements in one RESULTS message (read without its message records).
pub fn settlements_of(batch: &ResultEvents) -> Vec<Settlement> {
    batch
        .events
        .iter()
        .filter(|event| event.kind.status().is_final() && event.points.reserved > 0)
        .map(|event| Settlement {
            message_id: event.message_id,
            reserved: event.points.reserved,
            spent: event.points.spent,
            failure: if event.kind == EventKind::Delivered {
                String::new()
            } else if event.detail.is_empty() {
                event.kind.as_str().to_owned()
            } else {
                event.detail.clone()
            },
        })
        .collect()
}

/// Settles until `shutdown`; the batch in hand is finished first.
pub async fn settle_until(
    store: PointsStore,
    jetstream: async_nats::jetstream::Context,
    shutdown: CancellationToken,
) -> Result<(), PointsError> {
    let messages = loop {
        let messages = async {
            let consumer = Topology::consumer(&jetstream, RESULTS_STREAM, POINTS_CONSUMER).await?;
            Ok::<_, PointsError>(rns_nats::polled::in_rounds(
                consumer,
                rns_nats::polled::Rounds {
                    max_messages: BATCH,
                    max_bytes: BATCH_BYTES,
                    pause: rns_nats::polled::RESULTS_READ_PAUSE,
                },
            ))
        };
        match messages.await {
            Ok(messages) => break messages,
            Err(error) => {
                tracing::warn!(%error, "cannot consume RESULTS for points yet; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let mut chunks = std::pin::pin!(messages
        .take_until(shutdown.cancelled())
        .ready_chunks(BATCH));
    tracing::info!("settling points from RESULTS");
    while let Some(chunk) = chunks.next().await {
        let messages: Vec<Message> = chunk
            .into_iter()
            .filter_map(|message| {
                message
                    .map_err(|error| tracing::warn!(%error, "pull from RESULTS failed"))
                    .ok()
            })
            .collect();
        settle_messages(&store, &messages).await;
    }
    Ok(())
}

async fn settle_messages(store: &PointsStore, messages: &[Message]) {
    let mut by_customer: HashMap<CustomerId, Vec<Settlement>> = HashMap::new();
    for message in messages {
        match ResultEvents::decode(&message.payload) {
            Ok(batch) => {
                let settlements = settlements_of(&batch);
                if !settlements.is_empty() {
                    by_customer
                        .entry(batch.customer_id)
                        .or_default()
                        .extend(settlements);
                }
            }
            Err(error) => {
                tracing::error!(%error, subject = %message.subject, "undecodable result batch; nothing to settle")
            }
        }
    }
    let mut failed = None;
    for (customer, settlements) in by_customer {
        match store.settle(&customer, settlements).await {
            Ok(settled) => metrics::counter!(crate::metric_names::POINTS_SETTLED_MESSAGES_TOTAL)
                .increment(settled),
            Err(error) => {
                metrics::counter!(crate::metric_names::POINTS_SETTLE_FAILURES_TOTAL).increment(1);
                failed = Some(error);
                break;
            }
        }
    }
    let failed = &failed;
    let acknowledgements = messages.iter().map(|message| async move {
        let result = match failed {
            None => message.ack().await,
            Some(_) => {
                message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await
            }
        };
        if let Err(error) = result {
            tracing::warn!(%error, "acknowledging a result batch failed; it will be redelivered");
        }
    });
    futures::future::join_all(acknowledgements).await;
    if let Some(error) = failed {
        tracing::warn!(%error, messages = messages.len(), "settling points failed; the batch will be redelivered");
    }
}
