//! The `rns-carriers` process: a worker per configured carrier.

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rns_service::process::run(rns_carriers::run).await
}
