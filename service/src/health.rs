//! Health endpoints for services whose work is not HTTP (dispatcher, carriers,
//! analytics): `GET /healthz` answers 200 while the process runs; `GET /readyz`
//! answers 200 only once the service has connected and is taking work, and 503 after
//! shutdown began, so an orchestrator stops routing to it; `GET /metrics` is the
//! process's Prometheus metrics.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;

/// Whether a service is ready; shared by the service and its health endpoint.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Liveness: answers 200 while the process serves HTTP.
pub const LIVE_PATH: &str = "/healthz";
/// Readiness: 200 once the service does its work, 503 before and while stopping;
/// what Nomad checks, Compose health checks and load balancers probe.
pub const READY_PATH: &str = "/readyz";
/// Prometheus metrics.
pub const METRICS_PATH: &str = "/metrics";

/// The `/healthz`, `/readyz` and `/metrics` routes.
pub fn router(readiness: Readiness) -> Router {
    Router::new()
        .route(LIVE_PATH, get(|| async { "ok" }))
        .route(METRICS_PATH, get(|| async { crate::metrics::render() }))
        .route(
            READY_PATH,
            get(move || {
                let ready = readiness.is_ready();
                async move {
                    if ready {
                        (StatusCode::OK, "ready")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
                    }
                }
            }),
        )
}

/// Binds the health endpoint's address, so a taken port fails the process at start.
pub async fn bind(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!("the health endpoint cannot listen on {listen}: {error}"),
            )
        })?;
    tracing::info!(address = %listener.local_addr()?, "health endpoint listening");
    Ok(listener)
}

/// Serves [`router`] on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Install the metrics recorder before the service records anything.
    crate::metrics::handle();
    axum::serve(listener, router(readiness))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
