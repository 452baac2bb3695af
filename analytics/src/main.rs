//! The `rns-analytics` process: RESULTS into ClickHouse. `rns-analytics results-json`
//! prints a RESULTS payload read from stdin as JSON instead ([`rns_analytics::results_json`]).

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("results-json") {
        return rns_analytics::results_json(std::io::stdin().lock(), std::io::stdout().lock());
    }
    rns_service::process::run(rns_analytics::run)
}
