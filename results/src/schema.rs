//! The ClickHouse schema, created idempotently at start.
//!
//! Written for ClickHouse 18.16 (Debian's) and current releases alike: `DateTime`
//! plus a millisecond column instead of `DateTime64`, `Enum8` instead of
//! `LowCardinality`, no TTL (old days are dropped by partition), no skip indexes.
//!
//! - `messages`: one row per message, written when it is routed.
//! - `events`: the timeline, one row per event. A message's status is the status of
//!   its event with the highest `ordinal` (see `MessageEvent::ordinal`), so duplicate
//!   rows from a redelivered batch never change an answer.
//!
//! - `carrier_minutes` and `carrier_hours`: per customer, minute (or hour) and
//!   carrier, the counts and latency digests statistics and dashboards read, kept by
//!   the materialized views `<table>_feed_v2` as events arrive, so no statistic scans
//!   the events. Hour and day buckets read the hour table: a month is 720 rows per
//!   carrier instead of 43,200.
//!
//! The first two are `ReplacingMergeTree`s ordered by customer first: every query
//! names the customer, and a re-inserted batch collapses on merge. The statistics
//! tables count rows as inserted, so an event must be inserted once: each carries
//! `results_sequence`, the RESULTS message it came from, and ingestion skips a
//! redelivered message whose events are already there (inserted before its
//! acknowledgement was lost; `rns_analytics::ingest`).
//!
//! - `routing_targets`: every customer's target share per channel and carrier, the
//!   latest by `revision` (the profile's revision in its bucket), mirrored from the
//!   customer profiles by the analytics service (`rns_analytics::targets`).
//!
//! Every table but `routing_targets` is partitioned by day, so retention drops
//! whole days.
use crate::error::ResultsError;

pub const MESSAGES_TABLE: &str = "messages";
pub const EVENTS_TABLE: &str = "events";
pub const CARRIER_MINUTES_TABLE: &str = "carrier_minutes";
pub const CARRIER_HOURS_TABLE: &str = "carrier_hours";
pub const ROUTING_TARGETS_TABLE: &str = "routing_targets";
/// The statistics tables and how each truncates an event's time to its row's `start`.
pub const STATISTICS_TABLES: [(&str, &str); 2] = [
    (CARRIER_MINUTES_TABLE, "toStartOfMinute"),
    (CARRIER_HOURS_TABLE, "toStartOfHour"),
];
/// The tables retention trims, each with its day partitions.
pub const DAILY_TABLES: [&str; 4] = [
    MESSAGES_TABLE,
    EVENTS_TABLE,
    CARRIER_MINUTES_TABLE,
    CARRIER_HOURS_TABLE,
];
/// The latency digest kept per minute (`…State`/`…Merge` go before the levels).
pub const LATENCY_FUNCTION: &str = "quantilesTDigestIf";
/// The latency quantiles reported: p50, p95, p99.
pub const LATENCY_LEVELS: &str = "(0.5, 0.95, 0.99)";

/// `Enum8` values of `events.kind`, in `EventKind` order starting at 1.
pub const EVENT_KIND_ENUM: &str =
    "Enum8('routed' = 1, 'attempt_failed' = 2, 'submitted' = 3, 'delivered' = 4, 'failed' = 5, 'failed_over' = 6, 'blocked' = 7, 'fell_back' = 8, 'unknown' = 9, 'expired' = 10, 'undeliverable' = 11)";
/// `Enum8` values of `events.status`, in `MessageStatus` order starting at 1.
pub const STATUS_ENUM: &str =
    "Enum8('queued' = 1, 'submitted' = 2, 'delivered' = 3, 'failed' = 4, 'blocked' = 5, 'unknown' = 6, 'expired' = 7, 'undeliverable' = 8)";
pub const CHANNEL_ENUM: &str = "Enum8('sms' = 1, 'alimtalk' = 2)";
pub const MESSAGE_TYPE_ENUM: &str = "Enum8('sms' = 1, 'lms' = 2, 'mms' = 3, 'alimtalk' = 4)";

/// The statements that create the database and tables, in order.
pub fn statements(database: &str) -> Vec<String> {
    vec![
        format!("CREATE DATABASE IF NOT EXISTS {database}"),
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{MESSAGES_TABLE} (
                customer_id String,
                request_id String,
                message_id String,
                accepted_at DateTime,
                accepted_at_ms UInt64,
                channel {CHANNEL_ENUM},
                message_type {MESSAGE_TYPE_ENUM},
                from_number String,
                to_number String,
                subject String,
                text String,
                schedule_id String,
                points_reserved UInt32,
                fallback_type String,
                fallback_subject String,
                fallback_text String
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMMDD(accepted_at)
            ORDER BY (customer_id, request_id, message_id)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{EVENTS_TABLE} (
                customer_id String,
                request_id String,
                message_id String,
                at DateTime,
                at_ms UInt64,
                ordinal UInt32,
                kind {EVENT_KIND_ENUM},
                status {STATUS_ENUM},
                carrier String,
                hop UInt16,
                attempt UInt16,
                detail String,
                accepted_at_ms UInt64,
                points_reserved UInt32,
                points_spent UInt32,
                results_sequence UInt64
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMMDD(at)
            ORDER BY (customer_id, request_id, message_id, ordinal, kind)"
        ),
        // Tables created by an earlier version learn the newer enum values; adding
        // values to an Enum8 changes only metadata.
        format!("ALTER TABLE {database}.{EVENTS_TABLE} MODIFY COLUMN kind {EVENT_KIND_ENUM}"),
        format!("ALTER TABLE {database}.{EVENTS_TABLE} MODIFY COLUMN status {STATUS_ENUM}"),
        // Small (customers × carriers) and current, so neither partitioned nor trimmed.
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{ROUTING_TARGETS_TABLE} (
                customer_id String,
                channel {CHANNEL_ENUM},
                carrier String,
                weight UInt32,
                share Float64,
                revision UInt64,
                updated_at DateTime
            ) ENGINE = ReplacingMergeTree(revision)
            ORDER BY (customer_id, channel, carrier)"
        ),
    ]
    .into_iter()
    .chain(STATISTICS_TABLES.iter().map(|(table, _)| {
        format!(
            "CREATE TABLE IF NOT EXISTS {database}.{table} (
                customer_id String,
                start DateTime,
                carrier String,
                first_choice {COUNT},
                submitted {COUNT},
                delivered {COUNT},
                failed {COUNT},
                failed_over {COUNT},
                undeliverable {COUNT},
                unknown {COUNT},
                expired {COUNT},
                points_spent {COUNT},
                latency_ms {DIGEST},
                submit_latency_ms {DIGEST}
            ) ENGINE = AggregatingMergeTree()
            PARTITION BY toYYYYMMDD(start)
            ORDER BY (customer_id, start, carrier)"
        )
    }))
    .collect()
}

/// The suffix of the statistics views as they are now; an earlier view of a table
/// (`<table>_feed`, which did not count fallbacks) is dropped once this one exists.
pub const VIEW_SUFFIX: &str = "_feed_v3";
const EARLIER_VIEW_SUFFIXES: [&str; 2] = ["_feed", "_feed_v2"];

/// The materialized views, created after every column they read exists, then the
/// statements that drop the views they replace. Latency is accept to final state
/// (for a carrier that reports delivery in receipts: to the receipt) for final
/// events that know when they were accepted and came from a carrier; submit latency
/// is accept to the carrier's acceptance. Every attempt counts under the
/// carrier that made it: an AlimTalk carrier that could not deliver a message that
/// then fell back to SMS/LMS counts it under `failed_over`, as any carrier a message
/// left does.
pub fn views(database: &str) -> Vec<String> {
    let created = STATISTICS_TABLES.iter().map(|(table, truncate)| {
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{table}{VIEW_SUFFIX}
                 TO {database}.{table} AS
                 SELECT customer_id, {truncate}(at) AS start, carrier,
                        sumState(toUInt64(kind = 'routed' AND hop = 1)) AS first_choice,
                        sumState(toUInt64(kind = 'submitted')) AS submitted,
                        sumState(toUInt64(kind = 'delivered')) AS delivered,
                        sumState(toUInt64(kind = 'failed')) AS failed,
                        sumState(toUInt64(kind IN ('failed_over', 'fell_back'))) AS failed_over,
                        sumState(toUInt64(kind = 'undeliverable')) AS undeliverable,
                        sumState(toUInt64(kind = 'unknown')) AS unknown,
                        sumState(toUInt64(kind = 'expired')) AS expired,
                        sumState(toUInt64(points_spent)) AS points_spent,
                        {LATENCY_FUNCTION}State{LATENCY_LEVELS}(
                            toUInt64(if(at_ms > accepted_at_ms, at_ms - accepted_at_ms, 0)),
                            toUInt8(kind IN ('delivered', 'failed', 'unknown', 'undeliverable') AND accepted_at_ms > 0)
                        ) AS latency_ms,
                        {LATENCY_FUNCTION}State{LATENCY_LEVELS}(
                            toUInt64(if(at_ms > accepted_at_ms, at_ms - accepted_at_ms, 0)),
                            toUInt8(kind = 'submitted' AND accepted_at_ms > 0)
                        ) AS submit_latency_ms
                 FROM {database}.{EVENTS_TABLE}
                 GROUP BY customer_id, start, carrier"
            )
        });
    // Created first, dropped after: a batch inserted between the two is counted
    // twice rather than not at all.
    let dropped = STATISTICS_TABLES.iter().flat_map(|(table, _)| {
        EARLIER_VIEW_SUFFIXES
            .iter()
            .map(move |suffix| format!("DROP TABLE IF EXISTS {database}.{table}{suffix}"))
    });
    created.chain(dropped).collect()
}

/// The type of a count column of the statistics tables.
const COUNT: &str = "AggregateFunction(sum, UInt64)";
/// The type of a latency digest column of the statistics tables.
const DIGEST: &str = "AggregateFunction(quantilesTDigestIf(0.5, 0.95, 0.99), UInt64, UInt8)";

/// Columns added after a table was first created: (table, column, type).
const ADDED_COLUMNS: [(&str, &str, &str); 17] = [
    (MESSAGES_TABLE, "schedule_id", "String"),
    (MESSAGES_TABLE, "points_reserved", "UInt32"),
    (MESSAGES_TABLE, "fallback_type", "String"),
    (MESSAGES_TABLE, "fallback_subject", "String"),
    (MESSAGES_TABLE, "fallback_text", "String"),
    (EVENTS_TABLE, "accepted_at_ms", "UInt64"),
    (EVENTS_TABLE, "points_reserved", "UInt32"),
    (EVENTS_TABLE, "points_spent", "UInt32"),
    (EVENTS_TABLE, "results_sequence", "UInt64"),
    (CARRIER_MINUTES_TABLE, "undeliverable", COUNT),
    (CARRIER_MINUTES_TABLE, "unknown", COUNT),
    (CARRIER_MINUTES_TABLE, "expired", COUNT),
    (CARRIER_MINUTES_TABLE, "submit_latency_ms", DIGEST),
    (CARRIER_HOURS_TABLE, "undeliverable", COUNT),
    (CARRIER_HOURS_TABLE, "unknown", COUNT),
    (CARRIER_HOURS_TABLE, "expired", COUNT),
    (CARRIER_HOURS_TABLE, "submit_latency_ms", DIGEST),
];

/// Creates the database and tables that are missing, and adds the columns tables
/// created by an earlier version lack (18.16 has no `ADD COLUMN IF NOT EXISTS`).
pub async fn ensure(client: &clickhouse::Client, database: &str) -> Result<(), ResultsError> {
    for statement in statements(database) {
        client.query(&statement).execute().await?;
    }
    for (table, column, kind) in ADDED_COLUMNS {
        let present: u64 = client
            .query(
                "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
            )
            .bind(database)
            .bind(table)
            .bind(column)
            .fetch_one()
            .await?;
        if present == 0 {
            client
                .query(&format!(
                    "ALTER TABLE {database}.{table} ADD COLUMN {column} {kind}"
                ))
                .execute()
                .await?;
        }
    }
    for statement in views(database) {
        client.query(&statement).execute().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_column_type_is_the_one_the_views_fill() {
        assert_eq!(
            DIGEST,
            format!("AggregateFunction({LATENCY_FUNCTION}{LATENCY_LEVELS}, UInt64, UInt8)")
        );
    }
}
