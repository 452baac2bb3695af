//! What the carriers' integration tests share.
use rns_types::wire::{MessageEvent, ResultBatch};

/// Every event recorded in `RESULTS` so far, in order (none before the stream
/// exists).
pub async fn recorded_events(jetstream: &async_nats::jetstream::Context) -> Vec<MessageEvent> {
    let Ok(mut stream) = jetstream.get_stream("RESULTS").await else {
        return Vec::new();
    };
    let state = stream.info().await.unwrap().state.clone();
    let mut events = Vec::new();
    for sequence in state.first_sequence..state.first_sequence + state.messages {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let batch: ResultBatch = serde_json::from_slice(&message.payload).unwrap();
        events.extend(batch.events);
    }
    events
}
