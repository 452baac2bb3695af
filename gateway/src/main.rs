//! The `rns-gateway` process: the customer HTTP API. `rns-gateway openapi` prints
//! the API's OpenAPI document instead (for clients built from it).
use rns_service::{load_settings, shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("openapi") {
        let document = rns_gateway::openapi_document().to_pretty_json()?;
        std::io::Write::write_all(&mut std::io::stdout(), document.as_bytes())?;
        return Ok(());
    }
    let settings: rns_gateway::Settings = load_settings()?;
    telemetry::init(&settings.log);
    let shutdown = shutdown::on_signal();
    let work = rns_gateway::run(settings, shutdown.clone());
    if let Some(result) = shutdown::within_grace(work, &shutdown, shutdown::GRACE_PERIOD).await {
        result?;
    }
    Ok(())
}
