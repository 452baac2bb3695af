//! The `rns-carriers` process: a worker per configured carrier.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rns_service::process::run(rns_carriers::run).await
}
