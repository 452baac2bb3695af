//! `rns-chaos [--short] [--smpp] [--messages N] [--seed S]`: the chaos scenario of
//! `./scripts/chaos` (`--smpp`: the SMS carriers speak SMPP to local SMSCs). Prints one closing line and exits non-zero when a message was
//! lost or delivered twice.
use rns_e2e::chaos::{self, ChaosPlan};

#[tokio::main]
async fn main() {
    let mut short = false;
    let mut smpp = false;
    let mut messages = None;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(1);
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut number = |name: &str| -> u64 {
            arguments
                .next()
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match argument.as_str() {
            "--short" => short = true,
            "--smpp" => smpp = true,
            "--messages" => messages = Some(number("--messages") as usize),
            "--seed" => seed = number("--seed"),
            other => {
                eprintln!("unknown argument {other:?}; usage: rns-chaos [--short] [--smpp] [--messages N] [--seed S]");
                std::process::exit(2);
            }
        }
    }
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
    let report = chaos::run(plan).await;
    eprintln!("chaos: {report:?}");
    println!("{}", report.line());
    if !report.passed() {
        std::process::exit(1);
    }
}
