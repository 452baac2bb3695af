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
//! Both are `ReplacingMergeTree`s ordered by customer first: every query names the
//! customer, and a re-inserted batch collapses on merge.
use crate::error::AnalyticsError;

pub const MESSAGES_TABLE: &str = "messages";
pub const EVENTS_TABLE: &str = "events";

/// `Enum8` values of `events.kind`, in `EventKind` order starting at 1.
pub const EVENT_KIND_ENUM: &str =
    "Enum8('routed' = 1, 'attempt_failed' = 2, 'submitted' = 3, 'delivered' = 4, 'failed' = 5, 'failed_over' = 6, 'blocked' = 7, 'fell_back' = 8)";
/// `Enum8` values of `events.status`, in `MessageStatus` order starting at 1.
pub const STATUS_ENUM: &str =
    "Enum8('queued' = 1, 'submitted' = 2, 'delivered' = 3, 'failed' = 4, 'blocked' = 5)";
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
                schedule_id String
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
                detail String
            ) ENGINE = ReplacingMergeTree()
            PARTITION BY toYYYYMMDD(at)
            ORDER BY (customer_id, request_id, message_id, ordinal, kind)"
        ),
        // Tables created by an earlier version learn the newer enum values; adding
        // values to an Enum8 changes only metadata.
        format!("ALTER TABLE {database}.{EVENTS_TABLE} MODIFY COLUMN kind {EVENT_KIND_ENUM}"),
        format!("ALTER TABLE {database}.{EVENTS_TABLE} MODIFY COLUMN status {STATUS_ENUM}"),
    ]
}

/// Columns added after a table was first created: (table, column, type).
const ADDED_COLUMNS: [(&str, &str, &str); 1] = [(MESSAGES_TABLE, "schedule_id", "String")];

/// Creates the database and tables that are missing, and adds the columns tables
/// created by an earlier version lack (18.16 has no `ADD COLUMN IF NOT EXISTS`).
pub async fn ensure(client: &clickhouse::Client, database: &str) -> Result<(), AnalyticsError> {
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
    Ok(())
}
