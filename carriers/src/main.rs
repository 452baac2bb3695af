//! The `rns-carriers` process: a worker per configured carrier.

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

fn main() -> anyhow::Result<()> {
    rns_service::process::run(rns_carriers::run)
}
