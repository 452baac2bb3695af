//! What the carriers' integration tests share.
#![allow(dead_code)] // each test binary uses its part

use rns_nats::{CustomerDirectory, Topology, TopologySettings};
use rns_types::wire::{CarrierJob, MessageEvent, ResultBatch};
use rns_types::{CarrierCatalog, CarrierId, CustomerId, CustomerProfile, PhoneNumber, RequestId};

/// Ensures the streams and buckets of `catalog`'s carriers, and the customer `acme`
/// whose jobs [`sms_job`] makes.
pub async fn prepare(
    jetstream: &async_nats::jetstream::Context,
    topology: TopologySettings,
    catalog: &CarrierCatalog,
) {
    rns_testkit::show_logs();
    Topology::for_catalog(topology, catalog)
        .ensure(jetstream)
        .await
        .unwrap();
    CustomerDirectory::open(jetstream)
        .await
        .unwrap()
        .create(
            &CustomerProfile::new(CustomerId::parse("acme").unwrap(), "Acme".into(), 0),
            "hash",
            &rns_types::api_key::ApiKeyRecord::parse(b"acme").unwrap(),
        )
        .await
        .unwrap();
}

/// A fresh SMS job of customer `acme` on its first hop at KT, to `to`, costing
/// `points`.
pub fn sms_job(to: &str, text: &str, points: u32) -> CarrierJob {
    CarrierJob {
        accepted_at_ms: 1,
        ..CarrierJob::sms(
            RequestId::generate().message_id(0),
            CustomerId::parse("acme").unwrap(),
            CarrierId::parse("kt").unwrap(),
            PhoneNumber::parse("0212345678").unwrap(),
            PhoneNumber::parse(to).unwrap(),
            text,
            points,
        )
    }
}

/// Every event recorded in `RESULTS` so far, in order (none before the stream
/// exists).
pub async fn recorded_events(jetstream: &async_nats::jetstream::Context) -> Vec<MessageEvent> {
    let Ok(mut stream) = jetstream.get_stream("RESULTS").await else {
        return Vec::new();
    };
    let state = stream.info().await.unwrap().state.clone();
    let mut events = Vec::new();
    for sequence in state.first_sequence..state.first_sequence + state.messages {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let batch = ResultBatch::decode(&message.payload).unwrap();
        events.extend(batch.events);
    }
    events
}
