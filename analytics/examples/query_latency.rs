//! The result-query latency benchmark: loads ten million messages (and their thirty
//! million events) into a fresh ClickHouse, then times every customer-facing query
//! through [`ResultQueries`], the code the gateway runs.
//!
//! ```text
//! cargo run --release -p rns-analytics --example query_latency -- [messages] [runs]
//! ```
//!
//! Data: one customer with 80% of the messages and 20 smaller ones with the rest,
//! spread evenly over 30 days, 10 messages per request, carriers kt/skt/lgu by
//! 50/30/20, 2% failed, latency 0.2–3.2 s. The rows are generated inside ClickHouse
//! (`INSERT … SELECT … FROM system.numbers`) with real ULID request ids, through the
//! same schema and materialized view as production. Each query runs `runs` times
//! (default 40) with its parameters varied; the table gives p50, p95 and max in ms.
use std::time::{Duration, Instant};

use rns_results::listing::{ListCursor, MessageFilter};
use rns_results::stats::Bucket;
use rns_results::ResultQueries;
use rns_service::ClickHouseSettings;
use rns_testkit::ClickHouseServer;
use rns_types::{CustomerId, MessageId, RequestId};

const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
const DAYS: u64 = 30;
const PER_REQUEST: u64 = 10;
/// A query's filter for its `index`-th run.
type FilterFor<'a> = Box<dyn Fn(usize) -> MessageFilter + 'a>;
const CROCKFORD: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// SQL for the Crockford base32 text of `value` in `digits` characters.
fn base32(value: &str, digits: u32) -> String {
    let characters: Vec<String> = (0..digits)
        .map(|position| {
            let shift = 5 * (digits - 1 - position);
            format!("substring('{CROCKFORD}', toUInt64(bitAnd(bitShiftRight(toUInt64({value}), {shift}), 31)) + 1, 1)")
        })
        .collect();
    format!("concat({})", characters.join(", "))
}

#[tokio::main]
async fn main() {
    let mut arguments = std::env::args().skip(1);
    let messages: u64 = arguments.next().map_or(10_000_000, |text| {
        text.parse().expect("messages is a number")
    });
    let runs: usize = arguments
        .next()
        .map_or(40, |text| text.parse().expect("runs is a number"));
    let clickhouse = ClickHouseServer::start().await;
    let settings = ClickHouseSettings {
        url: clickhouse.url(),
        ..Default::default()
    };
    let client = rns_analytics::prepare(&settings).await.unwrap();
    let now_ms = rns_types::time::now_milliseconds();
    let start_ms = now_ms - DAYS * DAY_MS;
    let spacing_ms = (DAYS * DAY_MS) / (messages / PER_REQUEST).max(1);
    let started = Instant::now();
    load(&clickhouse, messages, start_ms, spacing_ms).await;
    eprintln!(
        "loaded {messages} messages and {} events in {:.0} s",
        messages * 3,
        started.elapsed().as_secs_f64()
    );
    // Merged as a day-old table would be; inserts keep being merged in the background.
    for table in ["carrier_minutes", "carrier_hours"] {
        clickhouse
            .query(&format!("OPTIMIZE TABLE rns.{table} FINAL"))
            .await;
    }

    let queries = ResultQueries::new(
        // Logged in system.query_log, for reading what a slow query read.
        client.with_setting("log_queries", "1"),
    );
    let big = CustomerId::parse("big").unwrap();
    // A request of the big customer at position `index` of `runs`, spread over the range.
    let request_at = |index: usize| {
        let requests = messages / PER_REQUEST;
        let mut number = (requests - 1) * (index as u64 + 1) / (runs as u64 + 1);
        // Every fifth request belongs to a small customer.
        if number.is_multiple_of(5) {
            number += 1;
        }
        request_id(number, start_ms, spacing_ms)
    };
    // A message number of the last day, varied by `index`.
    let recent = |index: usize| messages - 1 - index as u64 * 97;
    let mut rows = Vec::new();
    let mut measure = |name: &str, durations: Vec<Duration>| {
        let mut milliseconds: Vec<f64> = durations
            .iter()
            .map(|duration| duration.as_secs_f64() * 1_000.0)
            .collect();
        milliseconds.sort_by(f64::total_cmp);
        let at = |fraction: f64| {
            milliseconds[((milliseconds.len() as f64 * fraction).ceil() as usize).saturating_sub(1)]
        };
        let row = format!(
            "| {name} | {:.0} | {:.0} | {:.0} |",
            at(0.5),
            at(0.95),
            milliseconds.last().unwrap()
        );
        eprintln!("{row}");
        rows.push(row);
    };

    // Messages: the newest page, then pages deep in the history by cursor.
    let mut durations = Vec::new();
    for _ in 0..runs {
        let began = Instant::now();
        let page = queries
            .list_messages(&big, &MessageFilter::default(), None, 50)
            .await
            .unwrap();
        durations.push(began.elapsed());
        assert_eq!(page.items.len(), 50);
    }
    measure("messages, newest page of 50", durations);
    let mut durations = Vec::new();
    for index in 0..runs {
        let cursor = ListCursor(request_at(index).message_id(0));
        let began = Instant::now();
        let page = queries
            .list_messages(&big, &MessageFilter::default(), Some(&cursor), 50)
            .await
            .unwrap();
        durations.push(began.elapsed());
        assert_eq!(page.items.len(), 50);
    }
    measure("messages, a page anywhere in 30 days (cursor)", durations);
    let filters: Vec<(&str, FilterFor)> = vec![
        (
            "messages, status=failed (2%)",
            Box::new(|_| MessageFilter {
                status: Some("failed".into()),
                ..Default::default()
            }),
        ),
        (
            "messages, carrier=lgu and status=delivered",
            Box::new(|_| MessageFilter {
                carrier: Some("lgu".into()),
                status: Some("delivered".into()),
                ..Default::default()
            }),
        ),
        (
            "messages, request_id",
            Box::new(|index| MessageFilter {
                request_id: Some(request_at(index).to_string()),
                ..Default::default()
            }),
        ),
        (
            "messages, to_number in the last day",
            Box::new(|index| MessageFilter {
                to: Some(format!("010{}", 10_000_000 + recent(index) % 89_999_999)),
                since_ms: Some(now_ms - DAY_MS),
                ..Default::default()
            }),
        ),
        (
            "messages, text substring in the last day",
            Box::new(|index| MessageFilter {
                text: Some(format!("번호 {} ", recent(index) % 999_999)),
                since_ms: Some(now_ms - DAY_MS),
                ..Default::default()
            }),
        ),
        (
            "messages, text substring over all 30 days",
            Box::new(|index| MessageFilter {
                text: Some(format!("번호 {} ", recent(index) % 999_999)),
                ..Default::default()
            }),
        ),
        (
            "messages, one day's range (since/until)",
            Box::new(|index| {
                let day = now_ms - (index as u64 % DAYS + 1) * DAY_MS;
                MessageFilter {
                    since_ms: Some(day),
                    until_ms: Some(day + DAY_MS),
                    ..Default::default()
                }
            }),
        ),
    ];
    for (name, filter) in &filters {
        let mut durations = Vec::new();
        for index in 0..runs {
            let filter = filter(index);
            let began = Instant::now();
            queries
                .list_messages(&big, &filter, None, 50)
                .await
                .unwrap();
            durations.push(began.elapsed());
        }
        measure(name, durations);
    }
    let mut durations = Vec::new();
    for index in 0..runs {
        let message: MessageId = request_at(index).message_id(3);
        let began = Instant::now();
        let found = queries.message(&big, &message).await.unwrap();
        durations.push(began.elapsed());
        assert!(found.is_some_and(|message| message.events.len() == 3));
    }
    measure("message timeline by id", durations);

    // Requests.
    let mut durations = Vec::new();
    for _ in 0..runs {
        let began = Instant::now();
        let page = queries
            .list_requests(&big, None, None, None, 50)
            .await
            .unwrap();
        durations.push(began.elapsed());
        assert_eq!(page.items.len(), 50);
    }
    measure("requests, newest page of 50 with totals", durations);
    let mut durations = Vec::new();
    for index in 0..runs {
        let cursor = request_at(index);
        let began = Instant::now();
        queries
            .list_requests(&big, None, None, Some(&cursor), 50)
            .await
            .unwrap();
        durations.push(began.elapsed());
    }
    measure("requests, a page anywhere in 30 days (cursor)", durations);

    // One request's summary, as the console's results page shows it.
    let mut durations = Vec::new();
    for index in 0..runs {
        let request = request_at(index);
        let began = Instant::now();
        let summary = queries.request_summary(&big, &request).await.unwrap();
        durations.push(began.elapsed());
        assert_eq!(summary.expect("the request is found").total, PER_REQUEST);
    }
    measure("request summary by id", durations);

    // Statistics.
    let seconds = |milliseconds: u64| (milliseconds / 1_000) as u32;
    // The routing report (what routing and failover did per carrier) over a day.
    let mut durations = Vec::new();
    for _ in 0..runs {
        let began = Instant::now();
        let splits = queries
            .carrier_split(&big, seconds(now_ms - DAY_MS), seconds(now_ms))
            .await
            .unwrap();
        durations.push(began.elapsed());
        assert_eq!(splits.len(), 3);
    }
    measure("routing report, last 24 h", durations);
    for (name, span, bucket) in [
        ("stats, last 24 h by hour", DAY_MS, Bucket::Hour),
        ("stats, last 24 h by minute", DAY_MS, Bucket::Minute),
        ("stats, 30 days by day", DAYS * DAY_MS, Bucket::Day),
    ] {
        let mut durations = Vec::new();
        for _ in 0..runs {
            let began = Instant::now();
            let statistics = queries
                .statistics(
                    &big,
                    seconds(now_ms - span),
                    seconds(now_ms),
                    bucket,
                    "Asia/Seoul",
                )
                .await
                .unwrap();
            durations.push(began.elapsed());
            assert_eq!(statistics.totals.len(), 3);
        }
        measure(name, durations);
    }
    println!(
        "{messages} messages, {} events; {runs} runs per query; ms",
        messages * 3
    );
    println!("| query | p50 | p95 | max |");
    println!("|---|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}

/// The request id of request `number`: a ULID made at its time whose 80 random
/// bits are the number, exactly what [`request_id_sql`] writes.
fn request_id(number: u64, start_ms: u64, spacing_ms: u64) -> RequestId {
    RequestId::from_parts(start_ms + number * spacing_ms, u128::from(number))
}

/// SQL for the request id of request `number` (a ULID made at its time).
fn request_id_sql(number: &str, start_ms: u64, spacing_ms: u64) -> String {
    let time = format!("({start_ms} + {number} * {spacing_ms})");
    format!(
        "concat({}, '000', {})",
        base32(&time, 10),
        base32(number, 13)
    )
}

async fn load(clickhouse: &ClickHouseServer, messages: u64, start_ms: u64, spacing_ms: u64) {
    let request_number = format!("intDiv(number, {PER_REQUEST})");
    let request_id = request_id_sql(&request_number, start_ms, spacing_ms);
    let accepted_ms = format!("({start_ms} + {request_number} * {spacing_ms})");
    // Loaded in slices so each insert stays well within ClickHouse's memory limit.
    let slice = 2_000_000;
    let mut offset = 0;
    while offset < messages {
        let count = slice.min(messages - offset);
        clickhouse
            .query(&format!(
                "INSERT INTO rns.messages (customer_id, request_id, message_id, accepted_at, accepted_at_ms,
                     channel, message_type, from_number, to_number, subject, text, schedule_id, points_reserved)
                 SELECT if({request_number} % 5 = 0, concat('small', toString({request_number} % 20)), 'big'),
                        {request_id} AS request, concat(request, '-', toString(number % {PER_REQUEST})),
                        toDateTime(intDiv({accepted_ms}, 1000)), {accepted_ms}, 'sms', 'sms', '0212345678',
                        concat('010', toString(10000000 + number % 89999999)), '',
                        concat('인증번호 ', toString(number % 999999), ' 입니다'), '', 1
                 FROM (SELECT number FROM system.numbers LIMIT {offset}, {count})"
            ))
            .await;
        clickhouse
            .query(&format!(
                "INSERT INTO rns.events (customer_id, request_id, message_id, at, at_ms, ordinal, kind, status,
                     carrier, hop, attempt, detail, accepted_at_ms, points_reserved, points_spent)
                 SELECT customer, request, message, toDateTime(intDiv(at_ms, 1000)),
                        accepted + step * intDiv(latency, 2) AS at_ms,
                        if(step = 2, 4294967295, 1000000 + step * 11),
                        arrayElement(['routed', 'submitted', outcome], step + 1) AS kind,
                        arrayElement(['queued', 'submitted', outcome], step + 1),
                        carrier, 1, toUInt16(step > 0), '', accepted, if(step = 2, 1, 0),
                        if(step = 2 AND outcome = 'delivered', 1, 0)
                 FROM (
                     SELECT if({request_number} % 5 = 0, concat('small', toString({request_number} % 20)), 'big') AS customer,
                            {request_id} AS request, concat(request, '-', toString(number % {PER_REQUEST})) AS message,
                            {accepted_ms} AS accepted,
                            arrayElement(['kt', 'kt', 'kt', 'kt', 'kt', 'skt', 'skt', 'skt', 'lgu', 'lgu'], number % 10 + 1) AS carrier,
                            if(cityHash64(number, 1) % 50 = 7, 'failed', 'delivered') AS outcome,
                            200 + cityHash64(number) % 3000 AS latency
                     FROM (SELECT number FROM system.numbers LIMIT {offset}, {count})
                 )
                 ARRAY JOIN [0, 1, 2] AS step"
            ))
            .await;
        offset += count;
        eprintln!("loaded {offset} of {messages}");
    }
}
