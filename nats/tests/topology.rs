//! The topology against a real nats-server: created idempotently, bounded, and
//! publishing with de-duplication.
use bytes::Bytes;
use rns_nats::{publish_all, Outbound, Topology, TopologySettings};
use rns_testkit::NatsServer;
use rns_types::{subjects, CarrierId};

fn topology() -> Topology {
    let carriers = ["kt", "skt"]
        .iter()
        .map(|name| CarrierId::parse(name).unwrap())
        .collect();
    Topology::new(TopologySettings::default(), carriers)
}

#[tokio::test]
async fn ensure_is_idempotent_and_creates_every_stream_consumer_and_bucket() {
    let server = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(server.client().await);
    topology().ensure(&jetstream).await.unwrap();
    topology().ensure(&jetstream).await.unwrap();

    for stream in ["SEND", "RESULTS", "CARRIER_KT", "CARRIER_SKT"] {
        jetstream
            .get_stream(stream)
            .await
            .unwrap_or_else(|error| panic!("{stream}: {error}"));
    }
    Topology::consumer(&jetstream, "SEND", subjects::DISPATCHER_CONSUMER)
        .await
        .unwrap();
    Topology::consumer(&jetstream, "CARRIER_KT", "carrier-kt")
        .await
        .unwrap();
    Topology::consumer(&jetstream, "RESULTS", subjects::ANALYTICS_CONSUMER)
        .await
        .unwrap();
    jetstream
        .get_key_value(subjects::CUSTOMERS_BUCKET)
        .await
        .unwrap();
    jetstream
        .get_key_value(subjects::API_KEYS_BUCKET)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_republished_message_id_is_stored_once() {
    let server = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(server.client().await);
    topology().ensure(&jetstream).await.unwrap();

    let message = |id: &str| Outbound {
        subject: "carrier.kt".into(),
        message_id: id.into(),
        payload: Bytes::from_static(b"{}"),
    };
    publish_all(
        &jetstream,
        vec![message("a"), message("b"), message("a")],
        8,
    )
    .await
    .unwrap();
    publish_all(&jetstream, vec![message("b")], 8)
        .await
        .unwrap();

    let mut stream = jetstream.get_stream("CARRIER_KT").await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn publishing_to_a_subject_without_a_stream_fails() {
    let server = NatsServer::start().await;
    let jetstream = async_nats::jetstream::new(server.client().await);
    topology().ensure(&jetstream).await.unwrap();
    let stray = Outbound {
        subject: "carrier.nobody".into(),
        message_id: "x".into(),
        payload: Bytes::new(),
    };
    assert!(publish_all(&jetstream, vec![stray], 8).await.is_err());
}
