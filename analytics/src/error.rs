//! The analytics error type.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("nats: {0}")]
    Nats(String),
    #[error("redis: {0}")]
    Redis(String),
    #[error("http client: {0}")]
    Http(String),
    #[error("topology: {0}")]
    Topology(#[from] rns_nats::TopologyError),
    #[error("results: {0}")]
    Results(#[from] rns_results::ResultsError),
    #[error("{0} timed out")]
    TimedOut(&'static str),
}
