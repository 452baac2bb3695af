//! `rns-carrier-simulator --carrier <name> --listen <address>`: one simulated carrier.
use anyhow::Context;
use rns_carriers::simulator::{app, Knobs, Simulator};
use rns_service::{settings::LogSettings, shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(&LogSettings::default());
    let mut carrier = None;
    let mut listen = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--carrier" => carrier = arguments.next(),
            "--listen" => listen = arguments.next(),
            other => anyhow::bail!(
                "unknown argument {other:?}; usage: --carrier <name> --listen <address>"
            ),
        }
    }
    let carrier = carrier.context("--carrier <name> is required")?;
    let listen = listen.context("--listen <address> is required")?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(carrier, address = %listener.local_addr()?, "carrier simulator listening");
    let shutdown = shutdown::on_signal();
    axum::serve(listener, app(Simulator::new(&carrier, Knobs::default())))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
