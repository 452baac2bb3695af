//! The `rns-gateway` process: the customer HTTP API. `rns-gateway openapi` prints
//! the API's OpenAPI document instead (for clients built from it).
use rns_service::{
    load_settings_from, parse_command_line, runtime, shutdown, telemetry, ConfigArguments,
};

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

/// The RNS gateway: the customer HTTP API.
#[derive(Debug, clap::Parser)]
#[command(version)]
struct CommandLine {
    #[command(flatten)]
    config: ConfigArguments,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints the API's OpenAPI 3.1 document and exits.
    Openapi,
}

fn main() -> anyhow::Result<()> {
    let command_line: CommandLine = parse_command_line();
    if let Some(Command::Openapi) = command_line.command {
        let document = rns_gateway::openapi_document().to_pretty_json()?;
        std::io::Write::write_all(&mut std::io::stdout(), document.as_bytes())?;
        return Ok(());
    }
    let settings: rns_gateway::Settings = load_settings_from(&command_line.config)?;
    runtime::build(&settings.runtime)?.block_on(serve(settings))
}

async fn serve(settings: rns_gateway::Settings) -> anyhow::Result<()> {
    telemetry::init(&settings.log);
    settings.nats.apply_payload_encoding();
    let shutdown = shutdown::on_signal();
    let work = rns_gateway::run(settings, shutdown.clone());
    if let Some(result) = shutdown::within_grace(work, &shutdown, shutdown::GRACE_PERIOD).await {
        result?;
    }
    Ok(())
}
