//! The analytics error type.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("nats: {0}")]
    Nats(String),
    #[error("topology: {0}")]
    Topology(#[from] rns_nats::TopologyError),
}
