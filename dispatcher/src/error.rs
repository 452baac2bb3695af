//! The dispatcher's error type and what each error does to the SEND message.
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("undecodable send request: {0}")]
    Undecodable(#[from] serde_json::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("directory: {0}")]
    Directory(#[from] rns_nats::DirectoryError),
    #[error("{0}")]
    Publish(#[from] rns_nats::PublishFailed),
    #[error("nats: {0}")]
    Nats(String),
    #[error("topology: {0}")]
    Topology(#[from] rns_nats::TopologyError),
    #[error("settings: {0}")]
    Settings(String),
    #[error("points: {0}")]
    Points(#[from] rns_points::PointsError),
}

/// What to do with the input message after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Redeliver after the delay: the cause is outside the message and may pass.
    RetryAfter(Duration),
    /// Never redeliver: no retry could succeed.
    Terminate,
}

impl DispatchError {
    pub fn disposition(&self) -> Disposition {
        match self {
            DispatchError::Undecodable(_) => Disposition::Terminate,
            DispatchError::Redis(_)
            | DispatchError::Directory(_)
            | DispatchError::Publish(_)
            | DispatchError::Nats(_)
            | DispatchError::Topology(_)
            | DispatchError::Settings(_)
            | DispatchError::Points(_) => Disposition::RetryAfter(Duration::from_secs(1)),
        }
    }
}
