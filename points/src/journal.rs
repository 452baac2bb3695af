//! Copies every ledger entry from the Redis journal into the JetStream `LEDGER`
//! stream (`ledger.<customer>`), where it is durable and replicated.
//!
//! The journal is a Redis stream read through the consumer group `jetstream`: entries
//! are acknowledged and deleted only after JetStream acknowledged them, and entries a
//! crashed copier had claimed are claimed again after [`CLAIM_IDLE`]. Each batch
//! becomes one JetStream message per customer (a JSON array of at most
//! [`MESSAGE_MAX_BYTES`], more messages when its entries are larger), published with a
//! `Nats-Msg-Id` naming its first and last entry; a reader de-duplicates by entry id.
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use rns_nats::{publish_all, Outbound};
use rns_types::points::LedgerEntry;
use rns_types::subjects::ledger_subject;
use rns_types::CustomerId;
use tokio_util::sync::CancellationToken;

use crate::error::PointsError;
use crate::store::{PointsStore, JOURNAL_KEY};

const GROUP: &str = "jetstream";
/// Entries copied per round.
const BATCH: usize = 1_000;
/// How long the copier waits when the journal is empty.
const IDLE_PAUSE: Duration = Duration::from_millis(200);
/// Most bytes of entries in one `LEDGER` message, well below the server's payload
/// limit (1 MiB by default): an entry lists up to
/// [`crate::store::LEDGER_ENTRY_MAX_REQUESTS`] requests, a few kilobytes.
pub const MESSAGE_MAX_BYTES: usize = 256 * 1024;
/// A claimed entry idle this long belongs to a copier that died; take it over.
pub const CLAIM_IDLE: Duration = Duration::from_secs(30);

/// Copies the journal into JetStream until `shutdown`.
pub async fn copy_until(
    store: PointsStore,
    jetstream: async_nats::jetstream::Context,
    consumer_name: String,
    shutdown: CancellationToken,
) {
    let mut connection = store.connection();
    let created: Result<(), redis::RedisError> = redis::cmd("XGROUP")
        .arg(&["CREATE", JOURNAL_KEY, GROUP, "0", "MKSTREAM"][..])
        .query_async(&mut connection)
        .await;
    if let Err(error) = created {
        if error.code() != Some("BUSYGROUP") {
            tracing::warn!(%error, "creating the journal's consumer group failed; will retry");
        }
    }
    while !shutdown.is_cancelled() {
        match copy_once(&store, &jetstream, &consumer_name).await {
            Ok(0) => {
                // Nothing to copy. Reads never block: the connection is shared with
                // the settlement, and a blocking read would stall it.
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(IDLE_PAUSE) => {}
                }
            }
            Ok(copied) => tracing::debug!(copied, "ledger entries copied to JetStream"),
            Err(error) => {
                tracing::warn!(%error, "copying ledger entries failed; will retry");
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// One round: stale entries of dead copiers first, then new ones. Returns how many
/// entries were copied.
pub async fn copy_once(
    store: &PointsStore,
    jetstream: &async_nats::jetstream::Context,
    consumer_name: &str,
) -> Result<usize, PointsError> {
    let mut connection = store.connection();
    let stale: StreamAutoClaimReply = redis::AsyncCommands::xautoclaim_options(
        &mut connection,
        JOURNAL_KEY,
        GROUP,
        consumer_name,
        CLAIM_IDLE.as_millis() as u64,
        "0-0",
        StreamAutoClaimOptions::default().count(BATCH),
    )
    .await
    .or_else(|error| ignore_missing_group(error, StreamAutoClaimReply::default()))?;
    let entries = if stale.claimed.is_empty() {
        let options = StreamReadOptions::default()
            .group(GROUP, consumer_name)
            .count(BATCH);
        let reply: Option<StreamReadReply> =
            redis::AsyncCommands::xread_options(&mut connection, &[JOURNAL_KEY], &[">"], &options)
                .await
                .or_else(|error| ignore_missing_group(error, None))?;
        reply
            .map(|reply| reply.keys.into_iter().flat_map(|key| key.ids).collect())
            .unwrap_or_default()
    } else {
        stale.claimed
    };
    if entries.is_empty() {
        return Ok(0);
    }
    let outbound = batches(&entries)?;
    publish_all(jetstream, outbound, 64).await?;
    let ids: Vec<&str> = entries.iter().map(|entry| entry.id.as_str()).collect();
    let _: () = redis::pipe()
        .cmd("XACK")
        .arg(JOURNAL_KEY)
        .arg(GROUP)
        .arg(&ids)
        .ignore()
        .cmd("XDEL")
        .arg(JOURNAL_KEY)
        .arg(&ids)
        .ignore()
        .query_async(&mut connection)
        .await?;
    Ok(entries.len())
}

fn ignore_missing_group<T>(error: redis::RedisError, empty: T) -> Result<T, PointsError> {
    if error.code() == Some("NOGROUP") {
        Ok(empty)
    } else {
        Err(error.into())
    }
}

/// One JetStream message per customer with their entries in order.
fn batches(entries: &[StreamId]) -> Result<Vec<Outbound>, PointsError> {
    let mut by_customer: BTreeMap<String, Vec<LedgerEntry>> = BTreeMap::new();
    for entry in entries {
        let (Some(customer), Some(id), Some(payload)) = (
            entry.get::<String>("customer"),
            entry.get::<String>("id"),
            entry.get::<String>("entry"),
        ) else {
            tracing::warn!(id = %entry.id, "skipping a malformed journal entry");
            continue;
        };
        let mut ledger_entry: LedgerEntry = serde_json::from_str(&payload)?;
        ledger_entry.id = id;
        by_customer.entry(customer).or_default().push(ledger_entry);
    }
    let mut outbound = Vec::with_capacity(by_customer.len());
    for (customer, entries) in by_customer {
        let Ok(customer) = CustomerId::parse(&customer) else {
            continue;
        };
        for (first, last, payload) in in_messages(&entries, MESSAGE_MAX_BYTES)? {
            outbound.push(Outbound {
                subject: ledger_subject(&customer),
                message_id: format!("ledger:{customer}:{first}:{last}"),
                payload,
            });
        }
    }
    Ok(outbound)
}

/// `entries` in order as JSON arrays of at most `max_bytes` each (an entry larger
/// than that alone), each with the ids of its first and last entry.
fn in_messages(
    entries: &[LedgerEntry],
    max_bytes: usize,
) -> Result<Vec<(String, String, Bytes)>, PointsError> {
    let mut messages = Vec::new();
    let mut start = 0;
    let mut payload = vec![b'['];
    for (index, entry) in entries.iter().enumerate() {
        let encoded = serde_json::to_vec(entry)?;
        // The closing bracket, and the comma before this entry if it is not the first.
        if index > start && payload.len() + 1 + encoded.len() + 1 > max_bytes {
            payload.push(b']');
            messages.push((
                entries[start].id.clone(),
                entries[index - 1].id.clone(),
                Bytes::from(std::mem::replace(&mut payload, vec![b'['])),
            ));
            start = index;
        }
        if index > start {
            payload.push(b',');
        }
        payload.extend_from_slice(&encoded);
    }
    if start < entries.len() {
        payload.push(b']');
        messages.push((
            entries[start].id.clone(),
            entries[entries.len() - 1].id.clone(),
            Bytes::from(payload),
        ));
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rns_types::points::{LedgerKind, RequestShare};
    use rns_types::RequestId;

    /// A settlement of `requests` requests, a point each.
    fn entry(id: usize, requests: usize) -> LedgerEntry {
        let mut entry =
            crate::recover::tests::entry(&format!("{id}-0"), LedgerKind::Settle, 1, None);
        entry.requests = (0..requests)
            .map(|_| RequestShare {
                request_id: RequestId::generate(),
                amount: 1,
                returned: 0,
            })
            .collect();
        entry.amount = requests as u64;
        entry
    }

    #[test]
    fn entries_go_in_messages_of_bounded_bytes_in_order_and_none_is_left_out() {
        let entries: Vec<LedgerEntry> = (1..=40).map(|id| entry(id, 50)).collect();
        let limit = 16 * 1024;
        let messages = in_messages(&entries, limit).unwrap();
        assert!(messages.len() > 1, "{} messages", messages.len());
        let mut read = Vec::new();
        for (first, last, payload) in &messages {
            assert!(payload.len() <= limit, "{} bytes", payload.len());
            let batch: Vec<LedgerEntry> = serde_json::from_slice(payload).unwrap();
            assert_eq!(&batch[0].id, first);
            assert_eq!(&batch[batch.len() - 1].id, last);
            read.extend(batch);
        }
        assert_eq!(read, entries);
        // One entry beyond the limit still goes, alone.
        let messages = in_messages(&entries[..2], 100).unwrap();
        assert_eq!(messages.len(), 2);
        assert!(in_messages(&[], limit).unwrap().is_empty());
    }
}
