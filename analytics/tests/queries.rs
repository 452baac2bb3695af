//! Result queries against a real ClickHouse with rows written as ingestion writes
//! them: request lists with totals and points, statistics from the minute table,
//! pages that reach back across days, a message's timeline, the carrier split, and
//! retention by partition — each on Debian's 18.16 and on a current release.
use std::collections::HashSet;

use rns_analytics::rows::{EventRow, MessageRow};
use rns_results::stats::Bucket;
use rns_results::ResultQueries;
use rns_service::ClickHouseSettings;
use rns_testkit::{on_every_clickhouse_release, ClickHouseRelease, ClickHouseServer};
use rns_types::wire::{EventKind, MessageEvent, MessageRecord, Points};
use rns_types::{CarrierId, Channel, CustomerId, MessageType, PhoneNumber, RequestId};

const HOUR_MS: u64 = 60 * 60 * 1_000;
const DAY_MS: u64 = 24 * HOUR_MS;

struct Store {
    clickhouse: ClickHouseServer,
    client: clickhouse::Client,
    queries: ResultQueries,
}

async fn store(release: ClickHouseRelease) -> Store {
    let clickhouse = ClickHouseServer::start_release(release).await;
    let client = rns_analytics::prepare(&ClickHouseSettings {
        url: clickhouse.url(),
        ..Default::default()
    })
    .await
    .unwrap();
    Store {
        clickhouse,
        queries: ResultQueries::new(client.clone()),
        client,
    }
}

/// What happens to one message of a request.
#[derive(Clone, Copy)]
struct Fate {
    carrier: &'static str,
    outcome: Option<EventKind>,
    /// Accept to final state.
    latency_ms: u64,
}

/// Writes a request of `fates.len()` messages made at `at_ms`, 2 points each, and
/// every message's events, as analytics would.
async fn write_request(store: &Store, customer: &str, at_ms: u64, fates: &[Fate]) -> RequestId {
    let customer = CustomerId::parse(customer).unwrap();
    let request = RequestId::from_parts(at_ms, u128::from(rand_suffix()));
    let mut messages = store.client.insert::<MessageRow>("messages").await.unwrap();
    let mut events = Vec::new();
    for (index, fate) in fates.iter().enumerate() {
        let message_id = request.message_id(index as u32);
        let record = MessageRecord {
            message_id,
            accepted_at_ms: at_ms,
            channel: Channel::Sms,
            message_type: MessageType::Lms,
            from: PhoneNumber::parse("0212345678").unwrap(),
            to: PhoneNumber::parse(&format!("010{:08}", index)).unwrap(),
            subject: None,
            text: format!("message {index}"),
            points_reserved: 2,
            schedule_id: None,
            fallback: None,
        };
        messages
            .write(&MessageRow::new(&customer, &record))
            .await
            .unwrap();
        let event = |kind, offset_ms, points| {
            EventRow::new(
                &customer,
                &MessageEvent {
                    message_id,
                    at_ms: at_ms + offset_ms,
                    accepted_at_ms: at_ms,
                    kind,
                    carrier: Some(CarrierId::parse(fate.carrier).unwrap()),
                    hop: 1,
                    attempt: u16::from(kind != EventKind::Routed),
                    detail: String::new(),
                    points,
                    trace: None,
                },
                0,
            )
        };
        events.push(event(EventKind::Routed, 1, Points::default()));
        if let Some(outcome) = fate.outcome {
            let spent = if outcome == EventKind::Delivered {
                2
            } else {
                0
            };
            events.push(event(
                EventKind::Submitted,
                fate.latency_ms / 2,
                Points::default(),
            ));
            events.push(event(
                outcome,
                fate.latency_ms,
                Points { reserved: 2, spent },
            ));
        }
    }
    messages.end().await.unwrap();
    let mut insert = store.client.insert::<EventRow>("events").await.unwrap();
    for row in &events {
        insert.write(row).await.unwrap();
    }
    insert.end().await.unwrap();
    request
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const DELIVERED: Fate = Fate {
    carrier: "kt",
    outcome: Some(EventKind::Delivered),
    latency_ms: 800,
};
const FAILED: Fate = Fate {
    carrier: "skt",
    outcome: Some(EventKind::Failed),
    latency_ms: 3_000,
};
const QUEUED: Fate = Fate {
    carrier: "lgu",
    outcome: None,
    latency_ms: 0,
};

async fn requests_list_newest_first_across_days_with_totals_and_points(release: ClickHouseRelease) {
    let store = store(release).await;
    let now = rns_types::time::now_milliseconds();
    let oldest = write_request(&store, "acme", now - 3 * DAY_MS, &[DELIVERED, FAILED]).await;
    let older = write_request(&store, "acme", now - 2 * HOUR_MS, &[QUEUED]).await;
    let newest = write_request(
        &store,
        "acme",
        now - 60_000,
        &[DELIVERED, DELIVERED, FAILED, QUEUED],
    )
    .await;
    write_request(&store, "stranger", now - 30_000, &[DELIVERED]).await;
    let acme = CustomerId::parse("acme").unwrap();

    let mut seen = Vec::new();
    let mut cursor: Option<RequestId> = None;
    loop {
        let page = store
            .queries
            .list_requests(&acme, None, None, cursor.as_ref(), 1)
            .await
            .unwrap();
        assert!(page.items.len() <= 1);
        seen.extend(page.items.iter().cloned());
        match page.next_cursor {
            Some(next) => cursor = Some(RequestId::parse(&next).unwrap()),
            None => break,
        }
    }
    let ids: Vec<String> = seen.iter().map(|view| view.id.clone()).collect();
    assert_eq!(
        ids,
        [newest, older, oldest].map(|id| id.to_string()),
        "newest first, every request once, the stranger's never"
    );
    let first = &seen[0];
    assert_eq!(first.total, 4);
    assert_eq!(first.by_status.get("delivered"), Some(&2));
    assert_eq!(first.by_status.get("failed"), Some(&1));
    assert_eq!(first.by_status.get("queued"), Some(&1));
    assert_eq!(first.by_carrier.get("kt"), Some(&2));
    assert_eq!(first.points.reserved, 8);
    assert_eq!(first.points.spent, 4);
    assert_eq!(first.points.refunded, 2, "the failed message's 2 points");

    let since = store
        .queries
        .list_requests(
            &acme,
            Some(now - 3 * HOUR_MS),
            Some(now - HOUR_MS),
            None,
            50,
        )
        .await
        .unwrap();
    let ids: Vec<String> = since.items.iter().map(|view| view.id.clone()).collect();
    assert_eq!(ids, [older.to_string()]);

    let one = store
        .queries
        .request_summary(&acme, &oldest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (one.total, one.points.spent, one.points.refunded),
        (2, 2, 2)
    );
    let stranger = CustomerId::parse("stranger").unwrap();
    assert!(store
        .queries
        .request_summary(&stranger, &oldest)
        .await
        .unwrap()
        .is_none());
}

async fn message_pages_reach_back_across_days_without_gaps_or_repeats(release: ClickHouseRelease) {
    use rns_results::listing::{ListCursor, MessageFilter};
    let store = store(release).await;
    let now = rns_types::time::now_milliseconds();
    let mut expected = Vec::new();
    for age in [40 * DAY_MS, 9 * DAY_MS, 30 * HOUR_MS, 5 * HOUR_MS, 1_000] {
        let request = write_request(&store, "acme", now - age, &[DELIVERED, QUEUED]).await;
        expected.push(request.message_id(0).to_string());
        expected.push(request.message_id(1).to_string());
    }
    expected.reverse();
    let acme = CustomerId::parse("acme").unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<ListCursor> = None;
    loop {
        let page = store
            .queries
            .list_messages(&acme, &MessageFilter::default(), cursor.as_ref(), 3)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|item| item.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = ListCursor::decode(&next),
            None => break,
        }
    }
    assert_eq!(seen, expected);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 10);
    let queued_last_week = MessageFilter {
        status: Some("queued".into()),
        since_ms: Some(now - 10 * DAY_MS),
        until_ms: Some(now - DAY_MS),
        ..Default::default()
    };
    let page = store
        .queries
        .list_messages(&acme, &queued_last_week, None, 50)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2, "{:?}", page.items);
    assert!(page.items.iter().all(|item| item.status == "queued"));
}

async fn statistics_count_per_carrier_and_bucket_with_latency_percentiles(
    release: ClickHouseRelease,
) {
    let store = store(release).await;
    let now = rns_types::time::now_milliseconds();
    let hour_start = now - now % HOUR_MS;
    let earlier = hour_start - 2 * HOUR_MS + 60_000;
    write_request(&store, "acme", earlier, &[DELIVERED; 9]).await;
    let mut slow = DELIVERED;
    slow.latency_ms = 10_000;
    write_request(&store, "acme", earlier, &[slow]).await;
    write_request(
        &store,
        "acme",
        hour_start + 1_000,
        &[FAILED, FAILED, QUEUED],
    )
    .await;
    write_request(&store, "stranger", hour_start + 1_000, &[DELIVERED; 5]).await;
    let acme = CustomerId::parse("acme").unwrap();
    let since = ((hour_start - 3 * HOUR_MS) / 1_000) as u32;
    let until = ((hour_start + HOUR_MS) / 1_000) as u32;
    let statistics = store
        .queries
        .statistics(&acme, since, until, Bucket::Hour, "Asia/Seoul")
        .await
        .unwrap();
    let total = |carrier: &str| {
        statistics
            .totals
            .iter()
            .find(|numbers| numbers.carrier == carrier)
            .unwrap_or_else(|| panic!("no {carrier} in {statistics:?}"))
            .clone()
    };
    let kt = total("kt");
    assert_eq!(
        (kt.first_choice, kt.submitted, kt.delivered, kt.failed),
        (10, 10, 10, 0)
    );
    assert_eq!(kt.points_spent, 20);
    assert_eq!(kt.success_rate, Some(1.0));
    let latency = kt.latency_ms.unwrap();
    assert!((700.0..=900.0).contains(&latency.p50), "{latency:?}");
    assert!(
        latency.p99 > 5_000.0,
        "the slow one shows in p99: {latency:?}"
    );
    let skt = total("skt");
    assert_eq!(
        (skt.delivered, skt.failed, skt.success_rate),
        (0, 2, Some(0.0))
    );
    let lgu = total("lgu");
    assert_eq!(
        (lgu.first_choice, lgu.success_rate, lgu.latency_ms),
        (1, None, None)
    );

    let starts: Vec<u64> = statistics
        .buckets
        .iter()
        .map(|bucket| bucket.start_seconds * 1_000)
        .collect();
    assert_eq!(starts, vec![hour_start - 2 * HOUR_MS, hour_start]);
    assert_eq!(statistics.buckets[0].carriers.len(), 1);
    assert_eq!(statistics.buckets[1].carriers.len(), 2);

    let days = store
        .queries
        .statistics(&acme, since, until, Bucket::Day, "Asia/Seoul")
        .await
        .unwrap();
    for bucket in &days.buckets {
        // Midnight in Seoul is 15:00 UTC.
        assert_eq!(bucket.start_seconds % 86_400, 15 * 3_600, "{days:?}");
    }
    let stranger = CustomerId::parse("nobody").unwrap();
    let none = store
        .queries
        .statistics(&stranger, since, until, Bucket::Minute, "UTC")
        .await
        .unwrap();
    assert!(none.totals.is_empty() && none.buckets.is_empty());
}

async fn retention_drops_whole_days_older_than_kept_from_every_table(release: ClickHouseRelease) {
    let store = store(release).await;
    let now = rns_types::time::now_milliseconds();
    let old = write_request(&store, "acme", now - 40 * DAY_MS, &[DELIVERED]).await;
    let recent = write_request(&store, "acme", now - DAY_MS, &[DELIVERED]).await;
    let dropped = rns_analytics::retention::drop_expired(&store.client, "rns", 30)
        .await
        .unwrap();
    let tables: HashSet<&str> = dropped.iter().map(|day| day.table.as_str()).collect();
    assert_eq!(
        tables,
        HashSet::from(["messages", "events", "carrier_minutes", "carrier_hours"]),
        "{dropped:?}"
    );
    let acme = CustomerId::parse("acme").unwrap();
    assert!(store
        .queries
        .request_summary(&acme, &old)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .queries
        .request_summary(&acme, &recent)
        .await
        .unwrap()
        .is_some());
    for table in ["carrier_minutes", "carrier_hours"] {
        let old_rows = store
            .clickhouse
            .query(&format!(
                "SELECT count() FROM rns.{table} WHERE start < toDateTime({}) FORMAT TabSeparated",
                (now - 30 * DAY_MS) / 1_000
            ))
            .await;
        assert_eq!(old_rows.trim(), "0", "{table}");
    }
    let again = rns_analytics::retention::drop_expired(&store.client, "rns", 30)
        .await
        .unwrap();
    assert!(again.is_empty(), "nothing left to drop: {again:?}");
}

async fn a_message_timeline_and_the_carrier_split_read_back(release: ClickHouseRelease) {
    let store = store(release).await;
    let now = rns_types::time::now_milliseconds();
    let request = write_request(&store, "acme", now - 60_000, &[DELIVERED, FAILED, QUEUED]).await;
    write_request(&store, "stranger", now - 60_000, &[DELIVERED]).await;
    let acme = CustomerId::parse("acme").unwrap();

    let delivered = store
        .queries
        .message(&acme, &request.message_id(0))
        .await
        .unwrap()
        .expect("the delivered message");
    assert_eq!(delivered.status, "delivered");
    assert_eq!(delivered.carrier.as_deref(), Some("kt"));
    let kinds: Vec<&str> = delivered
        .events
        .iter()
        .map(|event| event.kind.as_str())
        .collect();
    assert_eq!(kinds, ["routed", "submitted", "delivered"]);
    assert_eq!(delivered.sent.message_type, "lms");
    let queued = store
        .queries
        .message(&acme, &request.message_id(2))
        .await
        .unwrap()
        .expect("the queued message");
    assert_eq!(queued.status, "queued");
    let stranger = CustomerId::parse("stranger").unwrap();
    assert!(store
        .queries
        .message(&stranger, &request.message_id(0))
        .await
        .unwrap()
        .is_none());

    let since = ((now - HOUR_MS) / 1_000) as u32;
    let until = (now / 1_000) as u32 + 60;
    let split = store
        .queries
        .carrier_split(&acme, since, until)
        .await
        .unwrap();
    let numbers: Vec<(&str, u64, u64)> = split
        .iter()
        .map(|carrier| {
            (
                carrier.carrier.as_str(),
                carrier.first_choice,
                carrier.delivered,
            )
        })
        .collect();
    assert_eq!(numbers, [("kt", 1, 1), ("lgu", 1, 0), ("skt", 1, 0)]);

    // A batch inserted twice (its acknowledgement lost) changes nothing.
    store
        .client
        .query("INSERT INTO events SELECT * FROM events WHERE customer_id = 'acme'")
        .execute()
        .await
        .unwrap();
    let again = store
        .queries
        .carrier_split(&acme, since, until)
        .await
        .unwrap();
    assert_eq!(again, split, "duplicate events count once");
}

on_every_clickhouse_release!(
    a_message_timeline_and_the_carrier_split_read_back,
    requests_list_newest_first_across_days_with_totals_and_points,
    message_pages_reach_back_across_days_without_gaps_or_repeats,
    statistics_count_per_carrier_and_bucket_with_latency_percentiles,
    retention_drops_whole_days_older_than_kept_from_every_table,
);
