//! `rns-carrier-simulator --carrier <name> --listen <address>`: one simulated carrier.
use rns_carriers::simulator::{app, Knobs, Simulator};
use rns_service::{settings::LogSettings, shutdown, telemetry};

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

/// One simulated carrier: takes submits over HTTP, answers and reports as its knobs
/// say (`PUT /v1/knobs`).
#[derive(Debug, clap::Parser)]
#[command(version)]
struct CommandLine {
    /// The carrier it plays (`kt`, `skt`, ...).
    #[arg(long)]
    carrier: String,
    /// The address it listens on, `host:port`.
    #[arg(long)]
    listen: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let CommandLine { carrier, listen } = rns_service::parse_command_line();
    telemetry::init(&LogSettings::default());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(carrier, address = %listener.local_addr()?, "carrier simulator listening");
    let shutdown = shutdown::on_signal();
    axum::serve(listener, app(Simulator::new(&carrier, Knobs::default())))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
