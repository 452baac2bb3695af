//! Carrier workers against a real nats-server and a real simulator over HTTP: every
//! outcome class is recorded before the job leaves the queue.
use std::time::Duration;

use bytes::Bytes;
use rns_carriers::simulator::{self, Knobs, Simulator};
use rns_carriers::{CarrierSettings, Settings, WorkerSettings};
use rns_nats::{publish_all, Outbound};
use rns_service::{NatsSettings, Readiness};
use rns_testkit::{spare_port, NatsServer};
use rns_types::subjects::{carrier_subject, message_ids};
use rns_types::wire::{CarrierJob, EventKind, MessageEvent, ResultBatch};
use rns_types::{CarrierId, Channel, CustomerId, MessageType, PhoneNumber, RequestId};
use tokio_util::sync::CancellationToken;

struct Harness {
    _nats: NatsServer,
    jetstream: async_nats::jetstream::Context,
    simulator: Simulator,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A worker for carrier `kt`, talking to an in-process simulator unless `endpoint`
/// says otherwise.
async fn start(
    knobs: Knobs,
    endpoint: Option<String>,
    request_timeout_milliseconds: u64,
) -> Harness {
    let nats = NatsServer::start().await;
    let simulator = Simulator::new("kt", knobs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let simulator_url = format!("http://{}", listener.local_addr().unwrap());
    let app = simulator::app(simulator.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut settings = Settings {
        nats: NatsSettings {
            url: nats.url(),
            ..Default::default()
        },
        carriers: Some(vec![CarrierSettings {
            id: CarrierId::parse("kt").unwrap(),
            channel: Channel::Sms,
            endpoint: endpoint.unwrap_or(simulator_url),
            concurrency: 4,
            request_timeout_milliseconds,
        }]),
        carrier_workers: WorkerSettings {
            retry_backoff_milliseconds: vec![50],
            ..Default::default()
        },
        ..Default::default()
    };
    settings.nats.topology.carrier_max_deliver = 3;
    let jetstream = async_nats::jetstream::new(nats.client().await);
    let shutdown = CancellationToken::new();
    tokio::spawn(rns_carriers::run(
        settings,
        Readiness::default(),
        shutdown.clone(),
    ));
    Harness {
        _nats: nats,
        jetstream,
        simulator,
        shutdown,
    }
}

fn job(to: &str) -> CarrierJob {
    CarrierJob {
        message_id: RequestId::generate().message_id(0),
        customer_id: CustomerId::parse("acme").unwrap(),
        accepted_at_ms: 1,
        carrier: CarrierId::parse("kt").unwrap(),
        hop: 1,
        message_type: MessageType::Sms,
        from: PhoneNumber::parse("0212345678").unwrap(),
        to: PhoneNumber::parse(to).unwrap(),
        subject: None,
        text: "hello".into(),
    }
}

async fn enqueue(jetstream: &async_nats::jetstream::Context, job: &CarrierJob) {
    // The topology may still be being created by the worker; retry until it exists.
    for _ in 0..100 {
        let outbound = Outbound {
            subject: carrier_subject(&job.carrier),
            message_id: message_ids::carrier_job(&job.message_id, job.hop),
            payload: Bytes::from(serde_json::to_vec(job).unwrap()),
        };
        if publish_all(jetstream, [outbound], 1).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the carrier queue never appeared");
}

async fn events(jetstream: &async_nats::jetstream::Context) -> Vec<MessageEvent> {
    let Ok(mut stream) = jetstream.get_stream("RESULTS").await else {
        return Vec::new();
    };
    let state = stream.info().await.unwrap().state.clone();
    let mut events = Vec::new();
    for sequence in state.first_sequence..state.first_sequence + state.messages {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let batch: ResultBatch = serde_json::from_slice(&message.payload).unwrap();
        events.extend(batch.events);
    }
    events
}

async fn wait_for_final(jetstream: &async_nats::jetstream::Context) -> Vec<MessageEvent> {
    for _ in 0..200 {
        let events = events(jetstream).await;
        if events.iter().any(|event| event.kind.status().is_final()) {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no final event was recorded: {:?}", events(jetstream).await);
}

async fn queue_is_empty(jetstream: &async_nats::jetstream::Context) -> bool {
    for _ in 0..50 {
        let mut stream = jetstream.get_stream("CARRIER_KT").await.unwrap();
        if stream.info().await.unwrap().state.messages == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn kinds(events: &[MessageEvent]) -> Vec<EventKind> {
    events.iter().map(|event| event.kind).collect()
}

#[tokio::test]
async fn an_accepted_submit_records_submitted_and_delivered_then_acks() {
    let harness = start(Knobs::default(), None, 2_000).await;
    enqueue(&harness.jetstream, &job("01012345678")).await;
    let events = wait_for_final(&harness.jetstream).await;
    assert_eq!(kinds(&events), [EventKind::Submitted, EventKind::Delivered]);
    assert!(
        events[0].detail.starts_with("kt-"),
        "carrier reference missing: {events:?}"
    );
    assert!(queue_is_empty(&harness.jetstream).await);
    assert_eq!(harness.simulator.counts().delivered, 1);
}

#[tokio::test]
async fn a_permanent_rejection_is_final_at_once_with_the_carriers_reason() {
    let knobs = Knobs {
        permanent_failure_rate: 1.0,
        ..Default::default()
    };
    let harness = start(knobs, None, 2_000).await;
    enqueue(&harness.jetstream, &job("01012345678")).await;
    let events = wait_for_final(&harness.jetstream).await;
    assert_eq!(kinds(&events), [EventKind::Failed]);
    assert!(
        events[0].detail.contains("kt: 400 invalid_number"),
        "{}",
        events[0].detail
    );
    assert!(queue_is_empty(&harness.jetstream).await);
    assert_eq!(
        harness.simulator.counts().received,
        1,
        "a permanent rejection must not be retried"
    );
}

#[tokio::test]
async fn a_transient_failure_retries_the_same_carrier_until_it_recovers() {
    let knobs = Knobs {
        outage: true,
        ..Default::default()
    };
    let harness = start(knobs, None, 2_000).await;
    enqueue(&harness.jetstream, &job("01012345678")).await;
    for _ in 0..100 {
        if harness.simulator.counts().outage_rejections >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.simulator.set_knobs(Knobs::default());
    let events = wait_for_final(&harness.jetstream).await;
    assert_eq!(
        events.last().unwrap().kind,
        EventKind::Delivered,
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|event| event.kind == EventKind::AttemptFailed && event.detail.contains("503")));
    assert!(events.last().unwrap().attempt >= 2);
    assert_eq!(harness.simulator.counts().delivered, 1);
}

#[tokio::test]
async fn retryable_failures_become_final_after_max_deliver_attempts() {
    let dead_endpoint = format!("http://127.0.0.1:{}", spare_port());
    let harness = start(Knobs::default(), Some(dead_endpoint), 2_000).await;
    enqueue(&harness.jetstream, &job("01012345678")).await;
    let events = wait_for_final(&harness.jetstream).await;
    let failed = events
        .iter()
        .find(|event| event.kind == EventKind::Failed)
        .unwrap();
    assert!(
        failed.detail.contains("gave up after 3 attempts"),
        "{}",
        failed.detail
    );
    assert!(failed.detail.contains("connection"), "{}", failed.detail);
    assert_eq!(
        events
            .iter()
            .filter(|event| event.kind == EventKind::AttemptFailed)
            .count(),
        3
    );
    assert!(queue_is_empty(&harness.jetstream).await);
}

#[tokio::test]
async fn an_ambiguous_timeout_retries_the_same_carrier_which_delivers_only_once() {
    let knobs = Knobs {
        latency_milliseconds: 400,
        ..Default::default()
    };
    let harness = start(knobs, None, 150).await;
    enqueue(&harness.jetstream, &job("01012345678")).await;
    // The first submit times out on our side while the carrier is still working on it.
    for _ in 0..100 {
        if events(&harness.jetstream)
            .await
            .iter()
            .any(|event| event.kind == EventKind::AttemptFailed)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.simulator.set_knobs(Knobs::default());
    let events = wait_for_final(&harness.jetstream).await;
    assert_eq!(
        events.last().unwrap().kind,
        EventKind::Delivered,
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|event| event.kind == EventKind::AttemptFailed && event.detail.contains("no answer")));
    let counts = harness.simulator.counts();
    assert_eq!(
        counts.delivered, 1,
        "the handset must get the message once: {counts:?}"
    );
    assert!(
        counts.received >= 2,
        "the retry must go to the same carrier: {counts:?}"
    );
}
