//! The dispatcher against real nats-server and Redis: exact splits across requests,
//! zero weights, weight changes without restart, and idempotent redelivery.
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use rns_dispatcher::{DispatcherSettings, Settings};
use rns_nats::{publish_all, CustomerDirectory, Outbound, Topology};
use rns_service::{NatsSettings, Readiness, RedisSettings};
use rns_testkit::{NatsServer, RedisServer};
use rns_types::routing::Weights;
use rns_types::subjects::{message_ids, send_subject, DISPATCHER_CONSUMER, SEND_STREAM};
use rns_types::wire::{CarrierPayload, Recipient, ResultBatch, SendRequest};
use rns_types::{CarrierCatalog, Channel, CustomerId, CustomerProfile, PhoneNumber, RequestId};
use tokio_util::sync::CancellationToken;

struct Harness {
    _nats: NatsServer,
    redis: RedisServer,
    jetstream: async_nats::jetstream::Context,
    directory: CustomerDirectory,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A dispatcher with its default settings (jobs published in batches).
async fn start() -> Harness {
    start_with(DispatcherSettings::default()).await
}

async fn start_with(dispatcher: DispatcherSettings) -> Harness {
    let nats = NatsServer::start().await;
    let redis = RedisServer::start().await;
    let settings = Settings {
        nats: NatsSettings {
            url: nats.url(),
            ..Default::default()
        },
        redis: RedisSettings { url: redis.url() },
        dispatcher,
        ..Default::default()
    };
    let jetstream = async_nats::jetstream::new(nats.client().await);
    let carriers = CarrierCatalog::korean_default()
        .entries()
        .iter()
        .map(|entry| entry.id.clone())
        .collect();
    Topology::new(settings.nats.topology.clone(), carriers)
        .ensure(&jetstream)
        .await
        .unwrap();
    let directory = CustomerDirectory::open(&jetstream).await.unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(rns_dispatcher::run(
        settings,
        Readiness::default(),
        shutdown.clone(),
    ));
    Harness {
        _nats: nats,
        redis,
        jetstream,
        directory,
        shutdown,
    }
}

/// Publishes `requests` (one customer's) as the gateway gathers them into one SEND
/// message, under `id`, else the first request's gathered id (as the gateway names it).
async fn publish_gathered(harness: &Harness, requests: &[SendRequest], id: Option<&str>) {
    let message = Outbound {
        subject: send_subject(&requests[0].customer_id),
        message_id: id.map_or_else(
            || message_ids::gathered_sends(&requests[0].request_id),
            str::to_owned,
        ),
        payload: Bytes::from(serde_json::to_vec(requests).unwrap()),
    };
    publish_all(&harness.jetstream, [message], 1).await.unwrap();
}

/// Waits until the dispatcher took and acknowledged every SEND message up to stream
/// sequence `sequence`.
async fn wait_until_dispatched(harness: &Harness, sequence: u64) {
    rns_testkit::wait_until(
        "the SEND messages dispatched",
        Duration::from_secs(10),
        || async {
            let mut consumer: async_nats::jetstream::consumer::PullConsumer = harness
                .jetstream
                .get_consumer_from_stream(DISPATCHER_CONSUMER, SEND_STREAM)
                .await
                .unwrap();
            let info = consumer.info().await.unwrap();
            info.delivered.stream_sequence >= sequence && info.num_ack_pending == 0
        },
    )
    .await;
}

/// How many keys Redis holds under `pattern` (routing reservations, say).
async fn redis_keys(harness: &Harness, pattern: &str) -> usize {
    let client = redis::Client::open(harness.redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut connection)
        .await
        .unwrap();
    keys.len()
}

async fn customer_with_weights(
    directory: &CustomerDirectory,
    id: &str,
    weights: &[(&str, u32)],
) -> CustomerId {
    let customer = CustomerId::parse(id).unwrap();
    let profile = CustomerProfile::new(customer.clone(), id.into(), 0);
    directory
        .create(
            &profile,
            &format!("hash-{id}"),
            &rns_types::api_key::ApiKeyRecord::parse(id.as_bytes()).unwrap(),
        )
        .await
        .unwrap();
    set_weights(directory, &customer, weights).await;
    customer
}

const FIFTY_THIRTY_TWENTY: [(&str, u32); 3] = [("kt", 50), ("skt", 30), ("lgu", 20)];

/// Customer `acme`, routing SMS kt 50 / skt 30 / lgu 20.
async fn acme_fifty_thirty_twenty(harness: &Harness) -> CustomerId {
    customer_with_weights(&harness.directory, "acme", &FIFTY_THIRTY_TWENTY).await
}

async fn set_weights(
    directory: &CustomerDirectory,
    customer: &CustomerId,
    weights: &[(&str, u32)],
) {
    let weights = sms_weights(weights, &CarrierCatalog::korean_default());
    directory
        .update(customer, |profile| {
            profile.routing.insert(Channel::Sms, weights.clone());
            Ok::<(), ()>(())
        })
        .await
        .unwrap()
        .unwrap();
}

fn sms_weights(weights: &[(&str, u32)], catalog: &CarrierCatalog) -> Weights {
    let raw: BTreeMap<String, u32> = weights
        .iter()
        .map(|(name, weight)| (name.to_string(), *weight))
        .collect();
    Weights::validate(&raw, Channel::Sms, catalog).unwrap()
}

fn request(customer: &CustomerId, recipients: usize) -> SendRequest {
    SendRequest::sms(
        RequestId::generate(),
        customer.clone(),
        PhoneNumber::parse("0212345678").unwrap(),
        "hello",
        (0..recipients)
            .map(|index| Recipient::new(PhoneNumber::parse(&format!("010{index:08}")).unwrap(), 1))
            .collect(),
    )
}

async fn submit(jetstream: &async_nats::jetstream::Context, request: &SendRequest, id: &str) {
    let outbound = Outbound {
        subject: send_subject(&request.customer_id),
        message_id: id.to_owned(),
        payload: Bytes::from(serde_json::to_vec(request).unwrap()),
    };
    publish_all(jetstream, [outbound], 1).await.unwrap();
}

/// Submits `requests` requests of `recipients` each, as the gateway would.
async fn submit_many(
    jetstream: &async_nats::jetstream::Context,
    customer: &CustomerId,
    requests: usize,
    recipients: usize,
) {
    for _ in 0..requests {
        let request = request(customer, recipients);
        submit(jetstream, &request, &message_ids::send(&request.request_id)).await;
    }
}

/// The jobs waiting in each carrier's queue (a batch message counts its jobs); every
/// job must be for the carrier whose queue holds it, and no message is repeated.
async fn queued(jetstream: &async_nats::jetstream::Context) -> HashMap<&'static str, u64> {
    let mut counts = HashMap::new();
    for (carrier, stream) in [
        ("kt", "CARRIER_KT"),
        ("skt", "CARRIER_SKT"),
        ("lgu", "CARRIER_LGU"),
    ] {
        let mut stream = jetstream.get_stream(stream).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut messages = std::collections::HashSet::new();
        for sequence in state.first_sequence..state.first_sequence + state.messages {
            let stored = stream.get_raw_message(sequence).await.unwrap();
            for job in CarrierPayload::decode(&stored.payload).unwrap().into_jobs() {
                assert_eq!(job.carrier.as_str(), carrier);
                assert!(
                    messages.insert(job.message_id),
                    "{} queued twice",
                    job.message_id
                );
            }
        }
        counts.insert(carrier, messages.len() as u64);
    }
    counts
}

async fn wait_for_queued(
    jetstream: &async_nats::jetstream::Context,
    total: u64,
) -> HashMap<&'static str, u64> {
    for _ in 0..200 {
        let counts = queued(jetstream).await;
        if counts.values().sum::<u64>() >= total {
            // Settle: nothing more may arrive.
            tokio::time::sleep(Duration::from_millis(200)).await;
            return queued(jetstream).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "fewer than {total} jobs were queued: {:?}",
        queued(jetstream).await
    );
}

#[tokio::test]
async fn a_hundred_single_recipient_requests_split_exactly_fifty_thirty_twenty() {
    let harness = start().await;
    let customer = acme_fifty_thirty_twenty(&harness).await;
    submit_many(&harness.jetstream, &customer, 100, 1).await;
    let counts = wait_for_queued(&harness.jetstream, 100).await;
    assert_eq!(counts["kt"], 50);
    assert_eq!(counts["skt"], 30);
    assert_eq!(counts["lgu"], 20);
}

#[tokio::test]
async fn a_zero_weight_is_never_chosen_and_a_weight_change_applies_to_the_next_request() {
    let harness = start().await;
    let customer = customer_with_weights(
        &harness.directory,
        "acme",
        &[("kt", 1), ("skt", 1), ("lgu", 0)],
    )
    .await;
    submit_many(&harness.jetstream, &customer, 40, 1).await;
    let counts = wait_for_queued(&harness.jetstream, 40).await;
    assert_eq!((counts["kt"], counts["skt"], counts["lgu"]), (20, 20, 0));

    set_weights(&harness.directory, &customer, &[("lgu", 5)]).await;
    submit_many(&harness.jetstream, &customer, 1, 30).await;
    let counts = wait_for_queued(&harness.jetstream, 70).await;
    assert_eq!((counts["kt"], counts["skt"], counts["lgu"]), (20, 20, 30));
}

#[tokio::test]
async fn a_redelivered_request_routes_identically_and_publishes_nothing_new() {
    let harness = start().await;
    let customer = acme_fifty_thirty_twenty(&harness).await;
    let request = request(&customer, 7);
    submit(&harness.jetstream, &request, "first-delivery").await;
    let first = wait_for_queued(&harness.jetstream, 7).await;
    // The same request arriving again (as after a crash before the ack).
    submit(&harness.jetstream, &request, "second-delivery").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(queued(&harness.jetstream).await, first);
    let mut send = harness.jetstream.get_stream("SEND").await.unwrap();
    for _ in 0..50 {
        if send.info().await.unwrap().state.messages == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        send.info().await.unwrap().state.messages,
        0,
        "SEND was not acknowledged"
    );
}

#[tokio::test]
async fn new_messages_avoid_a_carrier_whose_circuit_is_open() {
    let harness = start().await;
    let customer = acme_fifty_thirty_twenty(&harness).await;
    let health = rns_nats::HealthStore::open(&harness.jetstream)
        .await
        .unwrap();
    health
        .publish(&rns_types::CircuitRecord {
            carrier: rns_types::CarrierId::parse("kt").unwrap(),
            state: rns_types::CircuitState::Open,
            since_ms: 0,
            reason: "503 outage".into(),
        })
        .await
        .unwrap();
    // The dispatcher learns of the change through its watch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    submit_many(&harness.jetstream, &customer, 50, 1).await;
    let counts = wait_for_queued(&harness.jetstream, 50).await;
    assert_eq!((counts["kt"], counts["skt"], counts["lgu"]), (0, 30, 20));
}

/// Regression: with a publish window of 4,096 per request, a few large requests at
/// once held more unpolled acknowledgements than the client allows (5,000) and every
/// dispatch waited for a slot forever.
#[tokio::test]
async fn many_large_requests_at_once_do_not_stall_the_dispatcher() {
    // One publish per job, the most acknowledgements a request can wait for.
    let harness = start_with(DispatcherSettings {
        job_batch: 1,
        ..Default::default()
    })
    .await;
    let customer = acme_fifty_thirty_twenty(&harness).await;
    submit_many(&harness.jetstream, &customer, 40, 500).await;
    let counts = wait_for_queued(&harness.jetstream, 20_000).await;
    assert_eq!(
        (counts["kt"], counts["skt"], counts["lgu"]),
        (10_000, 6_000, 4_000)
    );
}

#[tokio::test]
async fn a_held_send_is_dispatched_when_its_schedule_fires() {
    let harness = start().await;
    let customer = customer_with_weights(&harness.directory, "acme", &[("kt", 1)]).await;
    let request = request(&customer, 3);
    let at = rns_types::time::rfc3339_seconds(rns_types::time::now_milliseconds() + 1_500);
    rns_nats::publish_scheduled(
        &harness.jetstream,
        rns_types::subjects::schedule_subject(&request.request_id),
        Outbound {
            subject: rns_types::subjects::due_subject(&customer),
            message_id: message_ids::send(&request.request_id),
            payload: Bytes::from(serde_json::to_vec(&request).unwrap()),
        },
        &at,
    )
    .await
    .unwrap();
    assert_eq!(
        queued(&harness.jetstream).await["kt"],
        0,
        "held until its time"
    );
    let counts = wait_for_queued(&harness.jetstream, 3).await;
    assert_eq!(counts["kt"], 3);
}

#[tokio::test]
async fn weights_read_at_acceptance_route_without_the_profile_unless_they_name_unknown_carriers() {
    let harness = start().await;
    let customer = customer_with_weights(&harness.directory, "acme", &[("kt", 1)]).await;
    let mut accepted = request(&customer, 10);
    accepted.weights = Some(sms_weights(
        &[("lgu", 1)],
        &CarrierCatalog::korean_default(),
    ));
    submit(
        &harness.jetstream,
        &accepted,
        &message_ids::send(&accepted.request_id),
    )
    .await;
    let counts = wait_for_queued(&harness.jetstream, 10).await;
    assert_eq!((counts["kt"], counts["skt"], counts["lgu"]), (0, 0, 10));

    // A gateway that knows a carrier this dispatcher does not: the profile decides.
    let elsewhere = CarrierCatalog::new(vec![rns_types::carrier::CarrierEntry {
        id: rns_types::CarrierId::parse("xyz").unwrap(),
        channel: Channel::Sms,
    }]);
    let mut foreign = request(&customer, 10);
    foreign.weights = Some(sms_weights(&[("xyz", 1)], &elsewhere));
    submit(
        &harness.jetstream,
        &foreign,
        &message_ids::send(&foreign.request_id),
    )
    .await;
    let counts = wait_for_queued(&harness.jetstream, 20).await;
    assert_eq!((counts["kt"], counts["skt"], counts["lgu"]), (10, 0, 10));
}

/// The messages stored in `stream` and the records its result batches hold.
async fn stored(jetstream: &async_nats::jetstream::Context, stream: &str) -> (u64, usize) {
    let mut stream = jetstream.get_stream(stream).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut records = 0;
    for sequence in state.first_sequence..state.first_sequence + state.messages {
        let message = stream.get_raw_message(sequence).await.unwrap();
        if let Ok(batch) = ResultBatch::decode(&message.payload) {
            records += batch.messages.len();
        }
    }
    (state.messages, records)
}

async fn carrier_messages(jetstream: &async_nats::jetstream::Context) -> u64 {
    let mut total = 0;
    for carrier in ["CARRIER_KT", "CARRIER_SKT", "CARRIER_LGU"] {
        total += stored(jetstream, carrier).await.0;
    }
    total
}

#[tokio::test]
async fn gathered_requests_split_exactly_share_batches_and_route_identically_when_redelivered() {
    let harness = start().await;
    let customer = acme_fifty_thirty_twenty(&harness).await;
    let weights = sms_weights(&FIFTY_THIRTY_TWENTY, &CarrierCatalog::korean_default());
    // 99 single sends accepted now with their weights, and one without (dispatched
    // on its own from the profile), gathered into one SEND message.
    let mut requests: Vec<SendRequest> = (0..100)
        .map(|_| SendRequest {
            weights: Some(weights.clone()),
            ..request(&customer, 1)
        })
        .collect();
    requests[40].weights = None;
    publish_gathered(&harness, &requests, None).await;
    let counts = wait_for_queued(&harness.jetstream, 100).await;
    assert_eq!((counts["kt"], counts["skt"], counts["lgu"]), (50, 30, 20));
    // One batch per carrier for the 99, and the lone request's job.
    assert_eq!(carrier_messages(&harness.jetstream).await, 4);
    // One RESULTS message of records for the 99, one for the lone request.
    let results = stored(&harness.jetstream, "RESULTS").await;
    assert_eq!(results, (2, 100));
    // The 99 reserved their positions as one run, remembered once.
    assert_eq!(redis_keys(&harness, "rns:route-gathered:*").await, 1);
    assert_eq!(redis_keys(&harness, "rns:route-request:*").await, 1);

    // The same message delivered again (as after a crash before its ack).
    publish_gathered(&harness, &requests, Some("second-delivery")).await;
    wait_until_dispatched(&harness, 2).await;
    assert_eq!(queued(&harness.jetstream).await, counts);
    assert_eq!(carrier_messages(&harness.jetstream).await, 4);
    assert_eq!(stored(&harness.jetstream, "RESULTS").await, results);
}

#[tokio::test]
async fn gathered_requests_accepted_with_different_weights_each_keep_their_split() {
    let harness = start().await;
    let customer = acme_fifty_thirty_twenty(&harness).await;
    let catalog = CarrierCatalog::korean_default();
    let fifty_thirty_twenty = sms_weights(&FIFTY_THIRTY_TWENTY, &catalog);
    // The customer's weights changed while the gateway gathered: the later requests
    // were accepted with KT alone.
    let kt_only = sms_weights(&[("kt", 100)], &catalog);
    let requests: Vec<SendRequest> = (0..100)
        .map(|index| SendRequest {
            weights: Some(if index % 5 < 3 {
                fifty_thirty_twenty.clone()
            } else {
                kt_only.clone()
            }),
            ..request(&customer, 1)
        })
        .collect();
    publish_gathered(&harness, &requests, None).await;
    let counts = wait_for_queued(&harness.jetstream, 100).await;
    // 60 split 50/30/20 (30/18/12), 40 to KT.
    assert_eq!((counts["kt"], counts["skt"], counts["lgu"]), (70, 18, 12));
    assert_eq!(redis_keys(&harness, "rns:route-gathered:*").await, 2);
    assert_eq!(redis_keys(&harness, "rns:route-request:*").await, 0);

    // Delivered again: once the dispatcher took it, the same routes, nothing new.
    publish_gathered(&harness, &requests, Some("second-delivery")).await;
    wait_until_dispatched(&harness, 2).await;
    assert_eq!(queued(&harness.jetstream).await, counts);
    assert_eq!(redis_keys(&harness, "rns:route-gathered:*").await, 2);
}

#[tokio::test]
async fn a_gathered_message_reserved_request_by_request_before_routes_as_it_was() {
    let harness = start().await;
    let customer = acme_fifty_thirty_twenty(&harness).await;
    let catalog = CarrierCatalog::korean_default();
    let weights = sms_weights(&FIFTY_THIRTY_TWENTY, &catalog);
    let requests: Vec<SendRequest> = (0..20)
        .map(|_| SendRequest {
            weights: Some(weights.clone()),
            ..request(&customer, 1)
        })
        .collect();
    // An older dispatcher reserved each request on its own, all on KT, and died
    // before acknowledging the message.
    let kt_only = sms_weights(&[("kt", 100)], &catalog);
    let client = redis::Client::open(harness.redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    for request in &requests {
        let _: () = redis::cmd("SET")
            .arg(format!("rns:route-request:{}:sms", request.request_id))
            .arg(format!("0|{}", kt_only.canonical()))
            .query_async(&mut connection)
            .await
            .unwrap();
    }
    publish_gathered(&harness, &requests, None).await;
    let counts = wait_for_queued(&harness.jetstream, 20).await;
    // Routed as the first dispatch reserved them, not split anew.
    assert_eq!((counts["kt"], counts["skt"], counts["lgu"]), (20, 0, 0));
    assert_eq!(redis_keys(&harness, "rns:route-gathered:*").await, 0);
}
