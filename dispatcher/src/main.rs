//! The `rns-dispatcher` process: SEND into the carrier work queues.
use rns_service::{health, load_settings, shutdown, telemetry, Readiness};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: rns_dispatcher::Settings = load_settings()?;
    telemetry::init(&settings.log);
    let shutdown = shutdown::on_signal();
    let readiness = Readiness::default();
    let health = tokio::spawn(health::serve(
        settings.dispatcher.health_listen.clone(),
        readiness.clone(),
        shutdown.clone(),
    ));
    let work = rns_dispatcher::run(settings, readiness, shutdown.clone());
    if let Some(result) = shutdown::within_grace(work, &shutdown, shutdown::GRACE_PERIOD).await {
        result?;
    }
    shutdown.cancel();
    health.await??;
    Ok(())
}
