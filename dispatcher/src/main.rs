//! The `rns-dispatcher` process: SEND into the carrier work queues.

#[global_allocator]
static ALLOCATOR: rns_service::Allocator = rns_service::ALLOCATOR;

fn main() -> anyhow::Result<()> {
    rns_service::process::run(rns_dispatcher::run)
}
