//! RNS analytics: the RESULTS stream into ClickHouse, and status webhooks.
//!
//! The service ([`run`]) ensures the schema (`rns_results::schema`), then ingests
//! RESULTS in batches ([`ingest`]), drops expired days ([`retention`]), mirrors the
//! routing targets ([`targets`]) and delivers status webhooks ([`webhooks`]):
//! everything that follows results. The queries over what it writes live in
//! `rns_results`, next to the schema, which is all the gateway links.
#![forbid(unsafe_code)]

pub mod error;
pub mod ingest;
pub mod metric_names;
pub mod receivers;
pub mod retention;
pub mod rows;
pub mod targets;
pub mod webhooks;

use std::time::Duration;

use rns_nats::Topology;
use rns_service::{ClickHouseSettings, LogSettings, NatsSettings, Readiness, RedisSettings};
use rns_types::subjects::{
    ANALYTICS_CONSUMER, RESULTS_STREAM, WEBHOOKS_STREAM, WEBHOOK_CONSUMER, WEBHOOK_RETRY_CONSUMER,
};
use rns_types::CarrierCatalog;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub use error::AnalyticsError;

/// `rns-analytics results-json`: reads one RESULTS or carrier-queue payload (compact
/// or JSON, `rns_types::compact`) from `input` and writes it to `output` as JSON, for
/// reading those streams with the nats CLI (`nats stream view RESULTS --translate
/// 'rns-analytics results-json'`, the same for `CARRIER_KT`).
pub fn results_json(
    mut input: impl std::io::Read,
    mut output: impl std::io::Write,
) -> anyhow::Result<()> {
    let mut payload = Vec::new();
    input.read_to_end(&mut payload)?;
    if payload.starts_with(&rns_types::compact::jobs::JOBS_MAGIC) {
        match rns_types::wire::CarrierPayload::decode(&payload)? {
            rns_types::wire::CarrierPayload::One(job) => {
                serde_json::to_writer_pretty(&mut output, &job)?
            }
            rns_types::wire::CarrierPayload::Batch(jobs) => {
                serde_json::to_writer_pretty(&mut output, &jobs)?
            }
        }
    } else {
        let batch = rns_types::wire::ResultBatch::decode(&payload)?;
        serde_json::to_writer_pretty(&mut output, &batch)?;
    }
    writeln!(output)?;
    Ok(())
}

/// `[analytics]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AnalyticsSettings {
    /// Address of `/healthz` and `/readyz`.
    pub health_listen: String,
    /// Most RESULTS messages in one ClickHouse insert.
    pub batch_size: usize,
    /// Most bytes of RESULTS messages in one insert (and pulled at once): a RESULTS
    /// message holds up to a few hundred outcomes, so a count alone does not bound
    /// memory. Compact RESULTS (`rns_types::compact`) hold about three times the
    /// outcomes per byte that JSON did, hence 6 MiB where JSON had 16.
    pub batch_max_bytes: usize,
    /// Longest wait for a batch to fill, in milliseconds. Every insert is a new part
    /// in each table ClickHouse later merges, so this, not the rows, sets most of
    /// ClickHouse's work: a result is visible this much later at most.
    pub batch_linger_milliseconds: u64,
    /// Delay before a batch that failed to insert is redelivered, in milliseconds.
    pub retry_delay_milliseconds: u64,
    /// Longest an insert (and the acknowledgements after it) may take before the
    /// batch counts as failed and is redelivered, in milliseconds: a ClickHouse that
    /// stops answering must not hold ingestion forever. Below RESULTS' ack wait (30 s);
    /// an insert that landed after all is not counted twice (see [`ingest`]).
    pub insert_timeout_milliseconds: u64,
    /// Days of messages, events and statistics kept; older days are dropped whole.
    /// 0 keeps everything.
    pub retention_days: u32,
}

impl Default for AnalyticsSettings {
    fn default() -> Self {
        Self {
            health_listen: "127.0.0.1:8083".to_owned(),
            batch_size: 5_000,
            batch_max_bytes: 6 << 20,
            batch_linger_milliseconds: 500,
            retry_delay_milliseconds: 2_000,
            insert_timeout_milliseconds: 20_000,
            retention_days: 400,
        }
    }
}

/// Everything the analytics process reads from the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub nats: NatsSettings,
    pub clickhouse: ClickHouseSettings,
    pub redis: RedisSettings,
    pub webhooks: webhooks::WebhookSettings,
    pub carriers: Option<CarrierCatalog>,
    pub analytics: AnalyticsSettings,
    pub log: LogSettings,
    pub runtime: rns_service::RuntimeSettings,
}

impl rns_service::process::ServiceSettings for Settings {
    fn health_listen(&self) -> &str {
        &self.analytics.health_listen
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

pub use rns_results::{clickhouse_client, prepare};

/// Ensures the schema, then ingests RESULTS until `shutdown`.
pub async fn run(
    settings: Settings,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), AnalyticsError> {
    let catalog = settings
        .carriers
        .clone()
        .unwrap_or_else(CarrierCatalog::korean_default);
    let (_client, jetstream) = rns_nats::connect_with_topology(
        &settings.nats.url,
        "rns-analytics",
        &settings.nats.topology,
        &catalog,
    )
    .await?;

    loop {
        match prepare(&settings.clickhouse).await {
            Ok(_) => break,
            Err(error) => tracing::warn!(%error, "clickhouse not ready; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    let consumer = Topology::consumer(&jetstream, RESULTS_STREAM, ANALYTICS_CONSUMER).await?;
    let policy = ingest::BatchPolicy {
        batch_size: settings.analytics.batch_size,
        batch_max_bytes: settings.analytics.batch_max_bytes,
        batch_linger: Duration::from_millis(settings.analytics.batch_linger_milliseconds),
        retry_delay: Duration::from_millis(settings.analytics.retry_delay_milliseconds),
        insert_timeout: Duration::from_millis(settings.analytics.insert_timeout_milliseconds),
    };
    tokio::spawn(rns_service::metrics::watch_consumers(
        jetstream.clone(),
        [
            (RESULTS_STREAM, ANALYTICS_CONSUMER),
            (RESULTS_STREAM, WEBHOOK_CONSUMER),
            (WEBHOOKS_STREAM, WEBHOOK_RETRY_CONSUMER),
        ]
        .iter()
        .map(|(stream, consumer)| (stream.to_string(), consumer.to_string()))
        .collect(),
        shutdown.clone(),
    ));
    let webhook_worker = tokio::spawn(webhooks::run(
        jetstream.clone(),
        settings.redis.url.clone(),
        settings.webhooks.clone(),
        shutdown.clone(),
    ));
    let mirror = targets::mirror(
        jetstream.clone(),
        clickhouse_client(&settings.clickhouse),
        catalog.clone(),
        shutdown.clone(),
    );
    tokio::spawn(async move {
        if let Err(error) = mirror.await {
            tracing::error!(%error, "mirroring routing targets stopped");
        }
    });
    tokio::spawn(retention::run(
        clickhouse_client(&settings.clickhouse),
        settings.clickhouse.database.clone(),
        settings.analytics.retention_days,
        shutdown.clone(),
    ));
    readiness.set(true);
    tracing::info!("analytics ingesting results");
    let result = ingest::run(
        consumer,
        clickhouse_client(&settings.clickhouse),
        policy,
        shutdown.clone(),
    )
    .await;
    readiness.set(false);
    // Ingestion stopped; webhooks in progress finish before the process ends.
    shutdown.cancel();
    if let Err(error) = webhook_worker.await {
        tracing::error!(%error, "the webhook worker panicked");
    }
    result
}

#[cfg(test)]
mod results_json_tests {
    use rns_types::wire::{EventKind, MessageEvent, ResultBatch};
    use rns_types::{CustomerId, RequestId};

    #[test]
    fn a_compact_payload_prints_as_the_json_of_its_batch() {
        let batch = ResultBatch {
            customer_id: CustomerId::parse("acme").unwrap(),
            messages: Vec::new(),
            events: vec![MessageEvent {
                message_id: RequestId::generate().message_id(3),
                at_ms: 1_700_000_000_000,
                accepted_at_ms: 1_699_999_999_000,
                kind: EventKind::Delivered,
                carrier: None,
                hop: 1,
                attempt: 1,
                detail: "ok".to_owned(),
                points: Default::default(),
                trace: None,
            }],
        };
        let mut printed = Vec::new();
        super::results_json(batch.encode().as_slice(), &mut printed).unwrap();
        let printed: serde_json::Value = serde_json::from_slice(&printed).unwrap();
        assert_eq!(printed, serde_json::to_value(&batch).unwrap());
        assert!(super::results_json(&b"\0\x09"[..], &mut Vec::new()).is_err());
    }

    #[test]
    fn a_compact_carrier_payload_prints_as_the_json_of_its_jobs() {
        let job: rns_types::wire::CarrierJob = serde_json::from_value(serde_json::json!({
            "message_id": RequestId::generate().message_id(0).to_string(),
            "customer_id": "acme", "accepted_at_ms": 1, "carrier": "kt", "hop": 1,
            "message_type": "sms", "from": "0212345678", "to": "01012345678", "text": "안내"
        }))
        .unwrap();
        let mut batch = rns_types::compact::jobs::JobBatch::default();
        batch.push(&job);
        batch.push(&job);
        let mut printed = Vec::new();
        super::results_json(batch.take().as_slice(), &mut printed).unwrap();
        let printed: serde_json::Value = serde_json::from_slice(&printed).unwrap();
        assert_eq!(printed, serde_json::to_value([&job, &job]).unwrap());
    }
}
