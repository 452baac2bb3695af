//! Ingestion: RESULTS → ClickHouse, in batches, acknowledged only after the insert.
//!
//! Messages are read in rounds (what gathered since the last read, every
//! 100 ms while RESULTS is quiet, at once while reads come back full:
//! [`rns_nats::polled`]) and gathered into a batch until it holds
//! `batch_size` messages or `batch_max_bytes` of them, or `batch_linger` passed since
//! its first message. A batch is
//! inserted into `messages` and `events`, and only then is every message of it
//! acknowledged. When ClickHouse refuses or is down, the batch is nak'ed with a delay
//! and redelivered later: nothing is lost, and the re-inserted rows collapse in the
//! `ReplacingMergeTree`s. A message redelivered after its rows were inserted (its
//! acknowledgement lost) is not inserted again: every event row names its RESULTS
//! sequence, so the statistics views, which count rows as inserted, count each event
//! once. A message that cannot be decoded is terminated and logged, since no retry
//! could make it readable.
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use rns_nats::polled::Rounds;
use rns_types::trace::TraceContext;
use rns_types::wire::ResultBatch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::AnalyticsError;
use crate::rows::{EventRow, MessageRow};
use rns_results::schema::{EVENTS_TABLE, MESSAGES_TABLE};

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct BatchPolicy {
    pub batch_size: usize,
    /// Most payload bytes in one batch; also the most pulled at once.
    pub batch_max_bytes: usize,
    pub batch_linger: Duration,
    pub retry_delay: Duration,
    /// Longest a batch's insert and acknowledgements may take before it counts as
    /// failed (and is nak'ed for redelivery).
    pub insert_timeout: Duration,
}

/// Pulls RESULTS and inserts batches until `shutdown`; the batch in hand when
/// shutdown comes is still inserted (or nak'ed) before returning.
pub async fn run(
    consumer: PullConsumer,
    client: clickhouse::Client,
    policy: BatchPolicy,
    shutdown: CancellationToken,
) -> Result<(), AnalyticsError> {
    let mut messages = std::pin::pin!(rns_nats::polled::in_rounds(
        consumer,
        Rounds {
            max_messages: policy.batch_size,
            max_bytes: policy.batch_max_bytes,
            pause: rns_nats::polled::RESULTS_READ_PAUSE,
        }
    ));
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            next = messages.next() => next,
        };
        let first = match first {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                tracing::warn!(%error, "pull from RESULTS failed");
                continue;
            }
            None => return Err(AnalyticsError::Nats("RESULTS message stream ended".into())),
        };
        let mut bytes = first.payload.len();
        let mut batch = vec![first];
        let deadline = Instant::now() + policy.batch_linger;
        while batch.len() < policy.batch_size && bytes < policy.batch_max_bytes {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(Some(Ok(message))) => {
                    bytes += message.payload.len();
                    batch.push(message);
                }
                Ok(Some(Err(error))) => tracing::warn!(%error, "pull from RESULTS failed"),
                Ok(None) | Err(_) => break,
            }
        }
        metrics::histogram!(crate::metric_names::ANALYTICS_BATCH_SIZE).record(batch.len() as f64);
        let started = Instant::now();
        let flushed = tokio::time::timeout(policy.insert_timeout, flush(&client, &batch))
            .await
            .unwrap_or(Err(AnalyticsError::TimedOut("the insert into ClickHouse")));
        metrics::histogram!(crate::metric_names::ANALYTICS_INSERT_DURATION_SECONDS)
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = flushed {
            metrics::counter!(crate::metric_names::ANALYTICS_INSERT_FAILURES_TOTAL).increment(1);
            tracing::warn!(%error, messages = batch.len(), "insert failed; batch will be redelivered");
            for message in &batch {
                let _ = message
                    .ack_with(AckKind::Nak(Some(policy.retry_delay)))
                    .await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(policy.retry_delay) => {}
            }
        }
    }
}

/// Inserts one batch and acknowledges its messages.
pub async fn flush(client: &clickhouse::Client, batch: &[Message]) -> Result<(), AnalyticsError> {
    for message in insert(client, batch).await? {
        if let Err(error) = message.ack().await {
            tracing::warn!(%error, "ack failed; the batch's rows may be inserted again");
        }
    }
    Ok(())
}

/// A RESULTS message decoded, with where it is in the stream.
struct Decoded<'a> {
    message: &'a Message,
    result: ResultBatch,
    sequence: u64,
    redelivered: bool,
}

/// Inserts the rows of one batch, leaving out redelivered messages whose events are
/// there already; the messages to acknowledge (every one but the undecodable, which
/// are terminated).
pub async fn insert<'a>(
    client: &clickhouse::Client,
    batch: &'a [Message],
) -> Result<Vec<&'a Message>, AnalyticsError> {
    let mut decoded = Vec::with_capacity(batch.len());
    for message in batch {
        match ResultBatch::decode(&message.payload) {
            Ok(result) => {
                let (sequence, redelivered) = message.info().map_or((0, false), |info| {
                    (info.stream_sequence, info.delivered > 1)
                });
                decoded.push(Decoded {
                    message,
                    result,
                    sequence,
                    redelivered,
                });
            }
            Err(error) => {
                tracing::error!(%error, subject = %message.subject, "undecodable result; terminating it");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    let inserted = already_inserted(client, &decoded).await?;
    // Traces are counted only when their lines are logged: not on the busy path.
    let follow = tracing::enabled!(tracing::Level::DEBUG);
    let mut traces: HashMap<TraceContext, usize> = HashMap::new();
    let mut message_rows = Vec::new();
    let mut event_rows = Vec::new();
    for Decoded {
        result, sequence, ..
    } in decoded
        .iter()
        .filter(|decoded| !inserted.contains(&decoded.sequence))
    {
        if follow {
            for trace in result.event_traces().flatten() {
                *traces.entry(trace).or_default() += 1;
            }
        }
        message_rows.extend(
            result
                .messages
                .iter()
                .map(|record| MessageRow::new(&result.customer_id, record)),
        );
        event_rows.extend(
            result
                .events
                .iter()
                .map(|event| EventRow::new(&result.customer_id, event, *sequence)),
        );
    }
    if !inserted.is_empty() {
        metrics::counter!(crate::metric_names::ANALYTICS_REDELIVERIES_SKIPPED_TOTAL)
            .increment(inserted.len() as u64);
        tracing::info!(
            messages = inserted.len(),
            "redelivered results already inserted; not counted again"
        );
    }
    insert_rows(client, MESSAGES_TABLE, &message_rows).await?;
    insert_rows(client, EVENTS_TABLE, &event_rows).await?;
    tracing::debug!(
        messages = message_rows.len(),
        events = event_rows.len(),
        "batch inserted"
    );
    if follow {
        log_traces(&traces);
    }
    Ok(decoded.into_iter().map(|decoded| decoded.message).collect())
}

/// The stream sequences of the redelivered messages in `decoded` whose events
/// ClickHouse holds already: inserted on an earlier delivery whose acknowledgement
/// was lost (the process ended, or the ack did not arrive). Only redelivered
/// messages are looked up, by customer and request (the table's key), so the usual
/// batch costs no query; after a crash a whole batch may be redelivered, so they are
/// asked about a few at a time ([`REQUESTS_PER_LOOKUP`]), keeping each query far
/// below ClickHouse's `max_query_size`. One insert is one block, so a message's
/// events are all there or none are.
async fn already_inserted(
    client: &clickhouse::Client,
    decoded: &[Decoded<'_>],
) -> Result<HashSet<u64>, AnalyticsError> {
    let mut inserted = HashSet::new();
    let mut redelivered: Vec<&Decoded<'_>> = decoded
        .iter()
        .filter(|decoded| decoded.redelivered && !decoded.result.events.is_empty())
        .collect();
    redelivered.sort_by(|one, other| one.result.customer_id.cmp(&other.result.customer_id));
    let mut asked: Vec<&Decoded<'_>> = Vec::new();
    let mut requests: HashSet<String> = HashSet::new();
    for (index, message) in redelivered.iter().enumerate() {
        asked.push(message);
        requests.extend(
            message
                .result
                .events
                .iter()
                .map(|event| event.message_id.request_id().to_string()),
        );
        let last_of_customer = redelivered
            .get(index + 1)
            .is_none_or(|next| next.result.customer_id != message.result.customer_id);
        if last_of_customer || requests.len() >= REQUESTS_PER_LOOKUP {
            let sequences: Vec<u64> = asked.iter().map(|asked| asked.sequence).collect();
            let customer = message.result.customer_id.as_str();
            inserted.extend(lookup(client, customer, &requests, &sequences).await?);
            asked.clear();
            requests.clear();
        }
    }
    Ok(inserted)
}

/// Most request ids in one look-up of [`already_inserted`] (about 30 KB of query).
const REQUESTS_PER_LOOKUP: usize = 1_000;

/// Which of `sequences` have events of `customer`'s `requests` in ClickHouse.
async fn lookup(
    client: &clickhouse::Client,
    customer: &str,
    requests: &HashSet<String>,
    sequences: &[u64],
) -> Result<Vec<u64>, AnalyticsError> {
    let statement = format!(
        "SELECT DISTINCT results_sequence FROM {EVENTS_TABLE} \
         WHERE customer_id = ? AND request_id IN ({}) AND results_sequence IN ({})",
        placeholders(requests.len()),
        placeholders(sequences.len()),
    );
    let mut query = client.query(&statement).bind(customer);
    for request in requests {
        query = query.bind(request.as_str());
    }
    for sequence in sequences {
        query = query.bind(sequence);
    }
    Ok(query.fetch_all::<u64>().await?)
}

/// `?, ?, …`: `count` placeholders.
fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// One line per trace of the batch's events: the last step of a message's path.
fn log_traces(traces: &HashMap<TraceContext, usize>) {
    for (trace, events) in traces {
        tracing::debug!(trace_id = trace.trace_id(), events, "events recorded");
    }
}

async fn insert_rows<T>(
    client: &clickhouse::Client,
    table: &str,
    rows: &[T],
) -> Result<(), AnalyticsError>
where
    T: clickhouse::RowOwned + clickhouse::RowWrite,
{
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<T>(table).await?;
    for row in rows {
        insert.write(row).await?;
    }
    insert.end().await?;
    metrics::counter!(crate::metric_names::ANALYTICS_ROWS_INSERTED_TOTAL, "table" => table.to_owned())
        .increment(rows.len() as u64);
    Ok(())
}
