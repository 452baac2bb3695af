//! `GET /v1/stats`: per carrier, over a time range and in buckets, what was routed
//! to it first, submitted, delivered, failed and moved on, what its receipts said
//! (undeliverable, expired) or did not say in time (unknown), the points spent, and
//! the latency from acceptance to final state — to the receipt, for a carrier that
//! sends them — and to the carrier's acceptance (p50, p95, p99).
//!
//! Everything is read from `carrier_minutes` or `carrier_hours` (see
//! [`crate::schema`]), which hold one row of counts and latency digests per customer,
//! minute (hour) and carrier, so a month of hourly or daily statistics reads 720 rows
//! per carrier whatever the traffic. Buckets start at the minute, hour or day in the
//! given time zone; hour and day statistics count whole hours (a range starting at
//! 10:20 counts from 10:00).
use clickhouse::Row;
use rns_types::CustomerId;
use serde::{Deserialize, Serialize};

use crate::error::ResultsError;
use crate::schema::{CARRIER_HOURS_TABLE, CARRIER_MINUTES_TABLE, LATENCY_FUNCTION, LATENCY_LEVELS};

/// How wide a bucket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    const ALL: [Self; 3] = [Self::Minute, Self::Hour, Self::Day];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|bucket| bucket.as_str() == text)
    }

    /// Its name, as queries and answers spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// The bucket's width in seconds (a day may be an hour off at a DST change).
    pub fn seconds(self) -> u64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    fn start_expression(self) -> &'static str {
        match self {
            Self::Minute => "start",
            Self::Hour => "toStartOfHour(start, ?)",
            Self::Day => "toStartOfDay(start, ?)",
        }
    }

    /// The table with the coarsest rows that still fill this bucket exactly.
    fn table(self) -> &'static str {
        match self {
            Self::Minute => CARRIER_MINUTES_TABLE,
            Self::Hour | Self::Day => CARRIER_HOURS_TABLE,
        }
    }

    /// `seconds` moved back to the start of its row in [`Bucket::table`].
    fn row_start(self, seconds: u32) -> u32 {
        let width = match self {
            Self::Minute => 60,
            Self::Hour | Self::Day => 3_600,
        };
        seconds - seconds % width
    }
}

/// Latency from acceptance to final state, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// One carrier's numbers in a bucket or over the whole range.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CarrierNumbers {
    pub carrier: String,
    /// Messages routed to it as first choice (by weight).
    pub first_choice: u64,
    pub submitted: u64,
    pub delivered: u64,
    /// Messages that failed for good on it.
    pub failed: u64,
    /// Messages that left it for another carrier.
    pub failed_over: u64,
    /// Messages its receipt said never reached the handset.
    pub undeliverable: u64,
    /// Messages it may have delivered but never said so in time.
    pub unknown: u64,
    /// Messages that ran out of validity on it (before a submit, or by its receipt).
    pub expired: u64,
    pub points_spent: u64,
    /// `delivered` over every outcome on it (`delivered + failed + failed_over +
    /// undeliverable + unknown + expired`); `None` before any outcome.
    pub success_rate: Option<f64>,
    /// Acceptance to final state; `None` when no message reached one on it.
    pub latency_ms: Option<Latency>,
    /// Acceptance to the carrier taking it; `None` before it took any.
    pub submit_latency_ms: Option<Latency>,
}

/// One bucket, by its start (epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct BucketNumbers {
    pub start_seconds: u64,
    pub carriers: Vec<CarrierNumbers>,
}

/// Statistics over a range: totals per carrier and the same per bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    pub totals: Vec<CarrierNumbers>,
    pub buckets: Vec<BucketNumbers>,
}

#[derive(Debug, Row, Deserialize)]
struct NumbersRow {
    bucket: u32,
    carrier: String,
    first_choice: u64,
    submitted: u64,
    delivered: u64,
    failed: u64,
    failed_over: u64,
    undeliverable: u64,
    unknown: u64,
    expired: u64,
    points_spent: u64,
    latency: Vec<f32>,
    submit_latency: Vec<f32>,
}

/// The quantiles of a digest, or none when it holds nothing (NaN quantiles).
fn latency(quantiles: &[f32]) -> Option<Latency> {
    match quantiles {
        [p50, p95, p99] if p50.is_finite() && p95.is_finite() && p99.is_finite() => Some(Latency {
            p50: f64::from(*p50).round(),
            p95: f64::from(*p95).round(),
            p99: f64::from(*p99).round(),
        }),
        _ => None,
    }
}

impl From<NumbersRow> for CarrierNumbers {
    fn from(row: NumbersRow) -> Self {
        let outcomes = row.delivered
            + row.failed
            + row.failed_over
            + row.undeliverable
            + row.unknown
            + row.expired;
        let ended = row.delivered + row.failed + row.undeliverable + row.unknown;
        Self {
            carrier: row.carrier,
            first_choice: row.first_choice,
            submitted: row.submitted,
            delivered: row.delivered,
            failed: row.failed,
            failed_over: row.failed_over,
            undeliverable: row.undeliverable,
            unknown: row.unknown,
            expired: row.expired,
            points_spent: row.points_spent,
            success_rate: (outcomes > 0).then(|| row.delivered as f64 / outcomes as f64),
            latency_ms: latency(&row.latency).filter(|_| ended > 0),
            submit_latency_ms: latency(&row.submit_latency).filter(|_| row.submitted > 0),
        }
    }
}

/// The customer's statistics in `[since_seconds, until_seconds)`, bucketed by `bucket`
/// in `timezone` (an IANA name the caller checked). Events without a carrier (a
/// channel with no carrier at all) are left out.
pub async fn statistics(
    client: &clickhouse::Client,
    customer: &CustomerId,
    since_seconds: u32,
    until_seconds: u32,
    bucket: Bucket,
    timezone: &str,
) -> Result<Statistics, ResultsError> {
    // Totals and buckets at once: each merges the same rows its own way.
    let (totals, rows) = tokio::try_join!(
        numbers(
            client,
            customer,
            since_seconds,
            until_seconds,
            bucket,
            false,
            timezone
        ),
        numbers(
            client,
            customer,
            since_seconds,
            until_seconds,
            bucket,
            true,
            timezone
        ),
    )?;
    let mut buckets: Vec<BucketNumbers> = Vec::new();
    for row in rows {
        let start_seconds = u64::from(row.bucket);
        match buckets.last_mut() {
            Some(last) if last.start_seconds == start_seconds => last.carriers.push(row.into()),
            _ => buckets.push(BucketNumbers {
                start_seconds,
                carriers: vec![row.into()],
            }),
        }
    }
    Ok(Statistics {
        totals: totals.into_iter().map(CarrierNumbers::from).collect(),
        buckets,
    })
}

async fn numbers(
    client: &clickhouse::Client,
    customer: &CustomerId,
    since_seconds: u32,
    until_seconds: u32,
    bucket: Bucket,
    bucketed: bool,
    timezone: &str,
) -> Result<Vec<NumbersRow>, ResultsError> {
    let start = if bucketed {
        bucket.start_expression()
    } else {
        "0"
    };
    let statement = format!(
        "SELECT toUInt32({start}) AS bucket, carrier,
                sumMerge(first_choice) AS first_choice, sumMerge(submitted) AS submitted,
                sumMerge(delivered) AS delivered, sumMerge(failed) AS failed,
                sumMerge(failed_over) AS failed_over, sumMerge(undeliverable) AS undeliverable,
                sumMerge(unknown) AS unknown, sumMerge(expired) AS expired,
                sumMerge(points_spent) AS points_spent,
                {LATENCY_FUNCTION}Merge{LATENCY_LEVELS}(latency_ms) AS latency,
                {LATENCY_FUNCTION}Merge{LATENCY_LEVELS}(submit_latency_ms) AS submit_latency
         FROM {table}
         WHERE customer_id = ? AND start >= toDateTime(?) AND start < toDateTime(?)
               AND carrier != ''
         GROUP BY bucket, carrier
         ORDER BY bucket, carrier",
        table = bucket.table(),
    );
    let mut query = client.query(&statement);
    if bucketed && matches!(bucket, Bucket::Hour | Bucket::Day) {
        query = query.bind(timezone);
    }
    Ok(query
        .bind(customer.as_str())
        .bind(bucket.row_start(since_seconds))
        .bind(until_seconds)
        .fetch_all::<NumbersRow>()
        .await?)
}
