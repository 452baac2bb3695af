//! The results error type.
#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}
