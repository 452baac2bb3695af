//! Carrier workers against a real nats-server and a real simulator over HTTP: every
//! outcome class is recorded before the job leaves the queue.
use std::time::Duration;

mod common;

use bytes::Bytes;
use futures::StreamExt;
use rns_carriers::simulator::{self, Knobs, ReceiptKnobs, Simulator};
use rns_carriers::{CarrierKind, CarrierSettings, Settings, WorkerSettings};
use rns_nats::{publish_all, CustomerDirectory, Outbound, Topology};
use rns_service::{NatsSettings, Readiness, RedisSettings, Secret};
use rns_testkit::{spare_port, wait_until, NatsServer, RedisServer};
use rns_types::carrier::CarrierEntry;
use rns_types::subjects::carrier_subject;
use rns_types::wire::{CarrierJob, EventKind, MessageEvent};
use rns_types::{
    CarrierCatalog, CarrierId, Channel, CustomerId, CustomerProfile, MessageId, RequestId,
};
use rns_types::{CircuitRecord, CircuitState};
use tokio_util::sync::CancellationToken;

struct Harness {
    _nats: NatsServer,
    _redis: RedisServer,
    jetstream: async_nats::jetstream::Context,
    kt: Simulator,
    kt_url: String,
    skt: Simulator,
    /// Where KT posts its receipts, with [`KT_RECEIPT_TOKEN`].
    receipts_url: String,
    shutdown: CancellationToken,
}

const KT_RECEIPT_TOKEN: &str = "kt-receipt-token";

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn serve(simulator: &Simulator) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = simulator::app(simulator.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// Workers for `kt` and `skt` (customer `acme` splits 1:1, so a message failing on
/// KT fails over to SKT), each talking to an in-process simulator; `kt_endpoint`
/// replaces KT's address (a dead port, say). Three deliveries per carrier.
async fn start(
    kt_knobs: Knobs,
    kt_endpoint: Option<String>,
    request_timeout_milliseconds: u64,
) -> Harness {
    let (harness, settings) = prepare(kt_knobs, kt_endpoint, request_timeout_milliseconds).await;
    run_workers(&harness, settings);
    harness
}

fn run_workers(harness: &Harness, settings: Settings) -> Readiness {
    let readiness = Readiness::default();
    tokio::spawn(rns_carriers::run(
        settings,
        readiness.clone(),
        harness.shutdown.clone(),
    ));
    readiness
}

/// The servers, topology and customer of [`start`], without the workers.
async fn prepare(
    kt_knobs: Knobs,
    kt_endpoint: Option<String>,
    request_timeout_milliseconds: u64,
) -> (Harness, Settings) {
    rns_testkit::show_logs();
    let (nats, redis) = tokio::join!(NatsServer::start(), RedisServer::start());
    let kt = Simulator::new("kt", kt_knobs);
    let skt = Simulator::new("skt", Knobs::default());
    let kt_url = serve(&kt).await;
    let skt_url = serve(&skt).await;
    let carrier = |name: &str, endpoint: String| CarrierSettings {
        id: CarrierId::parse(name).unwrap(),
        channel: Channel::Sms,
        kind: CarrierKind::Http,
        smpp: None,
        endpoint,
        concurrency: 4,
        request_timeout_milliseconds,
        batch_size: 1,
        batches_in_flight: 1,
        health_url: None,
        rate_per_second: None,
        receipt_token: (name == "kt").then(|| Secret::Inline(KT_RECEIPT_TOKEN.to_owned())),
    };
    let receipts_port = spare_port();
    let mut settings = Settings {
        nats: NatsSettings {
            url: nats.url(),
            ..Default::default()
        },
        redis: RedisSettings { url: redis.url() },
        carriers: Some(vec![
            carrier("kt", kt_endpoint.unwrap_or_else(|| kt_url.clone())),
            carrier("skt", skt_url),
        ]),
        carrier_workers: WorkerSettings {
            retry_backoff_milliseconds: vec![50],
            receipt_deadline_seconds: 3,
            receipts_listen: format!("127.0.0.1:{receipts_port}"),
            ..Default::default()
        },
        ..Default::default()
    };
    settings.nats.topology.carrier_max_deliver = 3;
    let jetstream = async_nats::jetstream::new(nats.client().await);
    ensure_topology(&jetstream, &settings).await;
    let directory = CustomerDirectory::open(&jetstream).await.unwrap();
    let customer = CustomerId::parse("acme").unwrap();
    directory
        .create(
            &CustomerProfile::new(customer, "Acme".into(), 0),
            "hash",
            &rns_types::api_key::ApiKeyRecord::parse(b"acme").unwrap(),
        )
        .await
        .unwrap();
    let harness = Harness {
        _nats: nats,
        _redis: redis,
        jetstream,
        kt,
        kt_url,
        skt,
        receipts_url: format!("http://127.0.0.1:{receipts_port}/v1/receipts"),
        shutdown: CancellationToken::new(),
    };
    (harness, settings)
}

/// The streams, buckets and consumers of KT and SKT, made again where missing.
async fn ensure_topology(jetstream: &async_nats::jetstream::Context, settings: &Settings) {
    let catalog = CarrierCatalog::new(
        ["kt", "skt"]
            .iter()
            .map(|name| CarrierEntry {
                id: CarrierId::parse(name).unwrap(),
                channel: Channel::Sms,
            })
            .collect(),
    );
    Topology::for_catalog(settings.nats.topology.clone(), &catalog)
        .ensure(jetstream)
        .await
        .unwrap();
}

fn job(to: &str) -> CarrierJob {
    common::sms_job(to, "hello", 1)
}

async fn enqueue(jetstream: &async_nats::jetstream::Context, job: &CarrierJob) {
    // The topology may still be being created by the worker; retry until it exists.
    for _ in 0..100 {
        if publish_all(jetstream, [Outbound::carrier_job(job)], 1)
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the carrier queue never appeared");
}

/// Queues `jobs` for KT as one batch message, as the dispatcher does.
async fn enqueue_batch(jetstream: &async_nats::jetstream::Context, jobs: &[CarrierJob]) {
    let outbound = Outbound {
        subject: carrier_subject(&jobs[0].carrier),
        message_id: format!("jobs:test:{}", jobs[0].message_id),
        payload: Bytes::from(serde_json::to_vec(jobs).unwrap()),
    };
    publish_all(jetstream, [outbound], 1).await.unwrap();
}

fn batch(count: usize) -> Vec<CarrierJob> {
    let request = RequestId::generate();
    (0..count)
        .map(|index| CarrierJob {
            message_id: request.message_id(index as u32),
            ..job(&format!("010{index:08}"))
        })
        .collect()
}

/// Waits until every job of `jobs` has a final event; returns the events by job.
async fn wait_for_all_final(
    jetstream: &async_nats::jetstream::Context,
    jobs: &[CarrierJob],
) -> std::collections::HashMap<MessageId, Vec<MessageEvent>> {
    for _ in 0..400 {
        let mut by_message: std::collections::HashMap<MessageId, Vec<MessageEvent>> =
            std::collections::HashMap::new();
        for event in events(jetstream).await {
            by_message.entry(event.message_id).or_default().push(event);
        }
        let finished = jobs.iter().all(|job| {
            by_message
                .get(&job.message_id)
                .is_some_and(|events| events.iter().any(|event| event.kind.status().is_final()))
        });
        if finished {
            return by_message;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not every job of the batch reached a final state");
}

async fn events(jetstream: &async_nats::jetstream::Context) -> Vec<MessageEvent> {
    common::recorded_events(jetstream).await
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
    assert_eq!(harness.kt.counts().delivered, 1);
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
        harness.kt.counts().received,
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
        if harness.kt.counts().outage_rejections >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    harness.kt.set_knobs(Knobs::default());
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
    assert_eq!(harness.kt.counts().delivered, 1);
}

/// Regression: throttle answers (429) were nak'ed like failures, so a throttled
/// carrier's messages ran out of deliveries and failed over to another carrier.
#[tokio::test]
async fn a_throttling_carrier_is_waited_for_and_never_failed_over() {
    let knobs = Knobs {
        tps_cap: Some(4),
        ..Default::default()
    };
    let harness = start(knobs, None, 2_000).await;
    let jobs: Vec<CarrierJob> = (0..24)
        .map(|index| job(&format!("010{index:08}")))
        .collect();
    for job in &jobs {
        enqueue(&harness.jetstream, job).await;
    }
    wait_until("every job delivered", Duration::from_secs(30), || async {
        harness.kt.counts().delivered == 24
    })
    .await;
    let counts = harness.kt.counts();
    assert!(counts.rate_limited > 0, "KT never throttled: {counts:?}");
    assert_eq!(counts.duplicates, 0, "{counts:?}");
    assert_eq!(
        harness.skt.counts().received,
        0,
        "a throttled job failed over"
    );
    let events = events(&harness.jetstream).await;
    assert!(
        events
            .iter()
            .all(|event| !matches!(event.kind, EventKind::FailedOver | EventKind::AttemptFailed)),
        "throttling is not a failed attempt: {events:?}"
    );
    assert!(queue_is_empty(&harness.jetstream).await);
}

#[tokio::test]
async fn a_job_past_its_validity_is_never_submitted_and_ends_expired_refunded() {
    let harness = start(Knobs::default(), None, 2_000).await;
    let expired = CarrierJob {
        expires_at_ms: Some(rns_types::time::now_milliseconds().saturating_sub(1)),
        ..job("01012345678")
    };
    enqueue(&harness.jetstream, &expired).await;
    let events = wait_for_final(&harness.jetstream).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::Expired, "{events:?}");
    assert_eq!(
        (last.points.reserved, last.points.spent),
        (1, 0),
        "refunded: {last:?}"
    );
    assert!(last.detail.contains("validity"), "{}", last.detail);
    assert_eq!(
        harness.kt.counts().received,
        0,
        "an expired job was submitted"
    );
    assert!(queue_is_empty(&harness.jetstream).await);
}

#[tokio::test]
async fn a_carrier_that_keeps_failing_fails_over_to_the_next_after_max_deliver() {
    let knobs = Knobs {
        outage: true,
        ..Default::default()
    };
    let harness = start(knobs, None, 2_000).await;
    enqueue(&harness.jetstream, &job("01012345678")).await;
    let events = wait_for_final(&harness.jetstream).await;
    assert_eq!(
        events.last().unwrap().kind,
        EventKind::Delivered,
        "{events:?}"
    );
    let on_kt: Vec<&MessageEvent> = events.iter().filter(|event| event.hop == 1).collect();
    assert_eq!(
        on_kt
            .iter()
            .filter(|event| event.kind == EventKind::AttemptFailed)
            .count(),
        3
    );
    let failed_over = events
        .iter()
        .find(|event| event.kind == EventKind::FailedOver)
        .expect("a failed_over event");
    assert_eq!(failed_over.carrier.as_ref().unwrap().as_str(), "kt");
    assert!(
        failed_over
            .detail
            .contains("gave up after 3 attempts: 503 outage")
            && failed_over.detail.contains("moving to skt"),
        "{}",
        failed_over.detail
    );
    let delivered = events.last().unwrap();
    assert_eq!(delivered.hop, 2);
    assert_eq!(delivered.carrier.as_ref().unwrap().as_str(), "skt");
    assert!(queue_is_empty(&harness.jetstream).await);
    assert_eq!(harness.skt.counts().delivered, 1);
    assert_eq!(harness.kt.counts().delivered, 0);
}

#[tokio::test]
async fn when_every_carrier_fails_the_final_failure_names_each_carrier_and_reason() {
    let knobs = Knobs {
        outage: true,
        ..Default::default()
    };
    let harness = start(knobs.clone(), None, 2_000).await;
    harness.skt.set_knobs(knobs);
    enqueue(&harness.jetstream, &job("01012345678")).await;
    let events = wait_for_final(&harness.jetstream).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::Failed, "{events:?}");
    assert_eq!(
        last.detail,
        "every carrier failed: kt: gave up after 3 attempts: 503 outage: carrier is down; \
         skt: gave up after 3 attempts: 503 outage: carrier is down"
    );
}

#[tokio::test]
async fn refused_connections_open_the_circuit_and_the_message_moves_on_at_once() {
    let dead_endpoint = format!("http://127.0.0.1:{}", spare_port());
    let harness = start(Knobs::default(), Some(dead_endpoint), 2_000).await;
    enqueue(&harness.jetstream, &job("01012345678")).await;
    let events = wait_for_final(&harness.jetstream).await;
    assert_eq!(
        events.last().unwrap().kind,
        EventKind::Delivered,
        "{events:?}"
    );
    let failed_over = events
        .iter()
        .find(|event| event.kind == EventKind::FailedOver)
        .expect("a failed_over event");
    assert!(
        failed_over
            .detail
            .starts_with("circuit open: connection failed"),
        "{}",
        failed_over.detail
    );
    assert_eq!(harness.skt.counts().delivered, 1);
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
    harness.kt.set_knobs(Knobs::default());
    let events = wait_for_final(&harness.jetstream).await;
    assert_eq!(
        events.last().unwrap().kind,
        EventKind::Delivered,
        "{events:?}"
    );
    assert!(events
        .iter()
        .any(|event| event.kind == EventKind::AttemptFailed && event.detail.contains("no answer")));
    let counts = harness.kt.counts();
    assert_eq!(
        counts.delivered, 1,
        "the handset must get the message once: {counts:?}"
    );
    assert!(
        counts.received >= 2,
        "the retry must go to the same carrier: {counts:?}"
    );
    assert_eq!(harness.skt.counts().received, 0);
}

/// Regression: a message whose submits timed out was asked again on its carrier as
/// a new hop, found the carrier's circuit open there (the timeouts had opened it) and,
/// with no earlier attempt on that hop, was moved to another carrier, which delivered
/// it a second time. Now it stays on its carrier through every hop and ends `unknown`
/// (charged) once the receipt deadline passes.
#[tokio::test]
async fn a_message_that_timed_out_is_never_sent_to_another_carrier() {
    let knobs = Knobs {
        latency_milliseconds: 300,
        ..Default::default()
    };
    let harness = start(knobs, None, 100).await;
    enqueue(&harness.jetstream, &job("01012345678")).await;
    let events = wait_for_final(&harness.jetstream).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind, EventKind::Unknown, "{events:?}");
    assert_eq!(last.carrier.as_ref().unwrap().as_str(), "kt");
    assert!(
        last.detail.contains("outcome unknown") && last.detail.contains("receipt deadline"),
        "{}",
        last.detail
    );
    assert_eq!(
        last.points.spent, 1,
        "an unknown outcome is charged: {last:?}"
    );
    assert_eq!(harness.skt.counts().received, 0, "another carrier got it");
    assert!(
        events
            .iter()
            .all(|event| event.kind != EventKind::FailedOver),
        "it never failed over: {events:?}"
    );
    // It was asked again on KT across hops, and the circuit opened on the way, so the
    // circuit-open path was taken too.
    let hops: Vec<u16> = events.iter().map(|event| event.hop).collect();
    assert!(hops.iter().any(|hop| *hop >= 2), "{events:?}");
    assert!(
        events
            .iter()
            .any(|event| event.detail.contains("circuit open")),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_outage_opens_the_circuit_within_a_second_traffic_moves_on_and_a_probe_closes_it() {
    let knobs = Knobs {
        outage: true,
        ..Default::default()
    };
    let harness = start(knobs, None, 2_000).await;
    let health = harness
        .jetstream
        .get_key_value("carrier_health")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for index in 0..40 {
        enqueue(&harness.jetstream, &job(&format!("010{index:08}"))).await;
    }
    let state = |health: async_nats::jetstream::kv::Store| async move {
        let value = health.get("kt").await.unwrap()?;
        let record: CircuitRecord = serde_json::from_slice(&value).unwrap();
        Some(record.state)
    };
    while state(health.clone()).await != Some(CircuitState::Open) {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the circuit did not open within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..200 {
        if harness.skt.counts().delivered == 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(harness.skt.counts().delivered, 40);
    let kt_submits = harness.kt.counts().received;
    assert!(
        kt_submits < 20,
        "{kt_submits} submits reached a carrier with an open circuit"
    );

    // Nothing reaches KT while it is open, yet its recovery probe notices the carrier
    // is back and closes the circuit within a second, without any traffic.
    let probes_before = harness.kt.counts().received;
    harness.kt.set_knobs(Knobs::default());
    let recovered = wait_until("the circuit closing", Duration::from_secs(5), || {
        let health = health.clone();
        async move { state(health).await == Some(CircuitState::Closed) }
    })
    .await;
    assert!(
        recovered <= Duration::from_secs(1),
        "the circuit closed {recovered:?} after the carrier recovered"
    );
    assert_eq!(
        harness.kt.counts().received,
        probes_before,
        "a message was used as a probe"
    );
    enqueue(&harness.jetstream, &job("01099999999")).await;
    wait_until(
        "a delivery on the recovered carrier",
        Duration::from_secs(5),
        || async { harness.kt.counts().delivered == 1 },
    )
    .await;
}

/// JetStream not taking an outcome between a carrier's answer and its record (as
/// when a node restarts: "no stream found") costs the job time, not a delivery: the
/// delivery that submitted it records the outcome once JetStream takes it again
/// (attempt 1), and the carrier got one submit.
#[tokio::test]
async fn an_outcome_jetstream_cannot_take_yet_costs_the_job_no_delivery() {
    rns_service::metrics::handle();
    let (harness, settings) = prepare(
        Knobs {
            latency_milliseconds: 1_000,
            ..Knobs::default()
        },
        None,
        5_000,
    )
    .await;
    let readiness = run_workers(&harness, settings.clone());
    wait_until("the workers run", Duration::from_secs(20), || async {
        readiness.is_ready()
    })
    .await;
    // The outcome will find no stream to take it (before the job is even queued, so
    // however slowly the worker runs, nothing is recorded before). RESULTS stops
    // listening on its subjects rather than being deleted: deleted, it came back
    // without its consumers for a moment, and an interest stream drops what it takes
    // while nobody is interested (the outcome was recorded and gone, a flaky test).
    let mut results = harness.jetstream.get_stream("RESULTS").await.unwrap();
    let listening = results.info().await.unwrap().config.clone();
    let mut deaf = listening.clone();
    deaf.subjects = vec!["results_unavailable.>".to_owned()];
    harness.jetstream.update_stream(deaf).await.unwrap();
    let sent = job("01055556666");
    enqueue(&harness.jetstream, &sent).await;
    wait_until("KT has it", Duration::from_secs(10), || async {
        harness.kt.counts().received == 1
    })
    .await;
    wait_until(
        "recording the outcome failed and is tried again",
        Duration::from_secs(10),
        || async { rns_service::metrics::render().contains("rns_carrier_store_retries_total") },
    )
    .await;
    harness.jetstream.update_stream(listening).await.unwrap();
    // The worker's next try comes after its back-off (up to 4 s).
    wait_until("the outcome recorded", Duration::from_secs(30), || async {
        finals(&events(&harness.jetstream).await, &sent).len() == 1
    })
    .await;
    let recorded = events(&harness.jetstream).await;
    let delivered = finals(&recorded, &sent);
    assert_eq!(delivered.len(), 1, "{recorded:?}");
    assert_eq!(
        (delivered[0].kind, delivered[0].attempt),
        (EventKind::Delivered, 1),
        "recorded by the delivery that submitted it: {recorded:?}"
    );
    assert!(
        queue_is_empty(&harness.jetstream).await,
        "the job was acked"
    );
    let counts = harness.kt.counts();
    assert_eq!((counts.received, counts.duplicates), (1, 0), "{counts:?}");
}

/// The server publishes a MaxDeliver advisory once; when the stream that keeps it
/// could not take it (its node restarting, its leader moving), the job must not stay
/// in its queue for good: the sweep finds it there and moves it on.
#[tokio::test]
async fn a_job_whose_max_deliver_advisory_was_lost_is_moved_on_by_the_sweep() {
    let (harness, mut settings) = prepare(
        Knobs {
            transient_failure_rate: 1.0,
            ..Knobs::default()
        },
        None,
        2_000,
    )
    .await;
    settings.carrier_workers.max_deliver_sweep_seconds = 1;
    let readiness = run_workers(&harness, settings);
    wait_until("the workers run", Duration::from_secs(20), || async {
        readiness.is_ready()
    })
    .await;
    // The advisories go nowhere from now on, as when their stream is unavailable.
    let advisories = harness.jetstream.get_stream("ADVISORIES").await.unwrap();
    let mut config = advisories.cached_info().config.clone();
    config.subjects = vec!["advisories_lost.>".to_owned()];
    harness.jetstream.update_stream(config).await.unwrap();
    let sent = job("01077778888");
    enqueue(&harness.jetstream, &sent).await;
    wait_until("SKT delivered it", Duration::from_secs(30), || async {
        harness.skt.counts().delivered == 1
    })
    .await;
    let recorded = wait_for_final(&harness.jetstream).await;
    let moved = recorded
        .iter()
        .find(|event| event.kind == EventKind::FailedOver)
        .unwrap_or_else(|| panic!("it failed over: {recorded:?}"));
    assert!(
        moved.detail.contains("gave up after 3 attempts"),
        "{moved:?}"
    );
    assert_eq!(
        harness.kt.counts().transient_failures,
        3,
        "its deliveries ran out on KT"
    );
    let mut advisories = harness.jetstream.get_stream("ADVISORIES").await.unwrap();
    assert_eq!(
        advisories.info().await.unwrap().state.last_sequence,
        0,
        "no advisory was ever kept"
    );
    assert!(
        queue_is_empty(&harness.jetstream).await,
        "taken off KT's queue"
    );
}

#[tokio::test]
async fn a_batch_is_submitted_together_and_each_job_settles_on_its_own() {
    let knobs = Knobs {
        transient_failure_rate: 0.3,
        ..Default::default()
    };
    let harness = start(knobs, None, 2_000).await;
    let jobs = batch(40);
    // The worker creates the queue; wait for it like `enqueue` does.
    let alone = job("01099999999");
    enqueue(&harness.jetstream, &alone).await;
    enqueue_batch(&harness.jetstream, &jobs).await;
    // The lone job too, or its delivery may not be counted yet below.
    let every = [jobs.as_slice(), std::slice::from_ref(&alone)].concat();
    let by_message = wait_for_all_final(&harness.jetstream, &every).await;
    let mut retried = 0;
    for job in &jobs {
        let events = &by_message[&job.message_id];
        let finals: Vec<&MessageEvent> = events
            .iter()
            .filter(|event| event.kind.status().is_final())
            .collect();
        assert_eq!(finals.len(), 1, "{events:?}");
        assert_eq!(finals[0].kind, EventKind::Delivered, "{events:?}");
        if finals[0].attempt > 1 {
            retried += 1;
            let first = events
                .iter()
                .find(|event| event.attempt == 1)
                .expect("the batch's submit is attempt 1");
            assert_eq!(first.kind, EventKind::AttemptFailed, "{events:?}");
        }
    }
    assert!(retried > 0, "a 30% failure rate failed none of 40");
    let counts = harness.kt.counts();
    assert_eq!(counts.delivered + harness.skt.counts().delivered, 41);
    assert_eq!(counts.duplicates, 0);
    assert!(queue_is_empty(&harness.jetstream).await);
}

#[tokio::test]
async fn a_batch_on_a_carrier_that_keeps_failing_moves_on_job_by_job() {
    let knobs = Knobs {
        outage: true,
        ..Default::default()
    };
    let harness = start(knobs, None, 2_000).await;
    let jobs = batch(5);
    let alone = job("01099999999");
    enqueue(&harness.jetstream, &alone).await;
    enqueue_batch(&harness.jetstream, &jobs).await;
    let every = [jobs.as_slice(), std::slice::from_ref(&alone)].concat();
    let by_message = wait_for_all_final(&harness.jetstream, &every).await;
    for job in &jobs {
        let events = &by_message[&job.message_id];
        let last = events.last().unwrap();
        assert_eq!(last.kind, EventKind::Delivered, "{events:?}");
        assert_eq!(last.carrier.as_ref().unwrap().as_str(), "skt");
        // Unless KT's circuit opened first, the split job had its own deliveries
        // after the batch's submit.
        let failed_over = events
            .iter()
            .find(|event| event.kind == EventKind::FailedOver)
            .expect("a failed_over event");
        assert!(
            failed_over.detail.contains("gave up after 4 attempts")
                || failed_over.detail.contains("circuit open"),
            "{}",
            failed_over.detail
        );
    }
    assert_eq!(harness.kt.counts().delivered, 0);
    assert_eq!(harness.skt.counts().delivered, 6);
}

#[tokio::test]
async fn a_batch_whose_worker_died_is_split_and_delivered_once_on_the_same_carrier() {
    let (harness, settings) = prepare(Knobs::default(), None, 2_000).await;
    let jobs = batch(10);
    enqueue_batch(&harness.jetstream, &jobs).await;
    // A worker takes the batch, submits it, and dies before settling anything.
    let consumer: async_nats::jetstream::consumer::PullConsumer = harness
        .jetstream
        .get_stream("CARRIER_KT")
        .await
        .unwrap()
        .get_consumer("carrier-kt")
        .await
        .unwrap();
    let mut taken = consumer.fetch().max_messages(1).messages().await.unwrap();
    let taken = StreamExt::next(&mut taken).await.unwrap().unwrap();
    let batch: Vec<CarrierJob> = serde_json::from_slice(&taken.payload).unwrap();
    for job in &batch[..3] {
        let answer = reqwest::Client::new()
            .post(format!("{}/v1/messages", harness.kt_url))
            .json(&rns_carriers::http::HttpCarrier::request(job, Vec::new()))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success());
    }
    // Its delivery ends unsettled (a nak comes sooner than the ack wait).
    taken
        .ack_with(async_nats::jetstream::AckKind::Nak(None))
        .await
        .unwrap();
    run_workers(&harness, settings);
    let by_message = wait_for_all_final(&harness.jetstream, &jobs).await;
    for job in &jobs {
        let events = &by_message[&job.message_id];
        let last = events.last().unwrap();
        assert_eq!(last.kind, EventKind::Delivered, "{events:?}");
        assert_eq!(
            last.attempt, 2,
            "attempt 1 was the lost batch submit: {events:?}"
        );
        assert!(events.iter().all(|event| event.attempt != 1), "{events:?}");
    }
    let counts = harness.kt.counts();
    assert_eq!(counts.delivered, 10, "each job reached the handset once");
    assert_eq!(
        counts.duplicates, 3,
        "the three submitted before the crash were recognised"
    );
    assert!(queue_is_empty(&harness.jetstream).await);
}

/// KT in asynchronous mode, posting its receipts to the harness's receipts listener.
fn asynchronous(harness: &Harness, receipts: ReceiptKnobs) -> Knobs {
    Knobs {
        receipts: Some(ReceiptKnobs {
            url: format!("{}/kt", harness.receipts_url),
            token: KT_RECEIPT_TOKEN.to_owned(),
            ..receipts
        }),
        ..Default::default()
    }
}

/// Final events of `job`'s message.
fn finals<'a>(events: &'a [MessageEvent], job: &CarrierJob) -> Vec<&'a MessageEvent> {
    events
        .iter()
        .filter(|event| event.message_id == job.message_id && event.kind.status().is_final())
        .collect()
}

/// Waits until every receipt in `RECEIPTS` was read and every deadline schedule
/// fired and was read: what stays is, per deadline that came, the entry saying its
/// message was accepted.
async fn wait_for_receipts_drained(jetstream: &async_nats::jetstream::Context) {
    wait_until("RECEIPTS drained", Duration::from_secs(20), || async {
        let stream = jetstream.get_stream("RECEIPTS").await.unwrap();
        let unread = stream.info_with_subjects("receipt.>").await.unwrap();
        if unread.count().await > 0 {
            return false;
        }
        let deadlines: Vec<String> = stream
            .info_with_subjects("receipt_deadline.>")
            .await
            .unwrap()
            .map(|entry| entry.unwrap().0)
            .collect()
            .await;
        for subject in deadlines {
            // Gone for a moment between a schedule firing and its entry: not yet.
            let Ok(stored) = stream.get_last_raw_message_by_subject(&subject).await else {
                return false;
            };
            if stored.headers.get("Nats-Schedule").is_some() {
                return false;
            }
        }
        true
    })
    .await;
}

#[tokio::test]
async fn an_accepted_message_stays_submitted_until_its_receipt_says_delivered() {
    let harness = start(Knobs::default(), None, 2_000).await;
    harness.kt.set_knobs(asynchronous(
        &harness,
        ReceiptKnobs {
            delay_milliseconds: 1_500,
            ..Default::default()
        },
    ));
    let job = job("01012345678");
    enqueue(&harness.jetstream, &job).await;
    wait_until("KT accepted it", Duration::from_secs(10), || async {
        events(&harness.jetstream)
            .await
            .iter()
            .any(|event| event.kind == EventKind::Submitted)
    })
    .await;
    assert!(
        finals(&events(&harness.jetstream).await, &job).is_empty(),
        "accepted is not delivered: nothing is final before the receipt"
    );
    assert!(
        queue_is_empty(&harness.jetstream).await,
        "the job was acked"
    );
    let recorded = wait_for_final(&harness.jetstream).await;
    let delivered = finals(&recorded, &job);
    assert_eq!(delivered.len(), 1, "{recorded:?}");
    assert_eq!(delivered[0].kind, EventKind::Delivered);
    assert_eq!(
        (delivered[0].points.reserved, delivered[0].points.spent),
        (1, 1),
        "spent on delivery"
    );
    assert!(
        delivered[0].detail.contains("receipt from kt"),
        "{delivered:?}"
    );
    // The deadline (3 s) fires later and finds the message settled.
    wait_for_receipts_drained(&harness.jetstream).await;
    let recorded = events(&harness.jetstream).await;
    assert_eq!(finals(&recorded, &job).len(), 1, "{recorded:?}");
    let counts = harness.kt.counts();
    assert_eq!(
        (counts.accepted, counts.receipts_posted),
        (1, 1),
        "{counts:?}"
    );
}

#[tokio::test]
async fn an_undeliverable_receipt_refunds_and_a_lost_one_ends_unknown_at_the_deadline() {
    let harness = start(Knobs::default(), None, 2_000).await;
    harness.kt.set_knobs(asynchronous(
        &harness,
        ReceiptKnobs {
            undeliverable_rate: 1.0,
            ..Default::default()
        },
    ));
    let unreachable = job("01012345678");
    enqueue(&harness.jetstream, &unreachable).await;
    let recorded = wait_for_final(&harness.jetstream).await;
    let ended = finals(&recorded, &unreachable);
    assert_eq!(ended[0].kind, EventKind::Undeliverable, "{recorded:?}");
    assert_eq!((ended[0].points.reserved, ended[0].points.spent), (1, 0));
    assert!(ended[0].detail.contains("UNDELIV 001"), "{ended:?}");
    assert_eq!(harness.kt.counts().delivered, 0);

    harness.kt.set_knobs(asynchronous(
        &harness,
        ReceiptKnobs {
            loss_rate: 1.0,
            ..Default::default()
        },
    ));
    let unreported = job("01087654321");
    enqueue(&harness.jetstream, &unreported).await;
    let submitted_at = std::time::Instant::now();
    wait_until("the deadline ended it", Duration::from_secs(20), || async {
        !finals(&events(&harness.jetstream).await, &unreported).is_empty()
    })
    .await;
    assert!(
        submitted_at.elapsed() >= Duration::from_secs(2),
        "ended before its deadline of 3 s: {:?}",
        submitted_at.elapsed()
    );
    let recorded = events(&harness.jetstream).await;
    let ended = finals(&recorded, &unreported);
    assert_eq!(ended.len(), 1, "{recorded:?}");
    assert_eq!(ended[0].kind, EventKind::Unknown);
    assert_eq!(
        (ended[0].points.reserved, ended[0].points.spent),
        (1, 1),
        "the carrier may have delivered it: charged"
    );
    assert!(ended[0].detail.contains("no receipt"), "{ended:?}");
    let counts = harness.kt.counts();
    assert_eq!(counts.receipts_lost, 1, "{counts:?}");
    assert_eq!(harness.skt.counts().received, 0, "never sent elsewhere");
}

#[tokio::test]
async fn early_and_duplicated_receipts_settle_each_message_exactly_once() {
    let harness = start(Knobs::default(), None, 2_000).await;
    harness.kt.set_knobs(asynchronous(
        &harness,
        ReceiptKnobs {
            early_rate: 1.0,
            duplicate_rate: 1.0,
            delay_milliseconds: 200,
            ..Default::default()
        },
    ));
    let jobs: Vec<CarrierJob> = (0..12)
        .map(|index| job(&format!("010{index:08}")))
        .collect();
    for job in &jobs {
        enqueue(&harness.jetstream, job).await;
    }
    wait_for_all_final(&harness.jetstream, &jobs).await;
    wait_until(
        "every duplicate posted",
        Duration::from_secs(10),
        || async { harness.kt.counts().receipts_posted == 24 },
    )
    .await;
    wait_for_receipts_drained(&harness.jetstream).await;
    let counts = harness.kt.counts();
    assert_eq!(counts.receipts_early, 12, "{counts:?}");
    assert_eq!(counts.receipts_duplicated, 12, "{counts:?}");
    let recorded = events(&harness.jetstream).await;
    for job in &jobs {
        let ended = finals(&recorded, job);
        assert_eq!(ended.len(), 1, "settled once: {ended:?}");
        assert_eq!(ended[0].kind, EventKind::Delivered);
    }
}

#[tokio::test]
async fn the_receipts_listener_takes_only_well_formed_receipts_with_the_carriers_token() {
    let harness = start(Knobs::default(), None, 2_000).await;
    let http = reqwest::Client::new();
    let kt = format!("{}/kt", harness.receipts_url);
    let receipt = serde_json::json!({"carrier_reference": "kt-unknown-1", "state": "delivered"});
    let post = |url: String, token: &'static str, body: serde_json::Value| {
        let http = http.clone();
        async move {
            let response = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<serde_json::Value>().await.unwrap())
        }
    };
    wait_until("the listener is up", Duration::from_secs(20), || async {
        http.post(&kt).send().await.is_ok()
    })
    .await;
    let (status, body) = post(kt.clone(), "wrong", receipt.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = post(
        format!("{}/skt", harness.receipts_url),
        KT_RECEIPT_TOKEN,
        receipt.clone(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_carrier"))
    );
    let (status, body) = post(
        kt.clone(),
        KT_RECEIPT_TOKEN,
        serde_json::json!({"carrier_reference": "kt-1", "state": "read"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_body"))
    );
    let (status, body) = post(
        kt.clone(),
        KT_RECEIPT_TOKEN,
        serde_json::json!({"receipts": []}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_receipt_count"))
    );
    let (status, body) = post(kt.clone(), KT_RECEIPT_TOKEN, receipt.clone()).await;
    assert_eq!((status, body), (200, serde_json::json!({"stored": 1})));
    let (status, body) = post(
        kt,
        KT_RECEIPT_TOKEN,
        serde_json::json!({"receipts": [receipt, {"carrier_reference": "kt 2/é", "state": "expired"}]}),
    )
    .await;
    assert_eq!((status, body), (200, serde_json::json!({"stored": 2})));
    // A receipt of a message no one submitted waits as early; nothing is settled.
    wait_for_receipts_drained(&harness.jetstream).await;
    assert!(events(&harness.jetstream).await.is_empty());
}
