//! The one `main` every background service shares: settings, the priority they run
//! at (`[runtime] background_niceness`), the runtime they size,
//! telemetry, the health endpoint bound *before* any work starts, the work itself,
//! and the ordered shutdown after SIGTERM.
//!
//! The health endpoint is bound first so that a port already taken ends the process
//! with an error a supervisor sees, instead of a service that works but can never
//! report itself ready.
use std::future::Future;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::{
    health, load_settings, runtime, shutdown, telemetry, LogSettings, NatsSettings, Readiness,
    RuntimeSettings,
};

/// What a background service tells [`run`] about its settings.
pub trait ServiceSettings: DeserializeOwned {
    /// Where its `/healthz`, `/readyz` and `/metrics` listen.
    fn health_listen(&self) -> &str;
    /// How it logs.
    fn log(&self) -> &LogSettings;
    /// Its runtime's size.
    fn runtime(&self) -> &RuntimeSettings;
    /// How it reaches NATS, and how it writes what it publishes.
    fn nats(&self) -> &NatsSettings;
}

/// Loads `S`, builds the runtime it asks for, starts logging and the health endpoint,
/// then runs `work` until it ends or, after SIGTERM or SIGINT, until the grace period
/// is over.
pub fn run<S, W, F, E>(work: W) -> anyhow::Result<()>
where
    S: ServiceSettings,
    W: FnOnce(S, Readiness, CancellationToken) -> F,
    F: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let settings: S = load_settings()?;
    runtime::lower_priority(settings.runtime().background_niceness)?;
    runtime::build(settings.runtime())?.block_on(serve(settings, work))
}

async fn serve<S, W, F, E>(settings: S, work: W) -> anyhow::Result<()>
where
    S: ServiceSettings,
    W: FnOnce(S, Readiness, CancellationToken) -> F,
    F: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    telemetry::init(settings.log());
    settings.nats().apply_payload_encoding();
    let listener = health::bind(settings.health_listen()).await?;
    let shutdown = shutdown::on_signal();
    let readiness = Readiness::default();
    let health = tokio::spawn(health::serve(listener, readiness.clone(), shutdown.clone()));
    let work = work(settings, readiness, shutdown.clone());
    if let Some(result) = shutdown::within_grace(work, &shutdown, shutdown::GRACE_PERIOD).await {
        result?;
    }
    shutdown.cancel();
    health.await??;
    Ok(())
}
