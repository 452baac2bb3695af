//! The `rns-analytics` process: RESULTS into ClickHouse.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    rns_service::process::run(rns_analytics::run).await
}
