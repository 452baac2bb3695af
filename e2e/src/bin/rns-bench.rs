//! `rns-bench [--short] [--only SCENARIO,…] [--paced-rate REQUESTS] [--json PATH]`: the benchmark of
//! `./scripts/bench`. Prints a Markdown table, writes the JSON report when asked, and exits non-zero when an
//! accepted message never reached a final state.
//!
//! `rns-bench --against-kannel [--short]`: SMPP throughput of RNS and of Kannel side
//! by side against one SMSC ([`rns_e2e::kannel`]).
use rns_e2e::bench::{self, BenchPlan};

/// The RNS benchmark: every scenario against a fresh system on this machine, or RNS
/// and Kannel side by side.
#[derive(Debug, clap::Parser)]
#[command(version)]
struct CommandLine {
    /// A few seconds per scenario instead of the full run.
    #[arg(long)]
    short: bool,
    /// These scenarios only (comma-separated, e.g. `single,kannel`).
    #[arg(long, value_delimiter = ',', value_parser = bench::SCENARIOS)]
    only: Vec<String>,
    /// The paced scenario's requests per second (10,000 unless given).
    #[arg(long, value_name = "REQUESTS")]
    paced_rate: Option<u32>,
    /// Where to write the JSON report.
    #[arg(long, value_name = "PATH")]
    json: Option<String>,
    /// SMPP throughput of RNS and of Kannel against one SMSC instead.
    #[arg(long, conflicts_with_all = ["only", "json"])]
    against_kannel: bool,
}

#[tokio::main]
async fn main() {
    let CommandLine {
        short,
        only,
        paced_rate,
        json: json_path,
        against_kannel,
    } = rns_service::parse_command_line();
    if against_kannel {
        let (requests, clients) = if short { (2_000, 32) } else { (50_000, 128) };
        let sides = rns_e2e::kannel::run(requests, clients).await;
        println!("{}", rns_e2e::kannel::table(&sides));
        return;
    }
    let mut plan = if short {
        BenchPlan::short()
    } else {
        BenchPlan::full()
    };
    if let Some(rate) = paced_rate {
        plan.paced_rate = rate;
    }
    if !only.is_empty() {
        plan.scenarios
            .retain(|scenario| only.iter().any(|name| name == scenario));
    }
    let report = rns_e2e::unless_stopped("bench", bench::run(plan)).await;
    println!("{}", report.table());
    if let Some(path) = json_path {
        let text = serde_json::to_string_pretty(&report.json()).expect("the report serialises");
        std::fs::write(&path, text).unwrap_or_else(|error| panic!("{path}: {error}"));
    }
    if !report.passed() {
        eprintln!("bench: accepted messages were lost");
        std::process::exit(1);
    }
}
