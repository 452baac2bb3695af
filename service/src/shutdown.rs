//! The shutdown signal: SIGTERM (Nomad, Docker, systemd) or SIGINT (a terminal), and
//! the grace period that bounds what happens after it.
use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// How long a service may finish in-flight work after the shutdown signal.
pub const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Runs `work` to completion, unless shutdown was signalled and `grace` has passed
/// since: then `work` is dropped and `None` returned. Work abandoned this way was
/// not acknowledged, so JetStream redelivers it; nothing is lost.
pub async fn within_grace<F: Future>(
    work: F,
    shutdown: &CancellationToken,
    grace: Duration,
) -> Option<F::Output> {
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        output = work => Some(output),
        _ = deadline => {
            tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; abandoning in-flight work");
            None
        }
    }
}

/// A token cancelled when the process receives SIGTERM or SIGINT.
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
        }
        cancel.cancel();
    });
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_that_outlives_the_grace_period_is_abandoned() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let never = std::future::pending::<()>();
        assert_eq!(
            within_grace(never, &shutdown, Duration::from_secs(10)).await,
            None
        );
        let quick = async { 7 };
        assert_eq!(
            within_grace(quick, &shutdown, Duration::from_secs(10)).await,
            Some(7)
        );
    }
}
