//! The points crate's one error type.
#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unreadable ledger entry: {0}")]
    Undecodable(#[from] serde_json::Error),
    #[error("{0}")]
    Publish(#[from] rns_nats::PublishFailed),
    #[error("topology: {0}")]
    Topology(#[from] rns_nats::TopologyError),
    #[error("nats: {0}")]
    Nats(String),
    #[error("unreadable answer from redis: {0}")]
    Unreadable(String),
}
