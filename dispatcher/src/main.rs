//! The `rns-dispatcher` process: SEND into the carrier work queues.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rns_service::process::run(rns_dispatcher::run).await
}
