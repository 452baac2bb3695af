//! The `rns-analytics` process: RESULTS into ClickHouse.

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

fn main() -> anyhow::Result<()> {
    rns_service::process::run(rns_analytics::run)
}
