//! Every stream, consumer and KV bucket of RNS, declared once.
//!
//! | name | kind | subjects | retention | read by |
//! |---|---|---|---|---|
//! | `SEND` | stream | `send.<customer>` | work queue | consumer `dispatcher` |
//! | `SCHEDULES` | stream | `sched.<request>` (schedules), `due.<customer>` (due sends) | work queue, schedules | consumer `dispatcher-due` (`due.>` only) |
//! | `CARRIER_<NAME>` | stream, one per carrier | `carrier.<name>`, `carrier.<name>.high`, `carrier.<name>.bulk` (the lanes) | work queue | consumers `carrier-<name>`, `carrier-<name>-high`, `carrier-<name>-bulk` |
//! | `RESULTS` | stream | `result.<customer>` | interest | consumers `analytics`, `points`, `webhooks` |
//! | `WEBHOOKS` | stream | `webhook_retry.<delivery>.<attempt>` (schedules), `webhook.<customer>` (due retries) | work queue, schedules | consumer `webhook-retries` (`webhook.>` only) |
//! | `RECEIPTS` | stream | `receipt.<carrier>.<reference>` (receipts), `receipt.<carrier>.deadline.<message>.<hop>` (due deadlines), `receipt_deadline.<carrier>.<message>.<hop>` (schedules) | work queue, schedules | consumer `receipts` (`receipt.>` only) |
//! | `INBOUND` | stream | `inbound.<carrier>` (messages from handsets) | work queue | consumer `inbound` (gateway) |
//! | `LEDGER` | stream | `ledger.<customer>` | limits (kept) | operators, rebuilds |
//! | `AUDIT` | stream | `audit.customer.<customer>`, `audit.operator` | limits (kept) | gateway (`GET /v1/admin/audit`) |
//! | `ADVISORIES` | stream | `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>` | work queue | consumer `failover` |
//! | `customers` | KV bucket | customer id | history 5 | gateway, dispatcher |
//! | `api_keys` | KV bucket | sha256 of the key | history 1 | gateway |
//! | `failure_reasons` | KV bucket | `<message id>.<hop>` | 1 day | carriers |
//! | `receipt_correlations` | KV bucket | `<carrier>.<carrier reference>` | 8 days | carriers |
//! | `carrier_health` | KV bucket | carrier id | history 1 | carriers, dispatcher, gateway |
//! | `templates` | KV bucket | customer id | history 5 | gateway |
//! | `schedules` | KV bucket | customer id | history 5 | gateway, dispatcher |
//! | `opt_out_lines` | KV bucket | 080 number | history 1 | gateway |
//! | `webhooks` | KV bucket | customer id | history 5 | gateway, webhook worker (analytics) |
//! | `sender_owners` | KV bucket | sender number | history 1 | gateway |
//! | `people` | KV bucket | person id | history 5 | gateway |
//! | `person_emails` | KV bucket | sha256 of the email | history 1 | gateway |
//! | `mms_images` | object store | `<customer>/<sha256>` | 200 days | gateway, carriers |
//!
//! Every stream is bounded in bytes and refuses new messages when full
//! (`discard: new`), so a full queue pushes back to the publisher (the gateway answers
//! 503) instead of silently dropping accepted messages. [`Topology::ensure`] creates
//! what is missing and updates what changed; every service calls it at start, so the
//! order in which services start does not matter.
use std::time::Duration;

use async_nats::jetstream::consumer::pull::Config as PullConfig;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::{
    Config as StreamConfig, DiscardPolicy, RetentionPolicy, StorageType,
};
use rns_types::subjects::{
    carrier_lane_consumer, carrier_lane_subject, carrier_stream, ADVISORIES_STREAM,
    ANALYTICS_CONSUMER, API_KEYS_BUCKET, AUDIT_STREAM, AUDIT_SUBJECTS, CARRIER_HEALTH_BUCKET,
    CUSTOMERS_BUCKET, DISPATCHER_CONSUMER, DUE_CONSUMER, DUE_SUBJECTS, FAILOVER_CONSUMER,
    FAILURE_REASONS_BUCKET, INBOUND_CONSUMER, INBOUND_STREAM, INBOUND_SUBJECTS, LEDGER_STREAM,
    LEDGER_SUBJECTS, MAX_DELIVERIES_ADVISORIES, MMS_IMAGES_BUCKET, OPT_OUT_LINES_BUCKET,
    PEOPLE_BUCKET, PERSON_EMAILS_BUCKET, POINTS_CONSUMER, RECEIPTS_STREAM, RECEIPT_CONSUMER,
    RECEIPT_CORRELATIONS_BUCKET, RECEIPT_DEADLINE_SUBJECTS, RECEIPT_SUBJECTS, RESULTS_STREAM,
    RESULTS_SUBJECTS, SCHEDULES_BUCKET, SCHEDULES_STREAM, SCHEDULE_SUBJECTS, SENDER_OWNERS_BUCKET,
    SEND_STREAM, SEND_SUBJECTS, TEMPLATES_BUCKET, WEBHOOKS_BUCKET, WEBHOOKS_STREAM,
    WEBHOOK_CONSUMER, WEBHOOK_RETRY_CONSUMER, WEBHOOK_RETRY_SUBJECTS, WEBHOOK_SUBJECTS,
};
use rns_types::{CarrierCatalog, CarrierId, Priority};
use serde::Deserialize;

/// Sizes and replication of the topology (`[nats]` in `rns.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct TopologySettings {
    /// Stream replicas: 1 for a single server, 3 for a production cluster.
    pub replicas: usize,
    /// Upper bound of the `SEND` stream.
    pub send_max_bytes: i64,
    /// Upper bound of each `CARRIER_<NAME>` stream.
    pub carrier_max_bytes: i64,
    /// Upper bound of the `RESULTS` stream.
    pub results_max_bytes: i64,
    /// Upper bound of the `LEDGER` stream; when full the oldest entries go.
    pub ledger_max_bytes: i64,
    /// Upper bound of the `AUDIT` stream; when full the oldest entries go.
    pub audit_max_bytes: i64,
    /// Upper bound of the `SCHEDULES` stream (held and scheduled sends).
    pub schedules_max_bytes: i64,
    /// Upper bound of the MMS image store.
    pub images_max_bytes: i64,
    /// Upper bound of the `WEBHOOKS` stream (webhook retries waiting).
    pub webhooks_max_bytes: i64,
    /// Upper bound of the `RECEIPTS` stream (receipts not yet read, and a deadline
    /// schedule per awaited receipt).
    pub receipts_max_bytes: i64,
    /// Upper bound of the `INBOUND` stream (messages from handsets not yet read).
    pub inbound_max_bytes: i64,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a republished copy.
    #[serde(with = "seconds")]
    pub duplicate_window: Duration,
    /// How long the dispatcher may hold a send request before it is redelivered.
    #[serde(with = "seconds")]
    pub send_ack_wait: Duration,
    /// How long analytics may hold a RESULTS message before it is redelivered.
    #[serde(with = "seconds")]
    pub results_ack_wait: Duration,
    /// How long a carrier worker may hold a message before it is redelivered.
    #[serde(with = "seconds")]
    pub carrier_ack_wait: Duration,
    /// Messages a carrier's workers may hold unacknowledged, across all workers.
    pub carrier_max_ack_pending: i64,
    /// Deliveries of one message to one carrier before it fails over.
    pub carrier_max_deliver: i64,
}

impl Default for TopologySettings {
    fn default() -> Self {
        Self {
            replicas: 1,
            send_max_bytes: 1 << 30,
            carrier_max_bytes: 4 << 30,
            results_max_bytes: 4 << 30,
            ledger_max_bytes: 1 << 30,
            audit_max_bytes: 256 << 20,
            images_max_bytes: 1 << 30,
            schedules_max_bytes: 1 << 30,
            webhooks_max_bytes: 1 << 30,
            receipts_max_bytes: 4 << 30,
            inbound_max_bytes: 256 << 20,
            duplicate_window: Duration::from_secs(120),
            send_ack_wait: Duration::from_secs(30),
            results_ack_wait: Duration::from_secs(60),
            carrier_ack_wait: Duration::from_secs(30),
            carrier_max_ack_pending: 4_096,
            carrier_max_deliver: 5,
        }
    }
}

mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

/// How long a receipt correlation is kept after its last change: longer than any
/// receipt deadline may be (7 days), so a correlation is never gone before its
/// message is settled, and a settled one recognises late duplicates for a day more.
pub const RECEIPT_CORRELATIONS_MAX_AGE: Duration = Duration::from_secs(8 * 24 * 60 * 60);

/// A step of [`Topology::ensure`] that the server refused.
#[derive(Debug, thiserror::Error)]
#[error("cannot ensure {what}: {reason}")]
pub struct TopologyError {
    pub what: String,
    pub reason: String,
}

impl TopologyError {
    fn new(what: impl Into<String>, reason: impl ToString) -> Self {
        Self {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// The whole topology for a set of carriers.
#[derive(Debug, Clone)]
pub struct Topology {
    settings: TopologySettings,
    carriers: Vec<CarrierId>,
}

impl Topology {
    pub fn new(settings: TopologySettings, carriers: Vec<CarrierId>) -> Self {
        Self { settings, carriers }
    }

    /// The topology for every carrier of `catalog`.
    pub fn for_catalog(settings: TopologySettings, catalog: &CarrierCatalog) -> Self {
        let carriers = catalog
            .entries()
            .iter()
            .map(|entry| entry.id.clone())
            .collect();
        Self::new(settings, carriers)
    }

    /// Creates every stream, KV bucket and consumer that is missing and updates those
    /// whose configuration changed. Safe to run concurrently from several services.
    pub async fn ensure(&self, jetstream: &Context) -> Result<(), TopologyError> {
        for stream in self.streams() {
            let name = stream.name.clone();
            jetstream
                .create_or_update_stream(stream)
                .await
                .map_err(|error| TopologyError::new(format!("stream {name}"), error))?;
        }
        for bucket in self.buckets() {
            let name = bucket.bucket.clone();
            jetstream
                .create_or_update_key_value(bucket)
                .await
                .map_err(|error| TopologyError::new(format!("bucket {name}"), error))?;
        }
        self.ensure_image_store(jetstream).await?;
        for (stream, consumer) in self.consumers() {
            let name = consumer.durable_name.clone().unwrap_or_default();
            let handle = jetstream
                .get_stream_no_info(&stream)
                .await
                .map_err(|error| TopologyError::new(format!("stream {stream}"), error))?;
            handle
                .create_consumer(consumer)
                .await
                .map_err(|error| TopologyError::new(format!("consumer {stream}/{name}"), error))?;
        }
        Ok(())
    }

    /// The MMS image store: bounded, and kept long enough for sends scheduled up to
    /// 180 days ahead.
    async fn ensure_image_store(&self, jetstream: &Context) -> Result<(), TopologyError> {
        if jetstream.get_object_store(MMS_IMAGES_BUCKET).await.is_ok() {
            return Ok(());
        }
        jetstream
            .create_object_store(async_nats::jetstream::object_store::Config {
                bucket: MMS_IMAGES_BUCKET.to_owned(),
                max_age: Duration::from_secs(200 * 24 * 60 * 60),
                max_bytes: self.settings.images_max_bytes,
                storage: StorageType::File,
                num_replicas: self.settings.replicas,
                ..Default::default()
            })
            .await
            .map_err(|error| {
                TopologyError::new(format!("object store {MMS_IMAGES_BUCKET}"), error)
            })?;
        Ok(())
    }

    /// Every stream's name, and whether its oldest message waits to be consumed, so
    /// that its age is a lag: not in a record kept by limits (the ledger, the audit
    /// log), nor in a stream of schedules (whose oldest is a future firing). In the
    /// order they are declared.
    pub fn stream_names(&self) -> Vec<(String, bool)> {
        self.streams()
            .into_iter()
            .map(|stream| {
                let waits =
                    stream.retention != RetentionPolicy::Limits && !stream.allow_message_schedules;
                (stream.name, waits)
            })
            .collect()
    }

    fn streams(&self) -> Vec<StreamConfig> {
        let settings = &self.settings;
        let base = |name: &str, subjects: Vec<String>, retention, max_bytes| StreamConfig {
            name: name.to_owned(),
            subjects,
            retention,
            max_bytes,
            discard: DiscardPolicy::New,
            storage: StorageType::File,
            num_replicas: settings.replicas,
            duplicate_window: settings.duplicate_window,
            allow_direct: true,
            ..Default::default()
        };
        let mut streams = vec![
            base(
                SEND_STREAM,
                vec![SEND_SUBJECTS.to_owned()],
                RetentionPolicy::WorkQueue,
                settings.send_max_bytes,
            ),
            StreamConfig {
                // Required with schedules; the gateway refuses new schedules well
                // before the stream is full, so nothing old is ever discarded.
                discard: DiscardPolicy::Old,
                allow_message_schedules: true,
                ..base(
                    SCHEDULES_STREAM,
                    vec![SCHEDULE_SUBJECTS.to_owned(), DUE_SUBJECTS.to_owned()],
                    RetentionPolicy::WorkQueue,
                    settings.schedules_max_bytes,
                )
            },
            StreamConfig {
                // Required with schedules: when retries fill it, the oldest give way.
                discard: DiscardPolicy::Old,
                allow_message_schedules: true,
                ..base(
                    WEBHOOKS_STREAM,
                    vec![
                        WEBHOOK_RETRY_SUBJECTS.to_owned(),
                        WEBHOOK_SUBJECTS.to_owned(),
                    ],
                    RetentionPolicy::WorkQueue,
                    settings.webhooks_max_bytes,
                )
            },
            StreamConfig {
                // Required with schedules. Receipts are read as they come, so what
                // fills it is deadline schedules (and, once one came, the entry that
                // outlives it for a day): 4 GiB holds about ten million.
                discard: DiscardPolicy::Old,
                allow_message_schedules: true,
                allow_message_ttl: true,
                ..base(
                    RECEIPTS_STREAM,
                    vec![
                        RECEIPT_SUBJECTS.to_owned(),
                        RECEIPT_DEADLINE_SUBJECTS.to_owned(),
                    ],
                    RetentionPolicy::WorkQueue,
                    settings.receipts_max_bytes,
                )
            },
            base(
                INBOUND_STREAM,
                vec![INBOUND_SUBJECTS.to_owned()],
                RetentionPolicy::WorkQueue,
                settings.inbound_max_bytes,
            ),
            base(
                ADVISORIES_STREAM,
                vec![MAX_DELIVERIES_ADVISORIES.to_owned()],
                RetentionPolicy::WorkQueue,
                settings.results_max_bytes / 16,
            ),
            base(
                RESULTS_STREAM,
                vec![RESULTS_SUBJECTS.to_owned()],
                RetentionPolicy::Interest,
                settings.results_max_bytes,
            ),
            StreamConfig {
                // The record of money: the oldest entries make room, new ones are
                // never refused.
                discard: DiscardPolicy::Old,
                ..base(
                    LEDGER_STREAM,
                    vec![LEDGER_SUBJECTS.to_owned()],
                    RetentionPolicy::Limits,
                    settings.ledger_max_bytes,
                )
            },
            StreamConfig {
                // The record of who changed what: like the ledger, the oldest
                // entries make room and a change is never refused for the log.
                discard: DiscardPolicy::Old,
                ..base(
                    AUDIT_STREAM,
                    vec![AUDIT_SUBJECTS.to_owned()],
                    RetentionPolicy::Limits,
                    settings.audit_max_bytes,
                )
            },
        ];
        for carrier in &self.carriers {
            streams.push(base(
                &carrier_stream(carrier),
                Priority::ALL
                    .iter()
                    .map(|priority| carrier_lane_subject(carrier, *priority))
                    .collect(),
                RetentionPolicy::WorkQueue,
                settings.carrier_max_bytes,
            ));
        }
        streams
    }

    fn buckets(&self) -> Vec<kv::Config> {
        let bucket = |name: &str, history| kv::Config {
            bucket: name.to_owned(),
            history,
            storage: StorageType::File,
            num_replicas: self.settings.replicas,
            ..Default::default()
        };
        vec![
            bucket(CUSTOMERS_BUCKET, 5),
            bucket(API_KEYS_BUCKET, 1),
            kv::Config {
                max_age: Duration::from_secs(24 * 60 * 60),
                ..bucket(FAILURE_REASONS_BUCKET, 1)
            },
            kv::Config {
                max_age: RECEIPT_CORRELATIONS_MAX_AGE,
                max_bytes: self.settings.receipts_max_bytes,
                // Per-key TTLs: each correlation lives as long as its state needs.
                limit_markers: Some(Duration::from_secs(60)),
                ..bucket(RECEIPT_CORRELATIONS_BUCKET, 1)
            },
            bucket(CARRIER_HEALTH_BUCKET, 1),
            bucket(TEMPLATES_BUCKET, 5),
            bucket(SCHEDULES_BUCKET, 5),
            bucket(OPT_OUT_LINES_BUCKET, 1),
            bucket(WEBHOOKS_BUCKET, 5),
            bucket(SENDER_OWNERS_BUCKET, 1),
            bucket(PEOPLE_BUCKET, 5),
            bucket(PERSON_EMAILS_BUCKET, 1),
        ]
    }

    fn consumers(&self) -> Vec<(String, PullConfig)> {
        let durable = |name: &str, filter: &str| PullConfig {
            durable_name: Some(name.to_owned()),
            filter_subject: filter.to_owned(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ..Default::default()
        };
        let mut consumers = vec![
            (
                SEND_STREAM.to_owned(),
                PullConfig {
                    ack_wait: self.settings.send_ack_wait,
                    max_ack_pending: 1_024,
                    ..durable(DISPATCHER_CONSUMER, SEND_SUBJECTS)
                },
            ),
            (
                SCHEDULES_STREAM.to_owned(),
                PullConfig {
                    ack_wait: self.settings.send_ack_wait,
                    max_ack_pending: 1_024,
                    ..durable(DUE_CONSUMER, DUE_SUBJECTS)
                },
            ),
            (
                ADVISORIES_STREAM.to_owned(),
                PullConfig {
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 1_024,
                    ..durable(FAILOVER_CONSUMER, MAX_DELIVERIES_ADVISORIES)
                },
            ),
            (
                RESULTS_STREAM.to_owned(),
                PullConfig {
                    ack_wait: self.settings.results_ack_wait,
                    max_ack_pending: 50_000,
                    ..durable(ANALYTICS_CONSUMER, RESULTS_SUBJECTS)
                },
            ),
            (
                RESULTS_STREAM.to_owned(),
                PullConfig {
                    ack_wait: self.settings.results_ack_wait,
                    max_ack_pending: 50_000,
                    ..durable(POINTS_CONSUMER, RESULTS_SUBJECTS)
                },
            ),
            (
                RESULTS_STREAM.to_owned(),
                PullConfig {
                    // Longer than a delivery's timeout; a slow receiver never holds more
                    // than its customer's few in-flight deliveries.
                    ack_wait: Duration::from_secs(60),
                    max_ack_pending: 4_096,
                    ..durable(WEBHOOK_CONSUMER, RESULTS_SUBJECTS)
                },
            ),
            (
                RECEIPTS_STREAM.to_owned(),
                PullConfig {
                    // Reading one takes milliseconds; one held by a process that
                    // stopped comes back soon.
                    ack_wait: Duration::from_secs(10),
                    max_ack_pending: 10_000,
                    ..durable(RECEIPT_CONSUMER, RECEIPT_SUBJECTS)
                },
            ),
            (
                INBOUND_STREAM.to_owned(),
                PullConfig {
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 1_024,
                    ..durable(INBOUND_CONSUMER, INBOUND_SUBJECTS)
                },
            ),
            (
                WEBHOOKS_STREAM.to_owned(),
                PullConfig {
                    ack_wait: Duration::from_secs(60),
                    max_ack_pending: 4_096,
                    ..durable(WEBHOOK_RETRY_CONSUMER, WEBHOOK_SUBJECTS)
                },
            ),
        ];
        // One consumer per lane: work-queue consumers may not overlap, and the lanes'
        // subjects do not.
        for carrier in &self.carriers {
            for priority in Priority::ALL {
                consumers.push((
                    carrier_stream(carrier),
                    PullConfig {
                        ack_wait: self.settings.carrier_ack_wait,
                        max_ack_pending: self.settings.carrier_max_ack_pending,
                        max_deliver: self.settings.carrier_max_deliver,
                        ..durable(
                            &carrier_lane_consumer(carrier, priority),
                            &carrier_lane_subject(carrier, priority),
                        )
                    },
                ));
            }
        }
        consumers
    }

    /// The durable pull consumer `consumer` of `stream`, which [`Topology::ensure`] created.
    pub async fn consumer(
        jetstream: &Context,
        stream: &str,
        consumer: &str,
    ) -> Result<PullConsumer, TopologyError> {
        let handle = jetstream
            .get_stream_no_info(stream)
            .await
            .map_err(|error| TopologyError::new(format!("stream {stream}"), error))?;
        handle
            .get_consumer(consumer)
            .await
            .map_err(|error| TopologyError::new(format!("consumer {stream}/{consumer}"), error))
    }
}
