//! Returning the points of requests that were never published.
//!
//! A gateway reserves a request's points, then publishes the request, then confirms
//! the publish ([`PointsStore::confirm_published`]); a failed publish releases the
//! points at once. A gateway that dies between the reservation and the publish
//! leaves a hold nothing would ever settle or release. Such reservations stay listed
//! as unpublished ([`crate::store::UNPUBLISHED_KEY`]); [`watch`] releases those older
//! than `[points] unpublished_release_seconds` (each a `release` ledger entry with
//! [`crate::store::UNPUBLISHED_REASON`]). A gateway that died after its publish but
//! before its confirmation lets the request's messages go unpaid rather than keep
//! its points forever: what is still reserved then is released, and later
//! settlements of the request find nothing to take.
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metric_names::POINTS_UNPUBLISHED_RELEASED_TOTAL;
use crate::PointsStore;

/// `[points] unpublished_release_seconds` unless set: ten minutes.
pub const DEFAULT_RELEASE_SECONDS: u64 = 600;
/// How often unpublished reservations are looked for at most seldom.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(30);
/// Reservations released per look-up at most (the next look-up takes the rest).
const BATCH: usize = 1_000;

/// Releases unpublished reservations older than `older_than` now and then every
/// half of that (at most every [`CHECK_INTERVAL`]) until `shutdown`.
pub async fn watch(store: PointsStore, older_than: Duration, shutdown: CancellationToken) {
    let interval = (older_than / 2).clamp(Duration::from_millis(100), CHECK_INTERVAL);
    loop {
        match store.release_unpublished(older_than, BATCH).await {
            Ok(released) => {
                for (customer, request, amount) in &released {
                    tracing::warn!(customer = %customer, request = %request, amount, "a reservation whose request was never published was released");
                }
                metrics::counter!(POINTS_UNPUBLISHED_RELEASED_TOTAL)
                    .increment(released.len() as u64);
                if released.len() == BATCH {
                    continue;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "looking for unpublished reservations failed; will retry")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
