//! Reading a consumer in rounds, for readers that need no message the moment it is
//! stored: a fetch of whatever waits, then a pause unless the fetch came back full.
//!
//! A pull consumer read as a continuous stream (`messages()`) has the server deliver
//! each message as it is stored, so a reader of RESULTS wakes, and nats-server writes
//! to it, once per message; at a few thousand messages a second spread over time that
//! is most of what the reader costs and a large part of what the server does. Readers
//! that a few tenths of a second do not hurt (ClickHouse's inserts, which wait half a
//! second for their batch anyway; points settlement; webhooks) read in rounds instead:
//! each round takes what gathered since the last in one reply, and under load, when a
//! fetch comes back full, the next follows at once, so a round never limits the rate.
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::Message;
use futures::{Stream, StreamExt};

/// The pause of the RESULTS readers that need no event the moment it is stored
/// (ClickHouse ingest, points settlement, webhooks): an event waits at most this
/// much longer to be read.
pub const RESULTS_READ_PAUSE: Duration = Duration::from_millis(100);

/// How a consumer is read in rounds.
#[derive(Debug, Clone, Copy)]
pub struct Rounds {
    /// Most messages one fetch takes.
    pub max_messages: usize,
    /// Most payload bytes one fetch takes.
    pub max_bytes: usize,
    /// The pause after a fetch that came back with room to spare (fewer than
    /// `max_messages` and under half of `max_bytes`), or failed.
    pub pause: Duration,
}

/// A failed fetch (the stream goes on after its pause).
#[derive(Debug, thiserror::Error)]
#[error("fetching from a consumer: {0}")]
pub struct FetchFailed(String);

/// `consumer`'s messages, read in rounds as `rounds` says; the stream never ends.
pub fn in_rounds(
    consumer: PullConsumer,
    rounds: Rounds,
) -> impl Stream<Item = Result<Message, FetchFailed>> {
    futures::stream::unfold((consumer, false), move |(consumer, pause)| async move {
        if pause {
            tokio::time::sleep(rounds.pause).await;
        }
        let fetched = fetch(&consumer, rounds).await;
        let room_to_spare = match &fetched {
            Ok(messages) => {
                let bytes: usize = messages.iter().map(|message| message.payload.len()).sum();
                messages.len() < rounds.max_messages && bytes < rounds.max_bytes / 2
            }
            Err(_) => true,
        };
        let items: Vec<Result<Message, FetchFailed>> = match fetched {
            Ok(messages) => messages.into_iter().map(Ok).collect(),
            Err(error) => vec![Err(error)],
        };
        Some((futures::stream::iter(items), (consumer, room_to_spare)))
    })
    .flatten()
}

/// Longest one fetch may take. A fetch's end comes from the server; when its
/// connection moves to another server (a node killed, a reconnect) that end can be
/// lost, and a fetch waiting for it would hold the reader for good (seen: ClickHouse
/// ingestion stopped with messages delivered and never acknowledged).
pub const FETCH_DEADLINE: Duration = Duration::from_secs(5);

/// One fetch: every message it returned (the messages before a failure, or before
/// [`FETCH_DEADLINE`], are kept).
async fn fetch(consumer: &PullConsumer, rounds: Rounds) -> Result<Vec<Message>, FetchFailed> {
    let deadline = tokio::time::Instant::now() + FETCH_DEADLINE;
    let request = consumer
        .fetch()
        .max_messages(rounds.max_messages)
        .max_bytes(rounds.max_bytes)
        .messages();
    let mut batch = match tokio::time::timeout_at(deadline, request).await {
        Ok(batch) => batch.map_err(|error| FetchFailed(error.to_string()))?,
        Err(_) => return Err(FetchFailed("the fetch was not answered in time".to_owned())),
    };
    let mut messages = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, batch.next()).await {
            Ok(Some(Ok(message))) => messages.push(message),
            Ok(Some(Err(error))) if messages.is_empty() => {
                return Err(FetchFailed(error.to_string()))
            }
            Ok(Some(Err(_))) | Ok(None) => break,
            Err(_) if messages.is_empty() => {
                return Err(FetchFailed("the fetch's end never came".to_owned()))
            }
            Err(_) => break,
        }
    }
    Ok(messages)
}
