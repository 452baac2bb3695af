//! Retention: days older than the configured number are dropped whole, by
//! partition, from every daily table. Dropping a partition is a metadata operation
//! (no rows are rewritten), so it is cheap at any size and works on 18.16, which has
//! no TTL.
use std::time::Duration;

use clickhouse::Row;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::error::AnalyticsError;
use rns_results::schema::DAILY_TABLES;

/// How often the analytics service looks for expired days.
pub const CHECK_EVERY: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct DroppedPartition {
    pub table: String,
    pub partition: String,
}

/// Drops every day partition of [`DAILY_TABLES`] more than `keep_days` days old (by
/// the server's calendar) and returns what it dropped.
pub async fn drop_expired(
    client: &clickhouse::Client,
    database: &str,
    keep_days: u32,
) -> Result<Vec<DroppedPartition>, AnalyticsError> {
    let placeholders = vec!["?"; DAILY_TABLES.len()].join(", ");
    let mut query = client
        .query(&format!(
            "SELECT DISTINCT table, partition FROM system.parts
             WHERE database = ? AND active AND table IN ({placeholders})
                   AND toUInt32(partition) < toYYYYMMDD(today() - ?)
             ORDER BY table, partition"
        ))
        .bind(database);
    for table in DAILY_TABLES {
        query = query.bind(table);
    }
    let expired = query
        .bind(keep_days)
        .fetch_all::<DroppedPartition>()
        .await?;
    for day in &expired {
        // The partition is digits, checked by `toUInt32` above.
        client
            .query(&format!(
                "ALTER TABLE {database}.{} DROP PARTITION {}",
                day.table, day.partition
            ))
            .execute()
            .await?;
        tracing::info!(table = %day.table, partition = %day.partition, "dropped an expired day");
    }
    Ok(expired)
}

/// Drops expired days now and every [`CHECK_EVERY`] until `shutdown`; `keep_days`
/// of 0 keeps everything.
pub async fn run(
    client: clickhouse::Client,
    database: String,
    keep_days: u32,
    shutdown: CancellationToken,
) {
    if keep_days == 0 {
        return;
    }
    loop {
        if let Err(error) = drop_expired(&client, &database, keep_days).await {
            tracing::warn!(%error, "dropping expired days failed; trying again later");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}
