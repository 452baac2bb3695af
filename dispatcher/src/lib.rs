//! The RNS dispatcher: SEND → `carrier.<name>` work queues, by weight, exactly.
//!
//! Sends come from `SEND` (accepted now) and from `SCHEDULES` (`due.<customer>`: held
//! sends whose time came); both are dispatched the same way.
//!
//! For each accepted request it takes the customer's weights that the gateway read
//! at acceptance (or, for held and scheduled sends and for requests without them,
//! reads them from the KV bucket: a change applies to the next request without a
//! restart), reserves routing positions
//! in Redis ([`positions`]), plans one job per recipient ([`plan`]), publishes the
//! message records and the jobs (a carrier's jobs of one request in batches of
//! `job_batch`) with pipelined, de-duplicated publishes, and
//! acknowledges the request only after JetStream acknowledged every one of them.
//! Up to `concurrency` SEND messages are in flight; the consumer's `max_ack_pending`
//! bounds what is pulled. A SEND message may hold several requests of one customer
//! that the gateway gathered under load (a JSON array): they are planned together,
//! and each carrier's jobs of all of them travel in shared batches.
//!
//! The process also settles points from final results, copies the points ledger into
//! JetStream, restores accounts Redis lost and returns the points of requests never
//! published ([`rns_points::settle`], [`rns_points::journal`], [`rns_points::recover`],
//! [`rns_points::unpublished`]): they need the same Redis and
//! NATS connections, and none is on the send path.
#![forbid(unsafe_code)]

pub mod error;
pub mod firing;
pub mod metric_names;
pub mod plan;
pub mod positions;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{AckKind, Message};
use futures::StreamExt;
use rns_nats::{publish_all, CustomerDirectory, HealthView, Topology};
use rns_service::{LogSettings, NatsSettings, Readiness, RedisSettings};
use rns_types::routing::{Schedule, Weights};
use rns_types::subjects::{
    DISPATCHER_CONSUMER, DUE_CONSUMER, POINTS_CONSUMER, RESULTS_STREAM, SCHEDULES_STREAM,
    SEND_STREAM,
};
use rns_types::wire::{SendPayload, SendRequest};
use rns_types::{CarrierCatalog, CustomerId};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

pub use error::{DispatchError, Disposition};
use positions::Positions;

/// `[dispatcher]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DispatcherSettings {
    pub health_listen: String,
    /// Requests dispatched at once.
    pub concurrency: usize,
    /// Most unacknowledged publishes per request. `concurrency × publish_window`
    /// must stay within the client's 5,000 acknowledgements in flight
    /// ([`rns_nats::MAX_ACKS_IN_FLIGHT`]); start-up refuses more.
    pub publish_window: usize,
    /// Jobs of one request for one carrier published together as one batch message
    /// at most ([`plan::outbound`]); 1 publishes each job on its own.
    pub job_batch: usize,
}

impl Default for DispatcherSettings {
    fn default() -> Self {
        Self {
            health_listen: "127.0.0.1:8081".to_owned(),
            concurrency: 32,
            publish_window: 128,
            job_batch: 100,
        }
    }
}

/// Everything the dispatcher process reads from the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub nats: NatsSettings,
    pub redis: RedisSettings,
    pub carriers: Option<CarrierCatalog>,
    pub dispatcher: DispatcherSettings,
    pub points: rns_points::PointsSettings,
    pub log: LogSettings,
    pub runtime: rns_service::RuntimeSettings,
}

impl rns_service::process::ServiceSettings for Settings {
    fn health_listen(&self) -> &str {
        &self.dispatcher.health_listen
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

/// Schedules by canonical weights; bounded (the least used dropped when full), since
/// weights change rarely.
#[derive(Debug)]
struct Schedules(moka::sync::Cache<String, Arc<Schedule>>);

const MAX_CACHED_SCHEDULES: u64 = 4_096;

impl Default for Schedules {
    fn default() -> Self {
        Self(moka::sync::Cache::new(MAX_CACHED_SCHEDULES))
    }
}

impl Schedules {
    fn get(&self, weights: &Weights) -> Arc<Schedule> {
        self.0
            .get_with(weights.canonical(), || Arc::new(Schedule::new(weights)))
    }
}

struct Dispatcher {
    jetstream: async_nats::jetstream::Context,
    directory: CustomerDirectory,
    positions: Positions,
    catalog: CarrierCatalog,
    schedules: Schedules,
    health: HealthView,
    publish_window: usize,
    job_batch: usize,
    firings: firing::Firings,
}

/// The failure of every message of a suspended customer's request.
const SUSPENDED: &str = "cancelled: the customer is suspended by the operator";

impl Dispatcher {
    /// Whether the operator suspended `customer`: its requests are cancelled and
    /// refunded rather than routed (see the gateway's `routes::suspension`).
    async fn is_suspended(&self, customer: &CustomerId) -> Result<bool, DispatchError> {
        Ok(self
            .directory
            .profile_part(customer, |profile| profile.suspension.is_some())
            .await?
            .unwrap_or(false))
    }

    /// Fails every message of `request` for `reason` (refunded when settled).
    async fn fail(&self, request: &SendRequest, reason: &str) -> Result<(), DispatchError> {
        tracing::warn!(customer = %request.customer_id, request = %request.request_id, %reason, "failing request");
        let results = plan::fail_all(request, reason, rns_types::time::now_milliseconds());
        let messages = plan::outbound(request, &[], &results, self.job_batch);
        Ok(publish_all(&self.jetstream, messages, self.publish_window).await?)
    }

    async fn dispatch(&self, request: &SendRequest) -> Result<(), DispatchError> {
        if self.is_suspended(&request.customer_id).await? {
            return self.fail(request, SUSPENDED).await;
        }
        let now_ms = rns_types::time::now_milliseconds();
        let weights = match self.accepted_weights(request) {
            Some(weights) => Some(weights),
            None => self
                .directory
                .profile(&request.customer_id)
                .await?
                .and_then(|profile| profile.weights(request.channel, &self.catalog)),
        };
        let Some(weights) = weights.map(|weights| self.around_open_circuits(weights)) else {
            let reason = format!(
                "no carrier serves the {} channel for this customer",
                request.channel
            );
            return self.fail(request, &reason).await;
        };
        let reservation = self.positions.reserve(request, &weights).await?;
        let schedule = self.schedules.get(&reservation.weights);
        let start = reservation.start;
        let plan = plan::plan(request, &schedule, start, now_ms);
        let messages = plan::outbound(request, &plan.jobs, &plan.results, self.job_batch);
        publish_all(&self.jetstream, messages, self.publish_window).await?;
        count_routed(&plan.jobs);
        tracing::debug!(
            trace_id = request.trace.map(|trace| trace.trace_id()).unwrap_or_default(),
            customer = %request.customer_id,
            request = %request.request_id,
            recipients = plan.jobs.len(),
            "request dispatched"
        );
        Ok(())
    }

    /// The requests of one SEND message that the gateway gathered (one customer's,
    /// each accepted now): those routed by the weights they carry are planned
    /// together, their records published together and each carrier's jobs of all of
    /// them batched together, under ids named after the first request
    /// ([`plan::Origin::Gathered`]). Their positions come from the message's
    /// reservation ([`Positions::reserve_gathered`]), so a redelivered message plans
    /// the same jobs into the same batches. Any other
    /// request (no weights, or weights naming a carrier this dispatcher lacks) is
    /// dispatched on its own, as if it had come alone.
    async fn dispatch_gathered(&self, requests: &[SendRequest]) -> Result<(), DispatchError> {
        let Some(first) = requests.first() else {
            return Ok(());
        };
        if self.is_suspended(&first.customer_id).await? {
            for request in requests {
                self.dispatch(request).await?;
            }
            return Ok(());
        }
        let mut together: Vec<(&SendRequest, Weights)> = Vec::with_capacity(requests.len());
        for request in requests {
            match self.accepted_weights(request) {
                Some(weights) if request.customer_id == first.customer_id => {
                    together.push((request, self.around_open_circuits(weights)))
                }
                _ => self.dispatch(request).await?,
            }
        }
        if together.is_empty() {
            return Ok(());
        }
        let now_ms = rns_types::time::now_milliseconds();
        let asked: Vec<(&SendRequest, &Weights)> = together
            .iter()
            .map(|(request, weights)| (*request, weights))
            .collect();
        let reservations = self
            .positions
            .reserve_gathered(&first.request_id, &asked)
            .await?;
        let mut jobs = Vec::with_capacity(together.len());
        let mut results = Vec::with_capacity(together.len());
        for ((request, _), reservation) in together.iter().zip(reservations) {
            let schedule = self.schedules.get(&reservation.weights);
            let plan = plan::plan(request, &schedule, reservation.start, now_ms);
            jobs.extend(plan.jobs);
            results.extend(plan.results);
        }
        let messages = plan::publishes(
            &first.customer_id,
            plan::Origin::Gathered(&first.request_id),
            &jobs,
            &plan::merge_results(results),
            self.job_batch,
        );
        publish_all(&self.jetstream, messages, self.publish_window).await?;
        count_routed(&jobs);
        tracing::debug!(
            customer = %first.customer_id,
            first = %first.request_id,
            requests = requests.len(),
            recipients = jobs.len(),
            "gathered requests dispatched"
        );
        for request in requests {
            tracing::debug!(
                trace_id = request.trace.map(|trace| trace.trace_id()).unwrap_or_default(),
                request = %request.request_id,
                first = %first.request_id,
                "request dispatched with others"
            );
        }
        Ok(())
    }

    /// `weights` without the carriers whose circuit is open, unless every one is.
    fn around_open_circuits(&self, weights: Weights) -> Weights {
        weights
            .without(|carrier| self.health.is_open(carrier))
            .unwrap_or(weights)
    }

    /// The weights the gateway read when it accepted `request`, if every carrier they
    /// name serves its channel here (a gateway configured with other carriers than
    /// this dispatcher must not route into queues that do not exist).
    fn accepted_weights(&self, request: &SendRequest) -> Option<Weights> {
        let weights = request.weights.as_ref()?;
        weights
            .iter()
            .all(|(carrier, _)| self.catalog.channel_of(carrier) == Some(request.channel))
            .then(|| weights.clone())
    }

    /// A due send from `SCHEDULES`: the schedule decides what (if anything) is sent,
    /// and the firing is recorded after it was dispatched.
    async fn dispatch_due(
        &self,
        request: SendRequest,
        message: &Message,
    ) -> Result<(), DispatchError> {
        let info = message.info().map_err(|error| {
            DispatchError::Nats(format!("due message without metadata: {error}"))
        })?;
        let due = firing::Due {
            sequence: info.stream_sequence,
            fired_at_ms: u64::try_from(info.published.unix_timestamp_nanos() / 1_000_000)
                .unwrap_or(0),
            next_fire_at_ms: message
                .headers
                .as_ref()
                .and_then(|headers| headers.get("Nats-Schedule-Next"))
                .and_then(|value| rns_types::time::parse_rfc3339(value.as_str())),
        };
        let daily_cap = self
            .directory
            .profile_part(&request.customer_id, |profile| {
                profile.limits.daily_messages
            })
            .await?
            .flatten();
        let Some((mut request, firing)) = self.firings.prepare(request, due, daily_cap).await?
        else {
            return Ok(());
        };
        // Routed by the weights of its time.
        request.weights = None;
        self.dispatch(&request).await?;
        if let Some(firing) = firing {
            self.firings.finish(firing).await?;
        }
        Ok(())
    }

    async fn handle(&self, message: Message) {
        let started = std::time::Instant::now();
        // Requests the message holds, for the counter (one if it cannot be read).
        let mut requests = 1;
        let outcome = async {
            let payload = &message.payload;
            if message.subject.starts_with("due.") {
                self.dispatch_due(serde_json::from_slice(payload)?, &message)
                    .await
            } else {
                match SendPayload::decode(payload)? {
                    SendPayload::Gathered(gathered) => {
                        requests = gathered.len() as u64;
                        self.dispatch_gathered(&gathered).await
                    }
                    SendPayload::One(request) => self.dispatch(&request).await,
                }
            }
        }
        .await;
        metrics::histogram!(crate::metric_names::DISPATCH_DURATION_SECONDS)
            .record(started.elapsed().as_secs_f64());
        let label = match &outcome {
            Ok(()) => "dispatched",
            Err(error) if error.disposition() == Disposition::Terminate => "dropped",
            Err(_) => "retried",
        };
        metrics::counter!(crate::metric_names::DISPATCHER_REQUESTS_TOTAL, "outcome" => label)
            .increment(requests);
        let acknowledgement = match outcome {
            Ok(()) => message.ack().await,
            Err(error) => match error.disposition() {
                Disposition::RetryAfter(delay) => {
                    tracing::warn!(%error, "dispatch failed; will retry");
                    message.ack_with(AckKind::Nak(Some(delay))).await
                }
                Disposition::Terminate => {
                    tracing::error!(%error, subject = %message.subject, "dropping undeliverable send request");
                    message.ack_with(AckKind::Term).await
                }
            },
        };
        if let Err(error) = acknowledgement {
            tracing::warn!(%error, "acknowledging a send request failed; it will be redelivered");
        }
    }
}

/// Counts `jobs` by carrier in `rns_dispatcher_messages_routed_total`.
fn count_routed(jobs: &[rns_types::wire::CarrierJob]) {
    let mut routed: HashMap<&str, u64> = HashMap::new();
    for job in jobs {
        *routed.entry(job.carrier.as_str()).or_default() += 1;
    }
    for (carrier, count) in routed {
        metrics::counter!(crate::metric_names::DISPATCHER_MESSAGES_ROUTED_TOTAL, "carrier" => carrier.to_owned())
            .increment(count);
    }
}

/// Connects to NATS and Redis, ensures the topology and dispatches until `shutdown`.
/// Requests in flight when shutdown comes are finished before this returns.
pub async fn run(
    settings: Settings,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> Result<(), DispatchError> {
    let in_flight =
        settings.dispatcher.concurrency.max(1) * settings.dispatcher.publish_window.max(1);
    if in_flight > rns_nats::MAX_ACKS_IN_FLIGHT {
        return Err(DispatchError::Settings(format!(
            "dispatcher concurrency × publish_window is {in_flight}, over the {} acknowledgements a client may await",
            rns_nats::MAX_ACKS_IN_FLIGHT
        )));
    }
    let catalog = settings
        .carriers
        .clone()
        .unwrap_or_else(CarrierCatalog::korean_default);
    let (client, jetstream) = rns_nats::connect_with_topology(
        &settings.nats.url,
        "rns-dispatcher",
        &settings.nats.topology,
        &catalog,
    )
    .await?;
    let points = rns_points::PointsStore::connect(&settings.redis.url).await?;
    let firings = firing::Firings {
        schedules: rns_nats::Documents::open(&jetstream, rns_types::subjects::SCHEDULES_BUCKET)
            .await
            .map_err(|error| DispatchError::Nats(error.to_string()))?,
        caps: rns_points::DailyCaps::new(points.connection()),
        points: points.clone(),
        jetstream: jetstream.clone(),
    };
    let dispatcher = Dispatcher {
        // Followed into memory: every request asks whether its customer is suspended.
        directory: CustomerDirectory::replicated(&jetstream, shutdown.clone()).await?,
        positions: Positions::connect(&settings.redis.url).await?,
        jetstream: jetstream.clone(),
        catalog,
        schedules: Schedules::default(),
        health: HealthView::watch(&jetstream, shutdown.clone()).await?,
        publish_window: settings.dispatcher.publish_window,
        job_batch: settings.dispatcher.job_batch,
        firings,
    };

    let settler = tokio::spawn(rns_points::settle::settle_until(
        points.clone(),
        jetstream.clone(),
        shutdown.clone(),
    ));
    let restorer = tokio::spawn(rns_points::recover::watch(
        points.clone(),
        jetstream.clone(),
        shutdown.clone(),
    ));
    let releaser = tokio::spawn(rns_points::unpublished::watch(
        points.clone(),
        Duration::from_secs(settings.points.unpublished_release_seconds),
        shutdown.clone(),
    ));
    let copier = tokio::spawn(rns_points::journal::copy_until(
        points,
        jetstream.clone(),
        format!("dispatcher-{}", std::process::id()),
        shutdown.clone(),
    ));
    let concurrency = settings.dispatcher.concurrency.max(1);
    // Sends accepted now, and sends that were held until a time and are due now.
    let mut sources = Vec::with_capacity(2);
    for (stream, consumer) in [
        (SEND_STREAM, DISPATCHER_CONSUMER),
        (SCHEDULES_STREAM, DUE_CONSUMER),
    ] {
        // Logged so a start that stalls says where (seen once under heavy test load).
        tracing::info!(stream, consumer, "opening consumer");
        let consumer = Topology::consumer(&jetstream, stream, consumer).await?;
        sources.push(
            consumer
                .stream()
                .max_messages_per_batch(concurrency * 2)
                .heartbeat(Duration::from_secs(5))
                .messages()
                .await
                .map_err(|error| DispatchError::Nats(error.to_string()))?,
        );
    }
    let messages = futures::stream::select_all(sources);
    tokio::spawn(rns_service::metrics::watch_consumers(
        jetstream.clone(),
        [
            (SEND_STREAM, DISPATCHER_CONSUMER),
            (SCHEDULES_STREAM, DUE_CONSUMER),
            (RESULTS_STREAM, POINTS_CONSUMER),
        ]
        .iter()
        .map(|(stream, consumer)| (stream.to_string(), consumer.to_string()))
        .collect(),
        shutdown.clone(),
    ));
    readiness.set(true);
    tracing::info!(concurrency, "dispatcher consuming SEND and due SCHEDULES");
    messages
        .take_until(shutdown.cancelled())
        .for_each_concurrent(concurrency, |message| {
            let dispatcher = &dispatcher;
            async move {
                match message {
                    Ok(message) => dispatcher.handle(message).await,
                    Err(error) => tracing::warn!(%error, "pull from SEND failed"),
                }
            }
        })
        .await;
    readiness.set(false);
    match settler.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "points settlement stopped"),
        Err(error) => tracing::error!(%error, "points settlement panicked"),
    }
    for (task, name) in [
        (copier, "ledger copier"),
        (restorer, "points restorer"),
        (releaser, "releaser of unpublished reservations"),
    ] {
        if let Err(error) = task.await {
            tracing::error!(%error, "{name} panicked");
        }
    }
    client
        .flush()
        .await
        .map_err(|error| DispatchError::Nats(error.to_string()))?;
    tracing::info!("dispatcher stopped");
    Ok(())
}
