//! `rns-bench [--short] [--only SCENARIO] [--json PATH]`: the benchmark of
//! `./scripts/bench`. Prints a Markdown table, writes the JSON report when asked, and exits non-zero when an
//! accepted message never reached a final state.
//!
//! `rns-bench --against-kannel [--short]`: SMPP throughput of RNS and of Kannel side
//! by side against one SMSC ([`rns_e2e::kannel`]).
use rns_e2e::bench::{self, BenchPlan};

#[tokio::main]
async fn main() {
    let mut short = false;
    let mut json_path = None;
    let mut only = None;
    let mut against_kannel = false;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--short" => short = true,
            "--against-kannel" => against_kannel = true,
            "--json" => json_path = Some(arguments.next().expect("--json takes a path")),
            "--only" => {
                only = Some(
                    arguments
                        .next()
                        .expect("--only takes bulk, single, mixed, priority or backlog"),
                )
            }
            other => {
                eprintln!("unknown argument {other:?}; usage: rns-bench [--short] [--only bulk|single|mixed|priority|backlog] [--json PATH] | --against-kannel [--short]");
                std::process::exit(2);
            }
        }
    }
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
    if let Some(only) = only {
        if !plan.scenarios.contains(&only.as_str()) {
            eprintln!("unknown scenario {only:?}; one of bulk, single, mixed, priority, backlog");
            std::process::exit(2);
        }
        plan.scenarios.retain(|scenario| *scenario == only);
    }
    let report = bench::run(plan).await;
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
