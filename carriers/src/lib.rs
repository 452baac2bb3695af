//! RNS carriers: delivery to relay providers.
//!
//! [`run`] starts one [`worker::Worker`] per configured carrier, each pulling its own
//! work queue (`CARRIER_<NAME>`, consumer `carrier-<name>`) through that carrier's
//! protocol adapter ([`http`]). Carriers that report delivery later post receipts to
//! the receipts listener, which [`receipts`] correlates with what they accepted.
//! [`simulator`] is a carrier simulator speaking the HTTP protocol, used by
//! `./scripts/up`, the tests and the benchmarks.
#![forbid(unsafe_code)]

pub mod circuit;
pub mod failover;
pub mod http;
pub mod images;
pub mod metric_names;
pub mod outcome;
pub mod pacing;
pub mod receipts;
pub mod results;
pub mod simulator;
pub mod smpp;
pub mod worker;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rns_nats::{HealthStore, HealthView, Topology};
use rns_service::{LogSettings, NatsSettings, Readiness, RedisSettings, Secret};
use rns_types::carrier::CarrierEntry;
use rns_types::subjects::{
    carrier_lane_consumer, carrier_stream, ADVISORIES_STREAM, FAILOVER_CONSUMER, RECEIPTS_STREAM,
    RECEIPT_CONSUMER,
};
use rns_types::{CarrierCatalog, CarrierId, Channel, Priority};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::circuit::{BreakerPolicy, CircuitBreaker};
use crate::failover::Failover;
use crate::http::{HttpCarrier, Submitter};
use crate::results::ResultSink;
use crate::worker::{Worker, WorkerPolicy};

/// The protocol a carrier speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CarrierKind {
    /// JSON over HTTP ([`http`]); `endpoint` names it.
    #[default]
    Http,
    /// SMPP 3.4 ([`smpp`]); `smpp = { … }` names the SMSC.
    Smpp,
}

/// One `[[carriers]]` entry as the carriers service reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct CarrierSettings {
    pub id: CarrierId,
    pub channel: Channel,
    #[serde(default)]
    pub kind: CarrierKind,
    /// Base URL of the carrier's HTTP API (`kind = "http"`).
    #[serde(default)]
    pub endpoint: String,
    /// The SMSC and the bind (`kind = "smpp"`).
    #[serde(default)]
    pub smpp: Option<smpp::SmppSettings>,
    /// Submits in flight at once to this carrier.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long a submit may take before it counts as ambiguous.
    #[serde(default = "default_request_timeout_milliseconds")]
    pub request_timeout_milliseconds: u64,
    /// Submits gathered into one batch request at most, for carriers with a batch
    /// endpoint (see [`http`]); 1 submits each message on its own.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Batch requests in flight at once.
    #[serde(default = "default_batches_in_flight")]
    pub batches_in_flight: usize,
    /// What the recovery probe GETs while the circuit is open; `{endpoint}/healthz`
    /// when absent.
    #[serde(default)]
    pub health_url: Option<String>,
    /// The rate contracted with the carrier, in submits per second, shared by every
    /// carriers process ([`pacing`]); none when absent (the operator may still set
    /// one at run time).
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    /// The token the carrier presents when it posts receipts
    /// (`Authorization: Bearer …`); a carrier without one posts none.
    #[serde(default)]
    pub receipt_token: Option<Secret>,
}

fn default_batch_size() -> usize {
    1
}

fn default_batches_in_flight() -> usize {
    4
}

fn default_concurrency() -> usize {
    64
}

fn default_request_timeout_milliseconds() -> u64 {
    5_000
}

/// The simulators that `./scripts/up` starts: KT, SKT, LG U+, KE, CNS on 9101-9105.
pub fn default_carriers() -> Vec<CarrierSettings> {
    CarrierCatalog::korean_default()
        .entries()
        .iter()
        .enumerate()
        .map(|(index, entry)| CarrierSettings {
            id: entry.id.clone(),
            channel: entry.channel,
            kind: CarrierKind::Http,
            smpp: None,
            endpoint: format!("http://127.0.0.1:{}", 9101 + index),
            concurrency: default_concurrency(),
            request_timeout_milliseconds: default_request_timeout_milliseconds(),
            // The simulators take batches.
            batch_size: 100,
            batches_in_flight: default_batches_in_flight(),
            health_url: None,
            rate_per_second: None,
            receipt_token: None,
        })
        .collect()
}

/// `[carrier_workers]` settings shared by every worker.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    pub health_listen: String,
    /// Where carriers post delivery receipts ([`receipts::intake`]).
    pub receipts_listen: String,
    /// Nak delays for retryable failures, by attempt, in milliseconds.
    pub retry_backoff_milliseconds: Vec<u64>,
    /// How long a message whose submit went unanswered is asked again on its carrier
    /// (never another), and how long the receipt of a message a carrier accepted is
    /// awaited, before it ends `unknown`, charged. At most 7 days.
    pub receipt_deadline_seconds: u64,
    /// How often the carriers' queues are searched for jobs left at MaxDeliver
    /// whose advisory was lost ([`Failover::sweep`]); such a job moves on within two
    /// of these.
    pub max_deliver_sweep_seconds: u64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            health_listen: "127.0.0.1:8082".to_owned(),
            receipts_listen: "127.0.0.1:8084".to_owned(),
            retry_backoff_milliseconds: vec![250, 1_000, 2_000, 5_000],
            receipt_deadline_seconds: 3_600,
            max_deliver_sweep_seconds: 60,
        }
    }
}

/// Everything the carriers process reads from the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub nats: NatsSettings,
    /// Where the carriers' shared rate budgets live.
    pub redis: RedisSettings,
    pub carriers: Option<Vec<CarrierSettings>>,
    pub carrier_workers: WorkerSettings,
    pub log: LogSettings,
    pub runtime: rns_service::RuntimeSettings,
}

impl rns_service::process::ServiceSettings for Settings {
    fn health_listen(&self) -> &str {
        &self.carrier_workers.health_listen
    }

    fn log(&self) -> &LogSettings {
        &self.log
    }

    fn runtime(&self) -> &rns_service::RuntimeSettings {
        &self.runtime
    }

    fn nats(&self) -> &NatsSettings {
        &self.nats
    }
}

/// The carriers service failed to start.
#[derive(Debug, thiserror::Error)]
pub enum CarriersError {
    #[error("nats: {0}")]
    Nats(String),
    #[error("topology: {0}")]
    Topology(#[from] rns_nats::TopologyError),
    #[error("directory: {0}")]
    Directory(#[from] rns_nats::DirectoryError),
    #[error("failover: {0}")]
    Failover(#[from] failover::FailoverError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("receipts: {0}")]
    Receipts(#[from] receipts::ReceiptError),
    #[error("receipt token of {carrier}: {source}")]
    ReceiptToken {
        carrier: CarrierId,
        source: rns_service::SecretError,
    },
    #[error("carrier {carrier}: {reason}")]
    Settings { carrier: CarrierId, reason: String },
    #[error("the receipt deadline may be at most {most} seconds, not {given}")]
    ReceiptDeadline { most: u64, given: u64 },
    #[error("the receipts listener cannot listen on {address}: {source}")]
    ReceiptsListener {
        address: String,
        source: std::io::Error,
    },
    #[error("worker for {carrier} failed: {reason}")]
    Worker { carrier: CarrierId, reason: String },
}

/// Starts a worker per carrier and runs them until `shutdown`.
pub async fn run(
    settings: Settings,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), CarriersError> {
    let carriers = settings.carriers.clone().unwrap_or_else(default_carriers);
    let receipt_deadline = Duration::from_secs(settings.carrier_workers.receipt_deadline_seconds);
    let longest_deadline =
        rns_nats::RECEIPT_CORRELATIONS_MAX_AGE - Duration::from_secs(24 * 60 * 60);
    if receipt_deadline > longest_deadline {
        return Err(CarriersError::ReceiptDeadline {
            most: longest_deadline.as_secs(),
            given: receipt_deadline.as_secs(),
        });
    }
    let mut receipt_tokens = std::collections::HashMap::new();
    for carrier in &carriers {
        if let Some(token) = &carrier.receipt_token {
            let token = token
                .reveal()
                .map_err(|source| CarriersError::ReceiptToken {
                    carrier: carrier.id.clone(),
                    source,
                })?;
            receipt_tokens.insert(carrier.id.clone(), token);
        }
    }
    // Bound before any work starts, like the health endpoint: a taken port ends the
    // process at once.
    let receipts_address = settings.carrier_workers.receipts_listen.clone();
    let receipts_listener = tokio::net::TcpListener::bind(&receipts_address)
        .await
        .map_err(|source| CarriersError::ReceiptsListener {
            address: receipts_address.clone(),
            source,
        })?;
    let catalog = CarrierCatalog::new(
        carriers
            .iter()
            .map(|carrier| CarrierEntry {
                id: carrier.id.clone(),
                channel: carrier.channel,
            })
            .collect(),
    );
    let (client, jetstream) = rns_nats::connect_with_topology(
        &settings.nats.url,
        "rns-carriers",
        &settings.nats.topology,
        &catalog,
    )
    .await?;
    let max_deliver =
        u16::try_from(settings.nats.topology.carrier_max_deliver.max(1)).unwrap_or(u16::MAX);
    let retry_backoff = settings
        .carrier_workers
        .retry_backoff_milliseconds
        .iter()
        .map(|milliseconds| Duration::from_millis(*milliseconds))
        .collect();
    let stop = shutdown.child_token();
    let health = HealthView::watch(&jetstream, stop.clone()).await?;
    let publisher = HealthStore::open(&jetstream).await?;
    let failover =
        Failover::new(jetstream.clone(), catalog.clone(), health, receipt_deadline).await?;
    let images = images::ImageStore::new(
        jetstream
            .get_object_store(rns_types::subjects::MMS_IMAGES_BUCKET)
            .await
            .map_err(|error| CarriersError::Nats(format!("image store: {error}")))?,
    );
    let rates =
        redis::aio::ConnectionManager::new(redis::Client::open(settings.redis.url.as_str())?)
            .await?;
    let total_concurrency: usize = carriers.iter().map(|carrier| carrier.concurrency).sum();
    let (results, results_drained) = ResultSink::start(jetstream.clone(), total_concurrency);
    let receipts = receipts::Receipts::open(
        jetstream.clone(),
        results.clone(),
        failover.clone(),
        receipt_deadline,
    )
    .await?;
    let mut workers = tokio::task::JoinSet::new();
    {
        let consumer = Topology::consumer(&jetstream, RECEIPTS_STREAM, RECEIPT_CONSUMER).await?;
        let receipts = receipts.clone();
        let stop = stop.clone();
        workers.spawn(async move {
            receipts
                .run(consumer, stop)
                .await
                .map_err(|error| CarriersError::Nats(format!("receipts: {error}")))
        });
    }
    {
        tracing::info!(address = %receipts_address, carriers = receipt_tokens.len(), "receipts listening");
        let intake = receipts::intake::Intake::new(jetstream.clone(), receipt_tokens);
        let stop = stop.clone();
        workers.spawn(async move {
            intake
                .serve(receipts_listener, stop)
                .await
                .map_err(|source| CarriersError::ReceiptsListener {
                    address: receipts_address,
                    source,
                })
        });
    }
    {
        let consumer = Topology::consumer(&jetstream, ADVISORIES_STREAM, FAILOVER_CONSUMER).await?;
        let failover = failover.clone();
        let stop = stop.clone();
        workers.spawn(async move {
            failover
                .run(consumer, stop)
                .await
                .map_err(CarriersError::from)
        });
    }
    let lanes: Vec<(String, String)> = carriers
        .iter()
        .flat_map(|carrier| {
            Priority::ALL.map(|priority| {
                (
                    carrier_stream(&carrier.id),
                    carrier_lane_consumer(&carrier.id, priority),
                )
            })
        })
        .collect();
    tokio::spawn(failover.clone().sweep(
        lanes.clone(),
        Duration::from_secs(settings.carrier_workers.max_deliver_sweep_seconds.max(1)),
        stop.clone(),
    ));
    let watched = lanes
        .into_iter()
        .chain([
            (ADVISORIES_STREAM.to_owned(), FAILOVER_CONSUMER.to_owned()),
            (RECEIPTS_STREAM.to_owned(), RECEIPT_CONSUMER.to_owned()),
        ])
        .collect();
    tokio::spawn(rns_service::metrics::watch_consumers(
        jetstream.clone(),
        watched,
        stop.clone(),
    ));
    // SMPP sessions unbind only once the workers finished what they hold.
    let sessions_stop = CancellationToken::new();
    let mut sessions = Vec::new();
    for carrier in carriers {
        let mut lanes = Vec::with_capacity(Priority::ALL.len());
        for priority in Priority::ALL {
            let consumer = Topology::consumer(
                &jetstream,
                &carrier_stream(&carrier.id),
                &carrier_lane_consumer(&carrier.id, priority),
            )
            .await?;
            lanes.push((priority, consumer));
        }
        let submitter = match carrier.kind {
            CarrierKind::Http => {
                if carrier.endpoint.is_empty() {
                    return Err(CarriersError::Settings {
                        carrier: carrier.id.clone(),
                        reason: "an HTTP carrier needs its endpoint".to_owned(),
                    });
                }
                let protocol = HttpCarrier::new(
                    &carrier.endpoint,
                    Duration::from_millis(carrier.request_timeout_milliseconds),
                    carrier.concurrency,
                );
                let protocol = match &carrier.health_url {
                    Some(url) => protocol.with_health_url(url),
                    None => protocol,
                };
                Submitter::new(
                    protocol,
                    carrier.batch_size,
                    carrier.batches_in_flight,
                    carrier.concurrency,
                )
            }
            CarrierKind::Smpp => {
                let settings = carrier
                    .smpp
                    .as_ref()
                    .ok_or_else(|| CarriersError::Settings {
                        carrier: carrier.id.clone(),
                        reason: "an SMPP carrier needs smpp = { host, port, system_id, password }"
                            .to_owned(),
                    })?;
                let password =
                    settings
                        .password
                        .reveal()
                        .map_err(|error| CarriersError::Settings {
                            carrier: carrier.id.clone(),
                            reason: format!("SMPP password: {error}"),
                        })?;
                let (protocol, tasks) = smpp::SmppCarrier::start(
                    carrier.id.clone(),
                    settings,
                    password,
                    Duration::from_millis(carrier.request_timeout_milliseconds),
                    jetstream.clone(),
                    sessions_stop.clone(),
                );
                sessions.extend(tasks);
                Submitter::Smpp(protocol)
            }
        };
        let worker = Worker {
            images: images.clone(),
            submitter,
            carrier: carrier.id.clone(),
            client: client.clone(),
            policy: WorkerPolicy {
                concurrency: carrier.concurrency,
                max_deliver,
                retry_backoff: Vec::clone(&retry_backoff),
                ack_wait: lanes
                    .first()
                    .map(|(_, consumer)| consumer.cached_info().config.ack_wait)
                    .unwrap_or(Duration::from_secs(30)),
            },
            breaker: Mutex::new(CircuitBreaker::new(
                BreakerPolicy::default(),
                Instant::now(),
            )),
            health: publisher.clone(),
            failover: failover.clone(),
            results: results.clone(),
            pacer: pacing::Pacer::new(
                rates.clone(),
                carrier.id.clone(),
                carrier.rate_per_second.unwrap_or(0),
            ),
            receipts: receipts.clone(),
            circuit_publishing: tokio::sync::Mutex::new(()),
            in_hand: Mutex::default(),
        };
        let stop = stop.clone();
        workers.spawn(async move {
            worker
                .run(lanes, stop)
                .await
                .map_err(|error| CarriersError::Worker {
                    carrier: carrier.id.clone(),
                    reason: error.to_string(),
                })
        });
    }
    // Once the workers (and the receipts consumer, which records outcomes too) are
    // gone, the last outcomes are published and the drain ends: no handle on the
    // sink may outlive them here, or the drain would wait out the grace period.
    drop(receipts);
    drop(results);
    readiness.set(true);
    // A worker that fails stops them all, so the process exits and its supervisor
    // restarts it, rather than running on with a carrier silently unserved.
    let mut failure = None;
    while let Some(finished) = workers.join_next().await {
        if let Ok(Err(error)) = finished {
            tracing::error!(%error, "carrier worker failed; stopping");
            failure.get_or_insert(error);
            stop.cancel();
        }
    }
    readiness.set(false);
    sessions_stop.cancel();
    futures::future::join_all(sessions).await;
    let _ = results_drained.await;
    client
        .flush()
        .await
        .map_err(|error| CarriersError::Nats(error.to_string()))?;
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use figment::providers::Format;

    use super::*;

    /// `./scripts/up` runs the carriers service with the repository's `rns.toml`.
    #[test]
    fn the_repositorys_rns_toml_configures_the_carriers_service() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../rns.toml");
        let settings: Settings = figment::Figment::new()
            .merge(figment::providers::Toml::file_exact(path))
            .extract()
            .expect("rns.toml reads as the carriers' settings");
        let carriers = settings.carriers.expect("rns.toml lists the carriers");
        assert_eq!(carriers.len(), 5);
        for carrier in &carriers {
            assert_eq!(carrier.kind, CarrierKind::Http, "{}", carrier.id);
            assert!(!carrier.endpoint.is_empty(), "{}", carrier.id);
            let token = carrier.receipt_token.as_ref().map(Secret::reveal);
            assert!(
                matches!(token, Some(Ok(_))),
                "{} takes receipts in development",
                carrier.id
            );
        }
        assert_eq!(settings.carrier_workers.receipts_listen, "127.0.0.1:8084");
        assert_eq!(settings.carrier_workers.receipt_deadline_seconds, 3_600);
    }

    /// `./scripts/up --smpp` merges `deploy/smpp/carriers.toml` over it.
    #[test]
    fn the_smpp_overlay_puts_the_sms_carriers_on_the_local_smscs() {
        let directory = env!("CARGO_MANIFEST_DIR");
        let settings: Settings = figment::Figment::new()
            .merge(figment::providers::Toml::file_exact(format!(
                "{directory}/../rns.toml"
            )))
            .merge(figment::providers::Toml::file_exact(format!(
                "{directory}/../deploy/smpp/carriers.toml"
            )))
            .extract()
            .expect("the overlay reads as the carriers' settings");
        let carriers = settings.carriers.expect("the overlay lists the carriers");
        let kinds: Vec<(String, CarrierKind, Option<u16>)> = carriers
            .iter()
            .map(|carrier| {
                let port = carrier.smpp.as_ref().map(|smpp| smpp.port);
                (carrier.id.to_string(), carrier.kind, port)
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("kt".into(), CarrierKind::Smpp, Some(2775)),
                ("skt".into(), CarrierKind::Smpp, Some(2776)),
                ("lgu".into(), CarrierKind::Smpp, Some(2777)),
                ("ke".into(), CarrierKind::Http, None),
                ("cns".into(), CarrierKind::Http, None),
            ]
        );
        assert_eq!(settings.carrier_workers.receipts_listen, "127.0.0.1:8084");
    }
}
