//! JetStream for RNS: the topology as code and the publish discipline.
//!
//! [`topology`] declares every stream, consumer and KV bucket once and creates them
//! idempotently at every service's start. [`publish`] is the one way RNS publishes:
//! with a `Nats-Msg-Id`, pipelined, and awaiting every acknowledgement before the
//! caller may treat the output as durable. Server configurations live in `nats/config/`.
#![forbid(unsafe_code)]

pub mod acknowledge;
pub mod carrier_health;
pub mod directory;
pub mod documents;
pub mod follow;
pub mod polled;
pub mod publish;
pub mod topology;

pub use acknowledge::terminate_with_reason;
pub use carrier_health::{HealthStore, HealthView};
pub use directory::{CustomerDirectory, DirectoryError};
pub use documents::{DocumentError, Documents};
pub use follow::follow_bucket;
pub use publish::{
    publish_all, publish_schedule, publish_scheduled, MessageSchedule, Outbound, PublishFailed,
    MAX_ACKS_IN_FLIGHT,
};
pub use topology::{Topology, TopologyError, TopologySettings, RECEIPT_CORRELATIONS_MAX_AGE};

/// Connects as `name` and ensures the topology for the catalogue's carriers: what
/// every service does first.
pub async fn connect_with_topology(
    url: &str,
    name: &str,
    settings: &TopologySettings,
    catalog: &rns_types::CarrierCatalog,
) -> Result<(async_nats::Client, async_nats::jetstream::Context), TopologyError> {
    let client = connect(url, name).await.map_err(|error| TopologyError {
        what: format!("connection to {url}"),
        reason: error.to_string(),
    })?;
    let jetstream = async_nats::jetstream::new(client.clone());
    Topology::for_catalog(settings.clone(), catalog)
        .ensure(&jetstream)
        .await?;
    Ok((client, jetstream))
}

/// Connects to NATS with the given connection name (shown by `nats server report
/// connections`), retrying the initial connect so services may start before the
/// server does. `url` may list several servers of a cluster, separated by commas;
/// the client reconnects to another when its server goes away.
pub async fn connect(
    url: &str,
    name: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    let servers: Vec<&str> = url
        .split(',')
        .map(str::trim)
        .filter(|server| !server.is_empty())
        .collect();
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(servers)
        .await
}
