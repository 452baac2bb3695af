//! Analytics against real nats-server and ClickHouse: the schema runs, rows round-trip,
//! duplicates do not change answers, and a ClickHouse outage loses nothing — each on
//! Debian's 18.16 and on a current release.
use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rns_analytics::{AnalyticsSettings, Settings};
use rns_nats::{publish_all, Outbound};
use rns_results::ResultQueries;
use rns_service::{ClickHouseSettings, NatsSettings, Readiness};
use rns_testkit::{on_every_clickhouse_release, ClickHouseRelease, ClickHouseServer, NatsServer};
use rns_types::subjects::{message_ids, result_subject};
use rns_types::wire::{EventKind, MessageEvent, MessageRecord, ResultBatch};
use rns_types::{CarrierId, Channel, CustomerId, MessageType, PhoneNumber, RequestId};
use tokio_util::sync::CancellationToken;

struct Harness {
    _nats: NatsServer,
    clickhouse: ClickHouseServer,
    jetstream: async_nats::jetstream::Context,
    queries: ResultQueries,
    shutdown: CancellationToken,
}

async fn start(release: ClickHouseRelease) -> Harness {
    let nats = NatsServer::start().await;
    let clickhouse = ClickHouseServer::start_release(release).await;
    let settings = Settings {
        nats: NatsSettings {
            url: nats.url(),
            ..Default::default()
        },
        clickhouse: ClickHouseSettings {
            url: clickhouse.url(),
            ..Default::default()
        },
        analytics: AnalyticsSettings {
            batch_linger_milliseconds: 20,
            retry_delay_milliseconds: 200,
            insert_timeout_milliseconds: 2_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let queries = ResultQueries::new(rns_analytics::clickhouse_client(&settings.clickhouse));
    let shutdown = CancellationToken::new();
    let readiness = Readiness::default();
    tokio::spawn(rns_analytics::run(
        settings,
        readiness.clone(),
        shutdown.clone(),
    ));
    for _ in 0..200 {
        if readiness.is_ready() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(readiness.is_ready(), "analytics did not become ready");
    let jetstream = async_nats::jetstream::new(nats.client().await);
    Harness {
        _nats: nats,
        clickhouse,
        jetstream,
        queries,
        shutdown,
    }
}

fn batch(
    customer: &CustomerId,
    request: RequestId,
    recipients: u32,
    final_kind: Option<EventKind>,
) -> ResultBatch {
    let carrier = CarrierId::parse("kt").unwrap();
    let mut result = ResultBatch {
        customer_id: customer.clone(),
        messages: Vec::new(),
        events: Vec::new(),
    };
    for index in 0..recipients {
        let message_id = request.message_id(index);
        result.messages.push(MessageRecord {
            message_id,
            accepted_at_ms: request.made_at_ms(),
            channel: Channel::Sms,
            message_type: MessageType::Sms,
            from: PhoneNumber::parse("0212345678").unwrap(),
            to: PhoneNumber::parse(&format!("010{:08}", index)).unwrap(),
            subject: None,
            text: "인증번호 123456".into(),
            points_reserved: 1,
            schedule_id: (index == 0).then(|| "01JSCHEDULE0000000000000000".to_owned()),
            fallback: None,
        });
        let event = |kind, attempt| MessageEvent {
            message_id,
            at_ms: request.made_at_ms() + 100,
            accepted_at_ms: request.made_at_ms(),
            kind,
            carrier: Some(carrier.clone()),
            hop: 1,
            attempt,
            detail: String::new(),
            points: Default::default(),
            trace: None,
        };
        result.events.push(event(EventKind::Routed, 0));
        if let Some(kind) = final_kind {
            result.events.push(event(EventKind::Submitted, 1));
            result.events.push(event(kind, 1));
        }
    }
    result
}

/// Publishes `result` as the services do, in the compact encoding.
async fn publish(jetstream: &async_nats::jetstream::Context, result: &ResultBatch, id: &str) {
    publish_payload(jetstream, &result.customer_id, id, result.encode()).await;
}

/// Publishes `result` as JSON, as services before the compact encoding did.
async fn publish_json(jetstream: &async_nats::jetstream::Context, result: &ResultBatch, id: &str) {
    let json = serde_json::to_vec(result).unwrap();
    publish_payload(jetstream, &result.customer_id, id, json).await;
}

async fn publish_payload(
    jetstream: &async_nats::jetstream::Context,
    customer: &CustomerId,
    id: &str,
    payload: Vec<u8>,
) {
    let outbound = Outbound {
        subject: result_subject(customer),
        message_id: id.to_owned(),
        payload: Bytes::from(payload),
    };
    publish_all(jetstream, vec![outbound], 1).await.unwrap();
}

async fn wait_for_total(
    queries: &ResultQueries,
    customer: &CustomerId,
    request: RequestId,
    total: u64,
) -> rns_results::requests::RequestView {
    for _ in 0..200 {
        if let Ok(Some(summary)) = queries.request_summary(customer, &request).await {
            if summary.total == total {
                return summary;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("request {request} never reached {total} messages");
}

async fn results_become_queryable_and_duplicates_change_nothing(release: ClickHouseRelease) {
    let harness = start(release).await;
    let customer = CustomerId::parse("acme").unwrap();
    let request = RequestId::generate();
    let routed = batch(&customer, request, 3, None);
    // The records in JSON, as stored before an upgrade; the outcomes compact.
    publish_json(
        &harness.jetstream,
        &routed,
        &message_ids::accepted_records(&request, 0),
    )
    .await;
    let delivered = batch(&customer, request, 3, Some(EventKind::Delivered));
    // The same events under two ids: as if a worker republished after a crash.
    publish(&harness.jetstream, &delivered, "first").await;
    publish(&harness.jetstream, &delivered, "second").await;

    let summary = wait_for_total(&harness.queries, &customer, request, 3).await;
    for _ in 0..100 {
        let summary = harness
            .queries
            .request_summary(&customer, &request)
            .await
            .unwrap()
            .unwrap();
        if summary.by_status.get("delivered") == Some(&3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let summary_after = harness
        .queries
        .request_summary(&customer, &request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.total, 3);
    assert_eq!(
        summary_after.by_status.get("delivered"),
        Some(&3),
        "{summary_after:?}"
    );
    assert_eq!(summary_after.by_carrier.get("kt"), Some(&3));

    let message = harness
        .queries
        .message(&customer, &request.message_id(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.status, "delivered");
    assert_eq!(message.to, "01000000001");
    assert_eq!(message.sent.text, "인증번호 123456");
    assert_eq!(message.sent.message_type, "sms");
    assert_eq!(message.carrier.as_deref(), Some("kt"));
    assert_eq!(message.attempts, 1);
    let kinds: Vec<&str> = message
        .events
        .iter()
        .map(|event| event.kind.as_str())
        .collect();
    assert_eq!(kinds, ["routed", "submitted", "delivered"]);
    assert_eq!(message.schedule_id, "", "message 1 is not scheduled");
    let scheduled = harness
        .queries
        .message(&customer, &request.message_id(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(scheduled.schedule_id, "01JSCHEDULE0000000000000000");
    harness.shutdown.cancel();
}

async fn another_customer_sees_nothing(release: ClickHouseRelease) {
    let harness = start(release).await;
    let owner = CustomerId::parse("owner").unwrap();
    let stranger = CustomerId::parse("stranger").unwrap();
    let request = RequestId::generate();
    publish(
        &harness.jetstream,
        &batch(&owner, request, 2, Some(EventKind::Delivered)),
        "x",
    )
    .await;
    wait_for_total(&harness.queries, &owner, request, 2).await;
    assert!(harness
        .queries
        .request_summary(&stranger, &request)
        .await
        .unwrap()
        .is_none());
    assert!(harness
        .queries
        .message(&stranger, &request.message_id(0))
        .await
        .unwrap()
        .is_none());
    harness.shutdown.cancel();
}

async fn a_clickhouse_outage_delays_results_but_loses_none(release: ClickHouseRelease) {
    let mut harness = start(release).await;
    let customer = CustomerId::parse("acme").unwrap();
    harness.clickhouse.stop();
    let request = RequestId::generate();
    publish(
        &harness.jetstream,
        &batch(&customer, request, 5, Some(EventKind::Delivered)),
        "during-outage",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    harness.clickhouse.resume().await;
    let summary = wait_for_total(&harness.queries, &customer, request, 5).await;
    assert_eq!(summary.total, 5);
    harness.shutdown.cancel();
}

async fn tables_of_an_earlier_version_gain_the_new_columns_and_enum_values(
    release: ClickHouseRelease,
) {
    let clickhouse = ClickHouseServer::start_release(release).await;
    clickhouse.query("CREATE DATABASE rns").await;
    clickhouse
        .query(
            "CREATE TABLE rns.messages (customer_id String, request_id String, message_id String, \
             accepted_at DateTime, accepted_at_ms UInt64, channel Enum8('sms' = 1, 'alimtalk' = 2), \
             message_type Enum8('sms' = 1, 'lms' = 2, 'mms' = 3, 'alimtalk' = 4), from_number String, \
             to_number String, subject String, text String) ENGINE = ReplacingMergeTree() \
             PARTITION BY toYYYYMMDD(accepted_at) ORDER BY (customer_id, request_id, message_id)",
        )
        .await;
    clickhouse
        .query(
            "CREATE TABLE rns.events (customer_id String, request_id String, message_id String, \
             at DateTime, at_ms UInt64, ordinal UInt32, kind Enum8('routed' = 1, 'attempt_failed' = 2, \
             'submitted' = 3, 'delivered' = 4, 'failed' = 5, 'failed_over' = 6), \
             status Enum8('queued' = 1, 'submitted' = 2, 'delivered' = 3, 'failed' = 4), carrier String, \
             hop UInt16, attempt UInt16, detail String) ENGINE = ReplacingMergeTree() \
             PARTITION BY toYYYYMMDD(at) ORDER BY (customer_id, request_id, message_id, ordinal, kind)",
        )
        .await;
    // The statistics table as it was before receipts were counted.
    clickhouse
        .query(
            "CREATE TABLE rns.carrier_minutes (customer_id String, start DateTime, carrier String, \
             first_choice AggregateFunction(sum, UInt64), submitted AggregateFunction(sum, UInt64), \
             delivered AggregateFunction(sum, UInt64), failed AggregateFunction(sum, UInt64), \
             failed_over AggregateFunction(sum, UInt64), points_spent AggregateFunction(sum, UInt64), \
             latency_ms AggregateFunction(quantilesTDigestIf(0.5, 0.95, 0.99), UInt64, UInt8)) \
             ENGINE = AggregatingMergeTree() PARTITION BY toYYYYMMDD(start) ORDER BY (customer_id, start, carrier)",
        )
        .await;
    let settings = ClickHouseSettings {
        url: clickhouse.url(),
        ..Default::default()
    };
    let client = rns_analytics::clickhouse_client(&settings);
    rns_results::schema::ensure(&client, "rns").await.unwrap();
    // The statistics views of the versions before: one did not count fallbacks, the
    // next not what receipts say.
    clickhouse
        .query(
            "CREATE MATERIALIZED VIEW rns.carrier_minutes_feed TO rns.carrier_minutes AS \
             SELECT customer_id, toStartOfMinute(at) AS start, carrier, \
             sumState(toUInt64(kind = 'failed_over')) AS failed_over FROM rns.events \
             GROUP BY customer_id, start, carrier",
        )
        .await;
    clickhouse
        .query(
            "CREATE MATERIALIZED VIEW rns.carrier_minutes_feed_v2 TO rns.carrier_minutes AS \
             SELECT customer_id, toStartOfMinute(at) AS start, carrier, \
             sumState(toUInt64(kind IN ('failed_over', 'fell_back'))) AS failed_over FROM rns.events \
             GROUP BY customer_id, start, carrier",
        )
        .await;
    rns_results::schema::ensure(&client, "rns").await.unwrap();
    let statistics_columns = clickhouse
        .query("SELECT name FROM system.columns WHERE database = 'rns' AND table = 'carrier_minutes' AND name IN ('undeliverable', 'unknown', 'expired', 'submit_latency_ms') ORDER BY name FORMAT TabSeparated")
        .await;
    assert_eq!(
        statistics_columns.split_whitespace().collect::<Vec<_>>(),
        ["expired", "submit_latency_ms", "undeliverable", "unknown"]
    );
    let columns = clickhouse
        .query("SELECT concat(table, '.', name) FROM system.columns WHERE database = 'rns' AND table IN ('messages', 'events') AND name IN ('schedule_id', 'points_reserved', 'accepted_at_ms', 'points_spent', 'fallback_text') ORDER BY table, name FORMAT TabSeparated")
        .await;
    assert_eq!(
        columns.split_whitespace().collect::<Vec<_>>(),
        [
            "events.accepted_at_ms",
            "events.points_reserved",
            "events.points_spent",
            "messages.accepted_at_ms",
            "messages.fallback_text",
            "messages.points_reserved",
            "messages.schedule_id"
        ]
    );
    let views = clickhouse
        .query("SELECT name FROM system.tables WHERE database = 'rns' AND name LIKE 'carrier_minutes%' ORDER BY name FORMAT TabSeparated")
        .await;
    assert_eq!(
        views.split_whitespace().collect::<Vec<_>>(),
        ["carrier_minutes", "carrier_minutes_feed_v3"],
        "the earlier views are replaced"
    );
    let kinds = clickhouse
        .query("SELECT type FROM system.columns WHERE database = 'rns' AND table = 'events' AND name = 'kind' FORMAT TabSeparated")
        .await;
    assert!(
        kinds.contains("fell_back") && kinds.contains("= 8"),
        "{kinds}"
    );
    let statuses = clickhouse
        .query("SELECT type FROM system.columns WHERE database = 'rns' AND table = 'events' AND name = 'status' FORMAT TabSeparated")
        .await;
    assert!(statuses.contains("blocked"), "{statuses}");
    assert!(
        statuses.contains("unknown") && statuses.contains("= 6"),
        "{statuses}"
    );
    assert!(
        statuses.contains("undeliverable\\' = 8") && kinds.contains("undeliverable\\' = 11"),
        "{statuses} {kinds}"
    );
}

async fn message_lists_filter_and_page_without_gaps_or_repeats_while_results_arrive(
    release: ClickHouseRelease,
) {
    use rns_results::listing::{ListCursor, MessageFilter};

    let harness = start(release).await;
    let customer = CustomerId::parse("acme").unwrap();
    let delivered = RequestId::generate();
    let failed = RequestId::generate();
    let queued = RequestId::generate();
    for (request, count, kind) in [
        (delivered, 3, Some(EventKind::Delivered)),
        (failed, 2, Some(EventKind::Failed)),
        (queued, 2, None),
    ] {
        publish(
            &harness.jetstream,
            &batch(&customer, request, count, kind),
            &request.to_string(),
        )
        .await;
        wait_for_total(&harness.queries, &customer, request, u64::from(count)).await;
    }
    let list = |filter: MessageFilter, cursor: Option<ListCursor>, limit| {
        let queries = harness.queries.clone();
        let customer = customer.clone();
        async move {
            queries
                .list_messages(&customer, &filter, cursor.as_ref(), limit)
                .await
                .unwrap()
        }
    };

    // Page through 3 at a time; a request arriving after the first page is newer,
    // so it never shows up on the later pages.
    let first = list(MessageFilter::default(), None, 3).await;
    assert_eq!(first.items.len(), 3);
    let late = RequestId::generate();
    publish(&harness.jetstream, &batch(&customer, late, 2, None), "late").await;
    wait_for_total(&harness.queries, &customer, late, 2).await;
    let mut seen: Vec<String> = first.items.iter().map(|item| item.id.clone()).collect();
    let mut cursor = first.next_cursor.clone();
    while let Some(next) = cursor {
        let page = list(MessageFilter::default(), ListCursor::decode(&next), 3).await;
        seen.extend(page.items.iter().map(|item| item.id.clone()));
        cursor = page.next_cursor;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(unique.len(), 7, "no repeats");
    assert!(seen.iter().all(|id| !id.starts_with(&late.to_string())));
    let mut sorted = seen.clone();
    sorted.sort_by(|left, right| right.cmp(left));
    assert_eq!(seen, sorted, "newest first");

    let count = |filter: MessageFilter| {
        let list = &list;
        async move { list(filter, None, 100).await.items.len() }
    };
    let status = |status: &str| MessageFilter {
        status: Some(status.into()),
        ..Default::default()
    };
    assert_eq!(count(status("delivered")).await, 3);
    assert_eq!(count(status("failed")).await, 2);
    assert_eq!(count(status("queued")).await, 4);
    let by_request = MessageFilter {
        request_id: Some(failed.to_string()),
        ..Default::default()
    };
    assert_eq!(count(by_request).await, 2);
    let scheduled = MessageFilter {
        schedule_id: Some("01JSCHEDULE0000000000000000".into()),
        ..Default::default()
    };
    assert_eq!(count(scheduled).await, 4, "message 0 of each request");
    let combined = MessageFilter {
        status: Some("delivered".into()),
        from: Some("0212345678".into()),
        to: Some("01000000001".into()),
        carrier: Some("kt".into()),
        text: Some("123456".into()),
        message_type: Some("sms".into()),
        channel: Some("sms".into()),
        ..Default::default()
    };
    let only = list(combined, None, 100).await;
    assert_eq!(only.items.len(), 1);
    assert_eq!(only.items[0].id, delivered.message_id(1).to_string());
    assert_eq!(only.items[0].carrier.as_deref(), Some("kt"));
    let nothing = MessageFilter {
        text: Some("no such text".into()),
        ..Default::default()
    };
    assert_eq!(count(nothing).await, 0);
    let other_sender = MessageFilter {
        from: Some("0299999999".into()),
        ..Default::default()
    };
    assert_eq!(count(other_sender).await, 0);
    let stranger = CustomerId::parse("stranger").unwrap();
    let theirs = harness
        .queries
        .list_messages(&stranger, &MessageFilter::default(), None, 100)
        .await
        .unwrap();
    assert!(theirs.items.is_empty());
    harness.shutdown.cancel();
}

async fn routing_targets_follow_customer_profiles_into_clickhouse(release: ClickHouseRelease) {
    use rns_types::routing::Weights;
    let harness = start(release).await;
    let directory = rns_nats::CustomerDirectory::open(&harness.jetstream)
        .await
        .unwrap();
    let customer = CustomerId::parse("acme").unwrap();
    directory
        .create(
            &rns_types::CustomerProfile::new(customer.clone(), "Acme".into(), 1),
            "hash",
            &rns_types::api_key::ApiKeyRecord::parse(b"acme").unwrap(),
        )
        .await
        .unwrap();
    let catalog = rns_types::CarrierCatalog::korean_default();
    let weights = Weights::validate(
        &[
            ("kt".to_owned(), 50),
            ("skt".to_owned(), 30),
            ("lgu".to_owned(), 20),
        ]
        .into_iter()
        .collect(),
        Channel::Sms,
        &catalog,
    )
    .unwrap();
    directory
        .update(&customer, |profile| {
            profile.routing.insert(Channel::Sms, weights.clone());
            Ok::<(), ()>(())
        })
        .await
        .unwrap()
        .unwrap();
    let query = "SELECT carrier, argMax(share, revision) AS share FROM rns.routing_targets \
                 WHERE customer_id = 'acme' AND channel = 'sms' GROUP BY carrier ORDER BY carrier FORMAT TabSeparated";
    // First the equal split of the new profile, then the weights: the latest wins.
    let expected = "kt\t0.5\nlgu\t0.2\nskt\t0.3\n";
    let mut shares = String::new();
    for _ in 0..100 {
        shares = harness.clickhouse.query(query).await;
        if shares == expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shares, expected);
    harness.shutdown.cancel();
}

/// The analytics process inserted a batch and ended before acknowledging it: the
/// redelivered messages must not be counted again by the statistics views (which
/// count rows as inserted), and must be acknowledged.
async fn a_batch_redelivered_after_its_insert_is_counted_once(release: ClickHouseRelease) {
    let nats = NatsServer::start().await;
    let clickhouse = ClickHouseServer::start_release(release).await;
    let settings = ClickHouseSettings {
        url: clickhouse.url(),
        ..Default::default()
    };
    let client = rns_analytics::prepare(&settings).await.unwrap();
    let jetstream = async_nats::jetstream::new(nats.client().await);
    let stream = jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: "RESULTS_TEST".to_owned(),
            subjects: vec!["result.>".to_owned()],
            ..Default::default()
        })
        .await
        .unwrap();
    let mut consumer: async_nats::jetstream::consumer::PullConsumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("analytics".to_owned()),
            ack_wait: Duration::from_secs(1),
            ..Default::default()
        })
        .await
        .unwrap();
    let customer = CustomerId::parse("acme").unwrap();
    let request = RequestId::generate();
    // Three messages: the second and third are redelivered after being inserted. The
    // second holds 1,200 requests' outcomes: more than one look-up asks about, so the
    // third is asked about in a look-up of its own.
    let routed = batch(&customer, request, 3, None);
    publish(&jetstream, &routed, "routed").await;
    let mut many = batch(
        &customer,
        RequestId::generate(),
        1,
        Some(EventKind::Delivered),
    );
    for _ in 1..1_200 {
        let more = batch(
            &customer,
            RequestId::generate(),
            1,
            Some(EventKind::Delivered),
        );
        many.messages.extend(more.messages);
        many.events.extend(more.events);
    }
    publish(&jetstream, &many, "many").await;
    let delivered = batch(&customer, request, 3, Some(EventKind::Delivered));
    publish(&jetstream, &delivered, "delivered").await;
    let fetch = |consumer: &async_nats::jetstream::consumer::PullConsumer, count: usize| {
        let consumer = consumer.clone();
        async move {
            let mut messages = consumer
                .fetch()
                .max_messages(count)
                .expires(Duration::from_secs(3))
                .messages()
                .await
                .unwrap();
            let mut fetched = Vec::new();
            while let Some(message) = messages.next().await {
                fetched.push(message.unwrap());
            }
            fetched
        }
    };
    let first = fetch(&consumer, 3).await;
    assert_eq!(first.len(), 3);
    rns_analytics::ingest::flush(&client, &first[..1])
        .await
        .unwrap();
    // The others are inserted, and the process ends before acknowledging them.
    let to_acknowledge = rns_analytics::ingest::insert(&client, &first[1..])
        .await
        .unwrap();
    assert_eq!(to_acknowledge.len(), 2);
    drop(first);
    // After the ack wait, JetStream delivers them again, to the next process.
    let again = fetch(&consumer, 2).await;
    assert_eq!(again.len(), 2);
    for message in &again {
        assert_eq!(
            message.info().unwrap().delivered,
            2,
            "the fault was felt: a redelivery"
        );
    }
    rns_analytics::ingest::flush(&client, &again).await.unwrap();

    // The second message's events (three submitted, three delivered) and the third's.
    let statistics: (u64, u64) = client
        .query(
            "SELECT sumMerge(submitted), sumMerge(delivered) FROM carrier_minutes \
             WHERE customer_id = ?",
        )
        .bind(customer.as_str())
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(statistics, (1_203, 1_203), "each event counted once");
    let info = consumer.info().await.unwrap();
    assert_eq!(
        (info.num_pending, info.num_ack_pending),
        (0, 0),
        "the redelivered message was acknowledged"
    );
}

/// A ClickHouse that stops answering in the middle of an insert (frozen: its
/// connections open, nothing answered) must not hold ingestion: the insert times out,
/// the batch is redelivered, and once ClickHouse answers again every event is there,
/// counted once.
async fn a_clickhouse_that_stops_answering_delays_results_but_loses_and_doubles_none(
    release: ClickHouseRelease,
) {
    let harness = start(release).await;
    let customer = CustomerId::parse("acme").unwrap();
    let request = RequestId::generate();
    harness.clickhouse.freeze();
    publish(
        &harness.jetstream,
        &batch(&customer, request, 3, Some(EventKind::Delivered)),
        "while-frozen",
    )
    .await;
    let consumer: async_nats::jetstream::consumer::PullConsumer = harness
        .jetstream
        .get_stream(rns_types::subjects::RESULTS_STREAM)
        .await
        .unwrap()
        .get_consumer(rns_types::subjects::ANALYTICS_CONSUMER)
        .await
        .unwrap();
    // The fault was felt: the hung insert timed out and the batch was delivered again.
    rns_testkit::wait_until(
        "the batch redelivered after its insert timed out",
        Duration::from_secs(20),
        || {
            let mut consumer = consumer.clone();
            async move {
                consumer
                    .info()
                    .await
                    .is_ok_and(|info| info.num_redelivered >= 1)
            }
        },
    )
    .await;
    harness.clickhouse.thaw();
    let summary = wait_for_total(&harness.queries, &customer, request, 3).await;
    assert_eq!(summary.total, 3);
    let client = rns_analytics::clickhouse_client(&ClickHouseSettings {
        url: harness.clickhouse.url(),
        ..Default::default()
    });
    rns_testkit::wait_until(
        "the delivered events counted",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                client
                    .query("SELECT sumMerge(delivered) FROM carrier_minutes WHERE customer_id = 'acme'")
                    .fetch_one::<u64>()
                    .await
                    .is_ok_and(|delivered| delivered == 3)
            }
        },
    )
    .await;
    let delivered: u64 = client
        .query("SELECT sumMerge(delivered) FROM carrier_minutes WHERE customer_id = 'acme'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(delivered, 3, "counted once");
    harness.shutdown.cancel();
}

on_every_clickhouse_release!(
    results_become_queryable_and_duplicates_change_nothing,
    another_customer_sees_nothing,
    a_clickhouse_outage_delays_results_but_loses_none,
    tables_of_an_earlier_version_gain_the_new_columns_and_enum_values,
    message_lists_filter_and_page_without_gaps_or_repeats_while_results_arrive,
    routing_targets_follow_customer_profiles_into_clickhouse,
    a_batch_redelivered_after_its_insert_is_counted_once,
    a_clickhouse_that_stops_answering_delays_results_but_loses_and_doubles_none,
);
