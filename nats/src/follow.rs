//! Following a KV bucket: every current entry, then every change, handed to a
//! callback, so a service keeps an in-memory copy of settings it reads per message
//! (circuit states, webhook settings) without a read per message.
use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv::Operation;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// Calls `apply(key, Some(value), revision)` for every entry of `bucket` now, returns,
/// and goes on in the background calling it for each put, and
/// `apply(key, None, revision)` for each delete, until `shutdown`. Revisions grow
/// with every change of the bucket, so they order a key's versions.
pub async fn follow_bucket(
    jetstream: &Context,
    bucket: &str,
    shutdown: CancellationToken,
    apply: impl Fn(&str, Option<&[u8]>, u64) + Send + 'static,
) -> Result<(), String> {
    let store = jetstream
        .get_key_value(bucket)
        .await
        .map_err(|error| format!("bucket {bucket}: {error}"))?;
    // Watch first, so no change between the load and the watch is missed; changes
    // replayed from the watch apply again in order and end in the same state.
    let mut updates = store
        .watch_all_from_revision(1)
        .await
        .map_err(|error| format!("watching {bucket}: {error}"))?;
    let mut keys = store
        .keys()
        .await
        .map_err(|error| format!("listing {bucket}: {error}"))?;
    while let Some(Ok(key)) = keys.next().await {
        if let Ok(Some(entry)) = store.entry(&key).await {
            if entry.operation == Operation::Put {
                apply(&key, Some(&entry.value), entry.revision);
            }
        }
    }
    let bucket = bucket.to_owned();
    tokio::spawn(async move {
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = updates.next() => next,
            };
            match next {
                Some(Ok(entry)) if entry.operation == Operation::Put => {
                    apply(&entry.key, Some(&entry.value), entry.revision)
                }
                Some(Ok(entry)) => apply(&entry.key, None, entry.revision),
                Some(Err(error)) => tracing::warn!(%bucket, %error, "bucket watch failed"),
                None => {
                    tracing::warn!(%bucket, "bucket watch ended");
                    return;
                }
            }
        }
    });
    Ok(())
}
