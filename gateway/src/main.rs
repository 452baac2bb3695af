//! The `rns-gateway` process: the customer HTTP API.
use rns_service::{load_settings, shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: rns_gateway::Settings = load_settings()?;
    telemetry::init(&settings.log);
    let shutdown = shutdown::on_signal();
    let work = rns_gateway::run(settings, shutdown.clone());
    if let Some(result) = shutdown::within_grace(work, &shutdown, shutdown::GRACE_PERIOD).await {
        result?;
    }
    Ok(())
}
