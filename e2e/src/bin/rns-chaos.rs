//! `rns-chaos [--short] [--smpp] [--messages N] [--seed S]`: the chaos scenario of
//! `./scripts/chaos` (`--smpp`: the SMS carriers speak SMPP to local SMSCs). Prints one closing line and exits non-zero when a message was
//! lost or delivered twice.
use rns_e2e::chaos::{self, ChaosPlan};

/// The RNS chaos scenario: services killed, carriers failing and a node restarted
/// under load; exits non-zero when a message was lost or delivered twice.
#[derive(Debug, clap::Parser)]
#[command(version)]
struct CommandLine {
    /// The short scenario (about a minute) instead of the full one.
    #[arg(long)]
    short: bool,
    /// The SMS carriers speak SMPP to local SMSCs.
    #[arg(long)]
    smpp: bool,
    /// Messages to send instead of the scenario's own number.
    #[arg(long, value_name = "N")]
    messages: Option<usize>,
    /// The seed of the fault schedule (default: now, in seconds).
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
}

#[tokio::main]
async fn main() {
    let CommandLine {
        short,
        smpp,
        messages,
        seed,
    } = rns_service::parse_command_line();
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or(1)
    });
    let mut plan = if short {
        ChaosPlan::short(seed)
    } else {
        ChaosPlan::full(seed)
    };
    if let Some(messages) = messages {
        plan.messages = messages;
    }
    plan.smpp = smpp;
    eprintln!(
        "chaos: seed {seed}, {} messages over {}",
        plan.messages,
        if smpp { "SMPP" } else { "HTTP" }
    );
    let report = rns_e2e::unless_stopped("chaos", chaos::run(plan)).await;
    eprintln!("chaos: {report:?}");
    println!("{}", report.line());
    if !report.passed() {
        std::process::exit(1);
    }
}
