//! Routing targets in ClickHouse: every customer's weights, per channel and carrier,
//! mirrored from the `customers` bucket into `routing_targets`, so dashboards show
//! the actual split next to the target in one query.
//!
//! Profiles are followed as they change; the latest of each customer waits in a map
//! (bounded by the number of customers) until the writer inserts it, so a burst of
//! changes never queues without bound and the last change always lands.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clickhouse::Row;
use rns_types::subjects::CUSTOMERS_BUCKET;
use rns_types::{CarrierCatalog, Channel, CustomerProfile};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::AnalyticsError;
use crate::rows::channel_code;
use rns_results::schema::ROUTING_TARGETS_TABLE;

#[derive(Debug, Clone, PartialEq, Row, Serialize)]
pub struct TargetRow {
    pub customer_id: String,
    pub channel: i8,
    pub carrier: String,
    pub weight: u32,
    /// The carrier's part of the channel's weights, 0 to 1.
    pub share: f64,
    /// The profile's revision in the `customers` bucket: the latest wins.
    pub revision: u64,
    pub updated_at: u32,
}

/// The rows of a profile: every carrier of every channel with its target share
/// (channels without weights split equally, as routing does).
pub fn rows(
    profile: &CustomerProfile,
    catalog: &CarrierCatalog,
    revision: u64,
    now_seconds: u32,
) -> Vec<TargetRow> {
    let mut rows = Vec::new();
    for channel in Channel::ALL {
        let Some(weights) = profile.weights(channel, catalog) else {
            continue;
        };
        let total: u32 = weights.iter().map(|(_, weight)| weight).sum();
        for carrier in catalog.carriers_of(channel) {
            let weight = weights.get(carrier);
            rows.push(TargetRow {
                customer_id: profile.id.to_string(),
                channel: channel_code(channel),
                carrier: carrier.to_string(),
                weight,
                share: if total == 0 {
                    0.0
                } else {
                    f64::from(weight) / f64::from(total)
                },
                revision,
                updated_at: now_seconds,
            });
        }
    }
    rows
}

/// Mirrors routing targets into ClickHouse until `shutdown`.
pub async fn mirror(
    jetstream: async_nats::jetstream::Context,
    client: clickhouse::Client,
    catalog: CarrierCatalog,
    shutdown: CancellationToken,
) -> Result<(), AnalyticsError> {
    // The latest profile of each customer with its bucket revision.
    let waiting: Arc<Mutex<HashMap<String, (CustomerProfile, u64)>>> = Arc::default();
    let changed = Arc::new(Notify::new());
    let (into_map, notify) = (waiting.clone(), changed.clone());
    rns_nats::follow_bucket(
        &jetstream,
        CUSTOMERS_BUCKET,
        shutdown.clone(),
        move |key, value, revision| {
            let Some(profile) = value.and_then(|value| serde_json::from_slice(value).ok()) else {
                return;
            };
            into_map
                .lock()
                .expect("the targets lock is never poisoned")
                .insert(key.to_owned(), (profile, revision));
            notify.notify_one();
        },
    )
    .await
    .map_err(AnalyticsError::Nats)?;
    loop {
        let profiles: Vec<(CustomerProfile, u64)> = waiting
            .lock()
            .expect("the targets lock is never poisoned")
            .drain()
            .map(|(_, waiting)| waiting)
            .collect();
        if !profiles.is_empty() {
            let now =
                u32::try_from(rns_types::time::now_milliseconds() / 1_000).unwrap_or(u32::MAX);
            let rows: Vec<TargetRow> = profiles
                .iter()
                .flat_map(|(profile, revision)| rows(profile, &catalog, *revision, now))
                .collect();
            if let Err(error) = insert(&client, &rows).await {
                tracing::warn!(%error, "writing routing targets failed; trying again");
                {
                    // A newer profile that arrived meanwhile wins over the one put back.
                    let mut map = waiting.lock().expect("the targets lock is never poisoned");
                    for (profile, revision) in profiles {
                        map.entry(profile.id.to_string())
                            .or_insert((profile, revision));
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                }
                continue;
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = changed.notified() => {}
        }
    }
}

async fn insert(client: &clickhouse::Client, rows: &[TargetRow]) -> Result<(), AnalyticsError> {
    let mut insert = client.insert::<TargetRow>(ROUTING_TARGETS_TABLE).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    Ok(())
}
