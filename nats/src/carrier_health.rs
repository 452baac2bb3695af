//! Carrier circuit states shared through the `carrier_health` KV bucket.
//!
//! Carrier workers publish a [`CircuitRecord`] whenever a carrier's circuit opens or
//! closes; [`HealthView`] watches the bucket and keeps the latest state of every
//! carrier in memory, so the dispatcher can route around open circuits and the
//! failover worker can pick a healthy next carrier without a read per message.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv;
use bytes::Bytes;
use futures::StreamExt;
use rns_types::subjects::CARRIER_HEALTH_BUCKET;
use rns_types::{CarrierId, CircuitRecord, CircuitState};
use tokio_util::sync::CancellationToken;

use crate::directory::DirectoryError;

/// The latest circuit state of every carrier, kept current by a watch.
#[derive(Debug, Clone, Default)]
pub struct HealthView(Arc<RwLock<HashMap<CarrierId, CircuitRecord>>>);

impl HealthView {
    pub fn is_open(&self, carrier: &CarrierId) -> bool {
        self.0
            .read()
            .expect("health lock is never poisoned")
            .get(carrier)
            .is_some_and(|record| record.state == CircuitState::Open)
    }

    pub fn records(&self) -> Vec<CircuitRecord> {
        let mut records: Vec<CircuitRecord> = self
            .0
            .read()
            .expect("health lock is never poisoned")
            .values()
            .cloned()
            .collect();
        records.sort_by(|left, right| left.carrier.cmp(&right.carrier));
        records
    }

    fn apply(&self, record: CircuitRecord) {
        self.0
            .write()
            .expect("health lock is never poisoned")
            .insert(record.carrier.clone(), record);
    }

    /// Loads every record, then follows changes until `shutdown`; returns once the
    /// initial state is loaded, with the watch running in the background.
    pub async fn watch(
        jetstream: &Context,
        shutdown: CancellationToken,
    ) -> Result<Self, DirectoryError> {
        let view = Self::default();
        let background = view.clone();
        crate::follow_bucket(
            jetstream,
            CARRIER_HEALTH_BUCKET,
            shutdown,
            move |key, value, _revision| {
                let Some(value) = value else {
                    return;
                };
                match serde_json::from_slice::<CircuitRecord>(value) {
                    Ok(record) => background.apply(record),
                    Err(error) => tracing::warn!(%key, %error, "unreadable circuit record"),
                }
            },
        )
        .await
        .map_err(DirectoryError::Unavailable)?;
        Ok(view)
    }
}

/// Reads and writes the `carrier_health` bucket.
#[derive(Debug, Clone)]
pub struct HealthStore {
    store: kv::Store,
}

impl HealthStore {
    pub async fn open(jetstream: &Context) -> Result<Self, DirectoryError> {
        let store = jetstream
            .get_key_value(CARRIER_HEALTH_BUCKET)
            .await
            .map_err(|error| DirectoryError::Unavailable(error.to_string()))?;
        Ok(Self { store })
    }

    /// Every carrier's current record, by carrier id.
    pub async fn read_all(&self) -> Result<Vec<CircuitRecord>, DirectoryError> {
        let unavailable =
            |error: &dyn std::fmt::Display| DirectoryError::Unavailable(error.to_string());
        let mut keys = self
            .store
            .keys()
            .await
            .map_err(|error| unavailable(&error))?;
        let mut records = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|error| unavailable(&error))?;
            if let Some(value) = self
                .store
                .get(&key)
                .await
                .map_err(|error| unavailable(&error))?
            {
                if let Ok(record) = serde_json::from_slice::<CircuitRecord>(&value) {
                    records.push(record);
                }
            }
        }
        records.sort_by(|left, right| left.carrier.cmp(&right.carrier));
        Ok(records)
    }

    pub async fn publish(&self, record: &CircuitRecord) -> Result<(), DirectoryError> {
        let value = Bytes::from(serde_json::to_vec(record).expect("a circuit record serialises"));
        self.store
            .put(record.carrier.as_str(), value)
            .await
            .map(|_| ())
            .map_err(|error| DirectoryError::Unavailable(error.to_string()))
    }
}
