//! The `rns-gateway` process: the customer HTTP API.
use rns_service::{load_settings, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: rns_gateway::Settings = load_settings()?;
    telemetry::init(&settings.log);
    rns_gateway::run(settings, shutdown::on_signal()).await?;
    Ok(())
}
