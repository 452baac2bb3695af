//! The benchmark harness of `./scripts/bench`: the real binaries on one machine,
//! measured against the ceilings of the same nats-server.
//!
//! One run starts the whole system (nats-server, Redis, ClickHouse, the simulators
//! answering at once, the four services), then:
//! 1. measures the JetStream ceilings on that server: pipelined publish, and a
//!    one-hop relay (consume from one stream, publish to another, acknowledge);
//! 2. runs the scenarios: **bulk** (requests of many recipients), **single** (one
//!    recipient per HTTP request, many concurrent clients), **paced** (the single
//!    scenario's requests at a fixed rate, whatever the answers: the latency at a
//!    given load rather than at saturation) and **mixed** (bulk with
//!    one carrier failing 20% of its submits, so messages retry and fail over);
//! 3. per scenario reports accepted and delivered msg/s (delivered: accepted until
//!    the final state is in ClickHouse, looked at every 100 ms like Kannel's count
//!    of sent messages), HTTP accept latency, accept → final state
//!    latency, CPU seconds per 1,000 messages and peak memory per service, and the
//!    ratio of delivered msg/s to the relay ceiling; every accepted message must
//!    reach a final state, or the run fails;
//! 4. **kannel**: Kannel 1.4.5 ([`crate::kannel`]: `bearerbox` with its file store,
//!    `smsbox`, three `fakesmsc`) given the single scenario's requests (same count,
//!    concurrency, text and load generator), right after it on the same machine, and
//!    then the paced scenario's; reports both side by side with the CPU every
//!    process spent per request;
//! 5. **priority**: KT alone at a rate the operator set (`priority_rate`), a bulk
//!    campaign waiting on it, and one-recipient `high` sends made one after another
//!    meanwhile; reports the accept → submitted latency of each lane;
//! 6. **backlog**: memory with millions of messages waiting (see [`backlog`]).
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::{Service, System, SystemOptions};

/// Every scenario a run knows.
pub const SCENARIOS: [&str; 7] = [
    "bulk", "single", "paced", "kannel", "mixed", "priority", "backlog",
];

/// How much load each part of a run puts on the system.
#[derive(Debug, Clone)]
pub struct BenchPlan {
    pub ceiling_messages: usize,
    pub bulk_messages: usize,
    pub bulk_recipients: usize,
    pub bulk_concurrency: usize,
    pub single_requests: usize,
    pub single_concurrency: usize,
    /// The paced scenario's requests per second (the single scenario's count of
    /// one-recipient requests, sent at this fixed rate), and the most unanswered.
    pub paced_rate: u32,
    pub paced_limit: usize,
    pub mixed_messages: usize,
    pub settle_timeout: Duration,
    /// Submits in flight per carrier worker.
    pub carrier_concurrency: usize,
    /// Submits per batch request to a carrier.
    pub carrier_batch_size: usize,
    /// Analytics' batch linger: `rns.toml`'s, since it sets most of ClickHouse's
    /// work per message (the tests' 100 ms makes five times the parts).
    pub analytics_linger_milliseconds: u64,
    /// The scenarios to run, in order.
    pub scenarios: Vec<&'static str>,
    /// Messages left waiting in the carrier queues by the backlog scenario.
    pub backlog_messages: usize,
    /// How long the carriers work that backlog while memory is watched.
    pub backlog_drain: Duration,
    /// KT's rate in the priority scenario, submits per second.
    pub priority_rate: u32,
    /// Messages of the bulk campaign waiting on KT.
    pub priority_campaign: usize,
    /// One-recipient high sends made while it waits, one per `priority_high_every`.
    pub priority_high_sends: usize,
    pub priority_high_every: Duration,
}

impl BenchPlan {
    pub fn full() -> Self {
        Self {
            ceiling_messages: 500_000,
            bulk_messages: 500_000,
            bulk_recipients: 1_000,
            bulk_concurrency: 8,
            single_requests: 100_000,
            single_concurrency: 128,
            paced_rate: 10_000,
            paced_limit: 128,
            mixed_messages: 200_000,
            settle_timeout: Duration::from_secs(600),
            carrier_concurrency: 512,
            carrier_batch_size: 128,
            analytics_linger_milliseconds: PRODUCTION_ANALYTICS_LINGER_MILLISECONDS,
            scenarios: SCENARIOS.to_vec(),
            backlog_messages: 5_000_000,
            backlog_drain: Duration::from_secs(30),
            priority_rate: 500,
            priority_campaign: 30_000,
            priority_high_sends: 300,
            priority_high_every: Duration::from_millis(100),
        }
    }

    /// Small counts: keeps the harness working in `./scripts/test`.
    pub fn short() -> Self {
        Self {
            ceiling_messages: 5_000,
            bulk_messages: 4_000,
            bulk_recipients: 1_000,
            bulk_concurrency: 2,
            single_requests: 300,
            single_concurrency: 16,
            paced_rate: 200,
            paced_limit: 64,
            mixed_messages: 2_000,
            settle_timeout: Duration::from_secs(120),
            carrier_concurrency: 64,
            carrier_batch_size: 32,
            analytics_linger_milliseconds: PRODUCTION_ANALYTICS_LINGER_MILLISECONDS,
            scenarios: SCENARIOS.to_vec(),
            backlog_messages: 20_000,
            backlog_drain: Duration::from_secs(3),
            priority_rate: 200,
            priority_campaign: 2_000,
            priority_high_sends: 20,
            priority_high_every: Duration::from_millis(100),
        }
    }
}

impl BenchPlan {
    /// The paced scenario's load: `paced_rate` requests a second, `paced_limit` at most
    /// unanswered.
    pub(crate) fn paced(&self) -> Load {
        Load::Paced {
            rate: self.paced_rate,
            limit: self.paced_limit,
        }
    }
}

/// Analytics' batch linger as deployed: its default, which `rns.toml` repeats
/// (`e2e/tests/bench.rs` holds the three equal).
pub const PRODUCTION_ANALYTICS_LINGER_MILLISECONDS: u64 = 500;

/// p50, p95 and p99 in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<f64>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_by(f64::total_cmp);
        let at = |fraction: f64| {
            samples[((samples.len() as f64 * fraction).ceil() as usize).saturating_sub(1)]
        };
        Self {
            p50: at(0.5),
            p95: at(0.95),
            p99: at(0.99),
        }
    }

    /// ClickHouse's `quantiles(0.5, 0.95, 0.99)` as text (`[p50,p95,p99]`); zeros
    /// when there was nothing to measure.
    fn parse(text: &str) -> Self {
        let values: Vec<f64> = text
            .trim()
            .trim_matches(|character| character == '[' || character == ']')
            .split(',')
            .filter_map(|value| value.trim().parse().ok())
            .collect();
        match values.as_slice() {
            [p50, p95, p99] => Self {
                p50: *p50,
                p95: *p95,
                p99: *p99,
            },
            _ => Self::default(),
        }
    }

    fn json(&self) -> Value {
        json!({"p50": round(self.p50), "p95": round(self.p95), "p99": round(self.p99)})
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

/// What one scenario did.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub name: &'static str,
    pub messages: usize,
    pub accepted_per_second: f64,
    pub delivered_per_second: f64,
    pub accept_latency_ms: Percentiles,
    pub final_latency_ms: Percentiles,
    /// Accepted messages without a final state when the settle timeout ran out.
    pub lost: usize,
    /// CPU seconds per 1,000 messages of every process (the services, nats-server,
    /// Redis, ClickHouse, the simulators, and the harness as [`LOAD_GENERATOR`]).
    pub cpu_seconds_per_thousand: BTreeMap<&'static str, f64>,
    pub peak_memory_mb: BTreeMap<&'static str, f64>,
    pub relay_ratio: f64,
}

/// What Kannel did with the single scenario's requests.
#[derive(Debug, Clone)]
pub struct PeerReport {
    pub name: &'static str,
    pub requests: usize,
    pub clients: usize,
    /// The requests from `clients` at a time.
    pub closed: PeerRun,
    /// The same requests at the paced scenario's fixed rate, when the plan has it.
    pub paced: Option<PeerRun>,
}

/// One run of requests through Kannel (or, for the side-by-side tables, RNS's
/// scenario of the same requests).
#[derive(Debug, Clone)]
pub struct PeerRun {
    pub accepted_per_second: f64,
    /// Requests divided by the time from the first until bearerbox had handed every
    /// one to a fake SMSC.
    pub delivered_per_second: f64,
    pub accept_latency_ms: Percentiles,
    /// Requests taken but not handed to an SMSC when the settle timeout ran out.
    pub lost: usize,
    /// CPU seconds per 1,000 requests of `bearerbox`, `smsbox`, `fakesmsc` and the
    /// [`LOAD_GENERATOR`].
    pub cpu_seconds_per_thousand: BTreeMap<&'static str, f64>,
}

impl PeerRun {
    fn json(&self) -> Value {
        json!({
            "accepted_per_second": self.accepted_per_second.round(),
            "delivered_per_second": self.delivered_per_second.round(),
            "accept_latency_ms": self.accept_latency_ms.json(),
            "lost": self.lost,
            "cpu_seconds_per_thousand": self.cpu_seconds_per_thousand,
        })
    }
}

/// What the backlog scenario saw: each service's resident memory (MB) before,
/// while the backlog waited with the carriers stopped, and while the carriers
/// worked it.
#[derive(Debug, Clone, Default)]
pub struct BacklogReport {
    /// Messages waiting in the carrier queues once every request was routed.
    pub waiting: u64,
    pub accepted_per_second: f64,
    /// Messages the carriers finished while memory was watched, per second.
    pub drained_per_second: f64,
    pub memory_before_mb: BTreeMap<&'static str, f64>,
    pub memory_queued_mb: BTreeMap<&'static str, f64>,
    /// The most each service held while the carriers worked the backlog.
    pub memory_draining_mb: BTreeMap<&'static str, f64>,
}

/// A whole run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub publish_ceiling: f64,
    pub relay_ceiling: f64,
    /// The paced scenario's requests per second.
    pub paced_rate: u32,
    pub scenarios: Vec<ScenarioReport>,
    pub peer: Option<PeerReport>,
    pub priority: Option<PriorityReport>,
    pub backlog: Option<BacklogReport>,
}

/// What the priority scenario saw: accept → submitted latency per lane on a carrier
/// held to its rate while a campaign waits there.
#[derive(Debug, Clone, Default)]
pub struct PriorityReport {
    pub rate_per_second: u32,
    pub campaign: usize,
    pub high_sends: usize,
    pub high_submit_latency_ms: Percentiles,
    pub bulk_submit_latency_ms: Percentiles,
    /// Campaign messages not yet submitted when the last high send was.
    pub campaign_waiting_after_high: usize,
    /// Accepted messages of either lane without a final state at the end.
    pub lost: usize,
}

impl BenchReport {
    pub fn passed(&self) -> bool {
        self.scenarios.iter().all(|scenario| scenario.lost == 0)
            && self.peer.as_ref().is_none_or(|peer| {
                peer.closed.lost == 0 && peer.paced.as_ref().is_none_or(|paced| paced.lost == 0)
            })
            && self
                .priority
                .as_ref()
                .is_none_or(|priority| priority.lost == 0)
    }

    pub fn json(&self) -> Value {
        json!({
            "ceilings": {"jetstream_publish_per_second": self.publish_ceiling.round(), "jetstream_relay_per_second": self.relay_ceiling.round()},
            "scenarios": self.scenarios.iter().map(|scenario| json!({
                "name": scenario.name,
                "messages": scenario.messages,
                "accepted_per_second": scenario.accepted_per_second.round(),
                "delivered_per_second": scenario.delivered_per_second.round(),
                "accept_latency_ms": scenario.accept_latency_ms.json(),
                "final_latency_ms": scenario.final_latency_ms.json(),
                "lost": scenario.lost,
                "cpu_seconds_per_thousand": scenario.cpu_seconds_per_thousand,
                "peak_memory_mb": scenario.peak_memory_mb,
                "delivered_to_relay_ceiling": round(scenario.relay_ratio * 100.0) / 100.0,
            })).collect::<Vec<_>>(),
            "peer": self.peer.as_ref().map(|peer| {
                let mut json = peer.closed.json();
                json["name"] = json!(peer.name);
                json["requests"] = json!(peer.requests);
                json["clients"] = json!(peer.clients);
                json["single_delivered_to_peer"] =
                    json!(self.single_to_peer().map(|ratio| round(ratio * 100.0) / 100.0));
                json["paced"] = json!(peer.paced.as_ref().map(PeerRun::json));
                json
            }),
            "priority": self.priority.as_ref().map(|priority| json!({
                "rate_per_second": priority.rate_per_second,
                "campaign": priority.campaign,
                "high_sends": priority.high_sends,
                "high_submit_latency_ms": priority.high_submit_latency_ms.json(),
                "bulk_submit_latency_ms": priority.bulk_submit_latency_ms.json(),
                "campaign_waiting_after_high": priority.campaign_waiting_after_high,
                "lost": priority.lost,
            })),
            "backlog": self.backlog.as_ref().map(|backlog| json!({
                "waiting": backlog.waiting,
                "accepted_per_second": backlog.accepted_per_second.round(),
                "drained_per_second": backlog.drained_per_second.round(),
                "memory_before_mb": backlog.memory_before_mb,
                "memory_queued_mb": backlog.memory_queued_mb,
                "memory_draining_mb": backlog.memory_draining_mb,
            })),
        })
    }

    /// The report as a Markdown table.
    pub fn table(&self) -> String {
        let mut text = format!(
            "JetStream ceilings on this machine: publish {:.0} msg/s, one-hop relay {:.0} msg/s\n\n",
            self.publish_ceiling, self.relay_ceiling
        );
        text.push_str("| scenario | messages | accepted msg/s | delivered msg/s | ÷ relay | accept p50/p99 ms | accept→final p50/p95/p99 ms | lost | CPU s per 1k (gw/disp/carr/anl) | peak MB (gw/disp/carr/anl) |\n");
        text.push_str("|---|---:|---:|---:|---:|---|---|---:|---|---|\n");
        for scenario in &self.scenarios {
            let per_service = per_service_line;
            text.push_str(&format!(
                "| {} | {} | {:.0} | {:.0} | {:.2} | {:.1} / {:.1} | {:.0} / {:.0} / {:.0} | {} | {} | {} |\n",
                scenario.name,
                scenario.messages,
                scenario.accepted_per_second,
                scenario.delivered_per_second,
                scenario.relay_ratio,
                scenario.accept_latency_ms.p50,
                scenario.accept_latency_ms.p99,
                scenario.final_latency_ms.p50,
                scenario.final_latency_ms.p95,
                scenario.final_latency_ms.p99,
                scenario.lost,
                per_service(&scenario.cpu_seconds_per_thousand, 3),
                per_service(&scenario.peak_memory_mb, 0),
            ));
        }
        if let Some(peer) = &self.peer {
            text.push_str(&self.side_by_side(peer));
        }
        if let Some(priority) = &self.priority {
            text.push_str(&format!(
                "\nPriority: KT held to {}/s, a bulk campaign of {} waiting there, {} high sends meanwhile ({} campaign messages still waiting after the last)\n\n\
                 | lane | accept→submitted p50 / p95 / p99 ms |\n|---|---|\n| high | {:.0} / {:.0} / {:.0} |\n| bulk | {:.0} / {:.0} / {:.0} |\n",
                priority.rate_per_second,
                priority.campaign,
                priority.high_sends,
                priority.campaign_waiting_after_high,
                priority.high_submit_latency_ms.p50,
                priority.high_submit_latency_ms.p95,
                priority.high_submit_latency_ms.p99,
                priority.bulk_submit_latency_ms.p50,
                priority.bulk_submit_latency_ms.p95,
                priority.bulk_submit_latency_ms.p99,
            ));
        }
        if let Some(backlog) = &self.backlog {
            text.push_str(&format!(
                "\nBacklog: {} messages waiting in the carrier queues (accepted at {:.0} msg/s; the carriers then worked it at {:.0} msg/s)\n\n",
                backlog.waiting, backlog.accepted_per_second, backlog.drained_per_second
            ));
            text.push_str("| resident MB (gw/disp/carr/anl) | before | backlog waiting, carriers stopped | carriers working the backlog (max) |\n|---|---|---|---|\n");
            text.push_str(&format!(
                "| | {} | {} | {} |\n",
                per_service_line(&backlog.memory_before_mb, 0),
                per_service_line(&backlog.memory_queued_mb, 0),
                per_service_line(&backlog.memory_draining_mb, 0),
            ));
        }
        text
    }
}

impl BenchReport {
    /// RNS's single requests delivered per second divided by Kannel's.
    pub fn single_to_peer(&self) -> Option<f64> {
        let single = self
            .scenarios
            .iter()
            .find(|scenario| scenario.name == "single")?;
        let peer = self.peer.as_ref()?;
        Some(single.delivered_per_second / peer.closed.delivered_per_second)
    }

    /// RNS's single scenario and Kannel's run of the same requests, with the CPU each
    /// process spent per request; then both at the paced scenario's fixed rate.
    fn side_by_side(&self, peer: &PeerReport) -> String {
        let scenario = |name: &str| self.scenarios.iter().find(|scenario| scenario.name == name);
        let mut text = format!(
            "\nSingle requests side by side ({} requests, {} clients, the same load generator):\n\n{SIDE_BY_SIDE_HEADER}",
            peer.requests, peer.clients
        );
        if let Some(single) = scenario("single") {
            text.push_str(&side_by_side_row("RNS", &single.into()));
        }
        text.push_str(&side_by_side_row(peer.name, &peer.closed));
        if let Some(ratio) = self.single_to_peer() {
            text.push_str(&format!(
                "\nRNS ÷ {}: {ratio:.2} × its delivered msg/s\n",
                peer.name
            ));
        }
        if let (Some(paced), Some(peer_paced)) = (scenario("paced"), &peer.paced) {
            text.push_str(&format!(
                "\nThe same requests at a fixed {} requests/s (an open loop: a request held back by the \
                 generator's limit of unanswered ones counts from when it was due):\n\n{SIDE_BY_SIDE_HEADER}",
                self.paced_rate
            ));
            text.push_str(&side_by_side_row("RNS", &paced.into()));
            text.push_str(&side_by_side_row(peer.name, peer_paced));
        }
        text
    }
}

const SIDE_BY_SIDE_HEADER: &str = "| gateway | accepted req/s | delivered msg/s | accept p50/p95/p99 ms | lost | CPU µs per request, every process but the load generator | load generator µs |\n|---|---:|---:|---|---:|---|---:|\n";

/// One side's row of a side-by-side table.
fn side_by_side_row(name: &str, run: &PeerRun) -> String {
    let (load, system): (Vec<_>, Vec<_>) = run
        .cpu_seconds_per_thousand
        .iter()
        .partition(|(process, _)| **process == LOAD_GENERATOR);
    let total: f64 = system.iter().map(|(_, seconds)| **seconds * 1_000.0).sum();
    let parts: Vec<String> = system
        .iter()
        .map(|(process, seconds)| format!("{process} {:.0}", **seconds * 1_000.0))
        .collect();
    let load: f64 = load.iter().map(|(_, seconds)| **seconds * 1_000.0).sum();
    let latency = run.accept_latency_ms;
    format!(
        "| {name} | {:.0} | {:.0} | {:.1} / {:.1} / {:.1} | {} | **{total:.0}**: {} | {load:.0} |\n",
        run.accepted_per_second,
        run.delivered_per_second,
        latency.p50,
        latency.p95,
        latency.p99,
        run.lost,
        parts.join(", ")
    )
}

impl From<&ScenarioReport> for PeerRun {
    fn from(scenario: &ScenarioReport) -> Self {
        Self {
            accepted_per_second: scenario.accepted_per_second,
            delivered_per_second: scenario.delivered_per_second,
            accept_latency_ms: scenario.accept_latency_ms,
            lost: scenario.lost,
            cpu_seconds_per_thousand: scenario.cpu_seconds_per_thousand.clone(),
        }
    }
}

/// `a / b / c / d`: a value per service, in [`Service::ALL`] order.
fn per_service_line(values: &BTreeMap<&'static str, f64>, precision: usize) -> String {
    Service::ALL
        .iter()
        .map(|service| {
            format!(
                "{:.precision$}",
                values.get(service.binary()).copied().unwrap_or(0.0)
            )
        })
        .collect::<Vec<_>>()
        .join(" / ")
}

/// Runs `plan` against a system it starts.
pub async fn run(plan: BenchPlan) -> BenchReport {
    let mut system = System::start_with(SystemOptions {
        carrier_concurrency: plan.carrier_concurrency,
        carrier_batch_size: plan.carrier_batch_size,
        analytics_linger_milliseconds: plan.analytics_linger_milliseconds,
        ..Default::default()
    })
    .await;
    let (publish_ceiling, relay_ceiling) = ceilings(&system, plan.ceiling_messages).await;
    eprintln!("bench: ceilings publish {publish_ceiling:.0}/s, relay {relay_ceiling:.0}/s");
    let mut scenarios = Vec::new();
    let mut backlog_report = None;
    let mut priority_report = None;
    let mut peer_report = None;
    for name in plan.scenarios.clone() {
        if name == "kannel" {
            let report = kannel_peer(&plan).await;
            eprintln!("bench: {report:?}");
            peer_report = Some(report);
            continue;
        }
        if name == "priority" {
            let report = priority(&system, &plan).await;
            eprintln!("bench: {report:?}");
            priority_report = Some(report);
            continue;
        }
        if name == "backlog" {
            let report = backlog(&mut system, &plan).await;
            eprintln!("bench: {report:?}");
            backlog_report = Some(report);
            continue;
        }
        let report = scenario(&mut system, &plan, name, relay_ceiling).await;
        eprintln!("bench: {report:?}");
        scenarios.push(report);
    }
    BenchReport {
        publish_ceiling,
        relay_ceiling,
        paced_rate: plan.paced_rate,
        scenarios,
        peer: peer_report,
        priority: priority_report,
        backlog: backlog_report,
    }
}

/// Pipelined publish and one-hop relay rates of the system's nats-server, with
/// 200-byte messages on file storage.
async fn ceilings(system: &System, messages: usize) -> (f64, f64) {
    let client = system.nats.client().await;
    let jetstream = jetstream::new(client);
    for (name, subject) in [("BENCH_IN", "bench.in"), ("BENCH_OUT", "bench.out")] {
        let _ = jetstream.delete_stream(name).await;
        jetstream
            .create_stream(stream::Config {
                name: name.to_owned(),
                subjects: vec![subject.to_owned()],
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .expect("a bench stream");
    }
    let payload = Bytes::from(vec![b'x'; 200]);
    let started = Instant::now();
    publish_pipelined(&jetstream, "bench.in", &payload, messages).await;
    let publish = messages as f64 / started.elapsed().as_secs_f64();

    let consumer = jetstream
        .get_stream("BENCH_IN")
        .await
        .expect("BENCH_IN")
        .create_consumer(consumer::pull::Config {
            durable_name: Some("relay".to_owned()),
            ack_policy: consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .expect("a relay consumer");
    let started = Instant::now();
    let mut relayed = 0;
    while relayed < messages {
        let mut batch = consumer
            .fetch()
            .max_messages(1_000)
            .messages()
            .await
            .expect("a fetch");
        let mut received = Vec::with_capacity(1_000);
        while let Some(Ok(message)) = batch.next().await {
            received.push(message);
        }
        let mut acks = futures::stream::FuturesUnordered::new();
        for message in &received {
            acks.push(
                jetstream
                    .publish("bench.out", message.payload.clone())
                    .await
                    .expect("a publish")
                    .into_future(),
            );
        }
        while let Some(ack) = acks.next().await {
            ack.expect("a publish acknowledgement");
        }
        for message in &received {
            message.ack().await.expect("an ack");
        }
        relayed += received.len();
    }
    let relay = messages as f64 / started.elapsed().as_secs_f64();
    for name in ["BENCH_IN", "BENCH_OUT"] {
        let _ = jetstream.delete_stream(name).await;
    }
    (publish, relay)
}

async fn publish_pipelined(
    jetstream: &jetstream::Context,
    subject: &'static str,
    payload: &Bytes,
    messages: usize,
) {
    const WINDOW: usize = 4_096;
    let mut acks: futures::stream::FuturesUnordered<
        <async_nats::jetstream::context::PublishAckFuture as IntoFuture>::IntoFuture,
    > = futures::stream::FuturesUnordered::new();
    for _ in 0..messages {
        if acks.len() >= WINDOW {
            if let Some(ack) = acks.next().await {
                ack.expect("a publish acknowledgement");
            }
        }
        acks.push(
            jetstream
                .publish(subject, payload.clone())
                .await
                .expect("a publish")
                .into_future(),
        );
    }
    while let Some(ack) = acks.next().await {
        ack.expect("a publish acknowledgement");
    }
}

/// What the harness process is called in CPU accounts: it runs the load generator
/// (and polls ClickHouse meanwhile).
pub(crate) const LOAD_GENERATOR: &str = "load generator";

/// Every process of the system, and the harness itself.
fn every_process(system: &System) -> Vec<(&'static str, u32)> {
    let mut processes = system.processes();
    processes.push((LOAD_GENERATOR, std::process::id()));
    processes
}

/// CPU seconds used so far (user + system, from /proc) by each name of `processes`,
/// summed over the processes of that name.
pub(crate) fn cpu_seconds(processes: &[(&'static str, u32)]) -> BTreeMap<&'static str, f64> {
    let mut seconds = BTreeMap::new();
    for (name, pid) in processes {
        if let Some(used) = process_cpu_seconds(*pid) {
            *seconds.entry(*name).or_default() += used;
        }
    }
    seconds
}

fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds per 1,000 messages of each name between two readings.
pub(crate) fn cpu_per_thousand(
    before: &BTreeMap<&'static str, f64>,
    after: &BTreeMap<&'static str, f64>,
    messages: usize,
) -> BTreeMap<&'static str, f64> {
    after
        .iter()
        .map(|(name, after)| {
            let before = before.get(name).copied().unwrap_or(0.0);
            (*name, (after - before) * 1_000.0 / messages.max(1) as f64)
        })
        .collect()
}

/// Peak resident memory of each service so far, in MB.
fn peak_memory(system: &System) -> BTreeMap<&'static str, f64> {
    memory(system, "VmHWM:")
}

/// Resident memory of each service now, in MB.
fn resident_memory(system: &System) -> BTreeMap<&'static str, f64> {
    memory(system, "VmRSS:")
}

/// A memory figure (`field` of /proc/<pid>/status) of each service, in MB.
fn memory(system: &System, field: &str) -> BTreeMap<&'static str, f64> {
    Service::ALL
        .iter()
        .filter_map(|service| {
            let pid = system.pid(*service)?;
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let kilobytes: f64 = status
                .lines()
                .find_map(|line| line.strip_prefix(field))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some((service.binary(), kilobytes / 1_024.0))
        })
        .collect()
}

async fn scenario(
    system: &mut System,
    plan: &BenchPlan,
    name: &'static str,
    relay_ceiling: f64,
) -> ScenarioReport {
    let (messages, recipients, load) = match name {
        "bulk" => (
            plan.bulk_messages,
            plan.bulk_recipients,
            Load::Clients(plan.bulk_concurrency),
        ),
        "single" => (
            plan.single_requests,
            1,
            Load::Clients(plan.single_concurrency),
        ),
        "paced" => (plan.single_requests, 1, plan.paced()),
        _ => (
            plan.mixed_messages,
            plan.bulk_recipients,
            Load::Clients(plan.bulk_concurrency),
        ),
    };
    let customer = format!("bench-{name}");
    let key = system
        .customer_with_sender(
            &customer,
            &crate::sender_for(&customer),
            messages as u64 * 2,
        )
        .await;
    if name == "mixed" {
        system
            .set_knobs("kt", json!({"transient_failure_rate": 0.2}))
            .await;
    }
    let cpu_before = cpu_seconds(&every_process(system));
    let started = Instant::now();
    let accept_latencies = submit_all(
        system,
        &key,
        Submission {
            messages,
            recipients,
            load,
            priority: "normal",
            from: crate::sender_for(&customer),
        },
    )
    .await;
    let accepted_after = started.elapsed();
    // Delivered: every message's final state is in ClickHouse.
    let deadline = Instant::now() + plan.settle_timeout;
    // Looked at every 100 ms, as Kannel's peer is: a cheap sum of final states from
    // the hourly statistics (a few rows; a scan of the events grew with them, to an
    // eighth of ClickHouse's CPU in bulk), and only once it reaches the messages the
    // exact count of distinct messages with a final event, which a duplicate event
    // cannot inflate (at most every 500 ms while duplicates keep the sum ahead, and
    // every 2 s whatever the sum says, should a final state escape the statistics).
    let final_events =
        format!("FROM rns.events WHERE customer_id = '{customer}' AND ordinal = 4294967295");
    let final_states = format!(
        "SELECT sumMerge(delivered) + sumMerge(failed) + sumMerge(undeliverable) \
         + sumMerge(unknown) + sumMerge(expired) FROM rns.carrier_hours \
         WHERE customer_id = '{customer}'"
    );
    let mut final_count = 0;
    let mut exact_looked: Option<Instant> = None;
    let looking_since = Instant::now();
    while Instant::now() < deadline {
        let since_exact = exact_looked.map_or(looking_since.elapsed(), |at| at.elapsed());
        let exact_due = since_exact >= Duration::from_secs(2)
            || (since_exact >= Duration::from_millis(500) || exact_looked.is_none())
                && count(system, &final_states).await >= messages;
        if exact_due {
            exact_looked = Some(Instant::now());
            final_count = count(
                system,
                &format!("SELECT uniqExact(message_id) {final_events}"),
            )
            .await;
            if final_count >= messages {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if final_count < messages {
        final_count = count(
            system,
            &format!("SELECT uniqExact(message_id) {final_events}"),
        )
        .await;
    }
    let delivered_after = started.elapsed();
    let cpu_after = cpu_seconds(&every_process(system));
    if name == "mixed" {
        system
            .set_knobs("kt", json!({"transient_failure_rate": 0.0}))
            .await;
    }
    let quantiles = system
        .clickhouse
        .query(&format!(
            "SELECT quantiles(0.5, 0.95, 0.99)(at_ms - accepted_at_ms) FROM rns.events \
             WHERE customer_id = '{customer}' AND ordinal = 4294967295 FORMAT TabSeparated"
        ))
        .await;
    let delivered_per_second = final_count.min(messages) as f64 / delivered_after.as_secs_f64();
    ScenarioReport {
        name,
        messages,
        accepted_per_second: messages as f64 / accepted_after.as_secs_f64(),
        delivered_per_second,
        accept_latency_ms: Percentiles::of(accept_latencies),
        final_latency_ms: Percentiles::parse(&quantiles),
        lost: messages.saturating_sub(final_count),
        cpu_seconds_per_thousand: cpu_per_thousand(&cpu_before, &cpu_after, messages),
        peak_memory_mb: peak_memory(system),
        relay_ratio: delivered_per_second / relay_ceiling,
    }
}

/// Kannel given the single scenario's requests (see the module's header): its rate
/// runs from the first request until bearerbox's status page counts every one sent
/// to a fake SMSC. When the plan has the paced scenario, Kannel then takes its
/// requests too, at the same fixed rate.
async fn kannel_peer(plan: &BenchPlan) -> PeerReport {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let kannel = crate::kannel::Kannel::start_with_fake_smscs(directory.path(), 3).await;
    let (requests, clients) = (plan.single_requests, plan.single_concurrency);
    let closed = kannel_run(&kannel, plan, Load::Clients(clients)).await;
    let paced = if plan.scenarios.contains(&"paced") {
        Some(kannel_run(&kannel, plan, plan.paced()).await)
    } else {
        None
    };
    PeerReport {
        name: "Kannel 1.4.5",
        requests,
        clients,
        closed,
        paced,
    }
}

/// The single scenario's requests made to `kannel` as `load` says.
async fn kannel_run(kannel: &crate::kannel::Kannel, plan: &BenchPlan, load: Load) -> PeerRun {
    let requests = plan.single_requests;
    let http = load_client(load.most_unanswered());
    let sendsms = kannel.sendsms_url();
    let mut processes = kannel.processes();
    processes.push((LOAD_GENERATOR, std::process::id()));
    let sent_before = kannel.sent(&http).await;
    let cpu_before = cpu_seconds(&processes);
    let started = Instant::now();
    let accept_latencies = drive("Kannel", requests, load, |index| {
        crate::kannel::sendsms_request(&http, &sendsms, &format!("010{index:08}"), SINGLE_TEXT)
    })
    .await;
    let accepted_after = started.elapsed();
    let target = sent_before + requests as u64;
    let deadline = Instant::now() + plan.settle_timeout;
    let mut sent = kannel.sent(&http).await;
    while sent < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        sent = kannel.sent(&http).await;
    }
    let delivered_after = started.elapsed();
    let cpu_after = cpu_seconds(&processes);
    PeerRun {
        accepted_per_second: requests as f64 / accepted_after.as_secs_f64(),
        delivered_per_second: sent.saturating_sub(sent_before).min(requests as u64) as f64
            / delivered_after.as_secs_f64(),
        accept_latency_ms: Percentiles::of(accept_latencies),
        lost: target.saturating_sub(sent) as usize,
        cpu_seconds_per_thousand: cpu_per_thousand(&cpu_before, &cpu_after, requests),
    }
}

/// The priority scenario (see the module's header). The campaign and the high sends
/// come from two customers routed to KT alone, so ClickHouse tells their lanes apart.
async fn priority(system: &System, plan: &BenchPlan) -> PriorityReport {
    system
        .set_carrier_rate("kt", json!(plan.priority_rate))
        .await;
    let mut keys = Vec::new();
    for customer in ["bench-priority-bulk", "bench-priority-high"] {
        let key = system
            .customer_with_sender(
                customer,
                &crate::sender_for(customer),
                plan.priority_campaign as u64 * 2,
            )
            .await;
        system
            .set_sms_weights(&key, json!({"kt": 1, "skt": 0, "lgu": 0}))
            .await;
        keys.push(key);
    }
    submit_all(
        system,
        &keys[0],
        Submission {
            messages: plan.priority_campaign,
            recipients: 1_000,
            load: Load::Clients(2),
            priority: "bulk",
            from: crate::sender_for("bench-priority-bulk"),
        },
    )
    .await;
    let mut ticks = tokio::time::interval(plan.priority_high_every);
    for send in 0..plan.priority_high_sends {
        ticks.tick().await;
        let to = format!("010{:08}", 90_000_000 + send);
        let (status, reply) = system
            .call(
                reqwest::Method::POST,
                "/v1/messages",
                &keys[1],
                Some(json!({"from": crate::sender_for("bench-priority-high"), "to": [to], "text": "인증번호 123456", "priority": "high"})),
            )
            .await;
        assert_eq!(status, 202, "{reply}");
    }
    let finals = |customer: &'static str| {
        format!("SELECT uniqExact(message_id) FROM rns.events WHERE customer_id = '{customer}' AND ordinal = 4294967295")
    };
    let submitted = |customer: &'static str| {
        format!("SELECT uniqExact(message_id) FROM rns.events WHERE customer_id = '{customer}' AND kind = 'submitted'")
    };
    let deadline = Instant::now() + plan.settle_timeout;
    while Instant::now() < deadline
        && count(system, &finals("bench-priority-high")).await < plan.priority_high_sends
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let campaign_waiting_after_high = plan
        .priority_campaign
        .saturating_sub(count(system, &submitted("bench-priority-bulk")).await);
    while Instant::now() < deadline
        && count(system, &finals("bench-priority-bulk")).await < plan.priority_campaign
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    system.set_carrier_rate("kt", Value::Null).await;
    let latency = |customer: &'static str| async move {
        let quantiles = system
            .clickhouse
            .query(&format!(
                "SELECT quantiles(0.5, 0.95, 0.99)(at_ms - accepted_at_ms) FROM rns.events \
                 WHERE customer_id = '{customer}' AND kind = 'submitted' FORMAT TabSeparated"
            ))
            .await;
        Percentiles::parse(&quantiles)
    };
    let lost = (plan.priority_high_sends + plan.priority_campaign).saturating_sub(
        count(system, &finals("bench-priority-high")).await
            + count(system, &finals("bench-priority-bulk")).await,
    );
    PriorityReport {
        rate_per_second: plan.priority_rate,
        campaign: plan.priority_campaign,
        high_sends: plan.priority_high_sends,
        high_submit_latency_ms: latency("bench-priority-high").await,
        bulk_submit_latency_ms: latency("bench-priority-bulk").await,
        campaign_waiting_after_high,
        lost,
    }
}

/// The memory scenario: with the carriers stopped, `plan.backlog_messages` are
/// accepted and routed into the carrier queues; every service's memory is read with
/// the backlog waiting, then the carriers start and work it for
/// `plan.backlog_drain` while their memory is watched. Memory must not grow with the
/// backlog: every queue is read in bounded batches with bounded work in flight.
async fn backlog(system: &mut System, plan: &BenchPlan) -> BacklogReport {
    let messages = plan.backlog_messages;
    let key = system
        .customer_with_sender(
            "bench-backlog",
            &crate::sender_for("bench-backlog"),
            messages as u64 * 2,
        )
        .await;
    let memory_before_mb = resident_memory(system);
    system.terminate(Service::Carriers, Duration::from_secs(15));
    let started = Instant::now();
    submit_all(
        system,
        &key,
        Submission {
            messages,
            recipients: plan.bulk_recipients,
            load: Load::Clients(plan.bulk_concurrency),
            priority: "normal",
            from: crate::sender_for("bench-backlog"),
        },
    )
    .await;
    let accepted_per_second = messages as f64 / started.elapsed().as_secs_f64();
    let jetstream = jetstream::new(system.nats.client().await);
    // Every request routed: the dispatcher's consumer has nothing left.
    let deadline = Instant::now() + plan.settle_timeout * 2;
    while Instant::now() < deadline {
        let mut consumer = jetstream
            .get_consumer_from_stream::<consumer::pull::Config, _, _>(
                rns_types::subjects::DISPATCHER_CONSUMER,
                rns_types::subjects::SEND_STREAM,
            )
            .await
            .expect("the dispatcher's consumer");
        let info = consumer.info().await.expect("consumer info");
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let waiting_now = |jetstream: jetstream::Context| async move {
        let mut waiting = 0;
        for (carrier, _) in crate::CARRIERS {
            let carrier = rns_types::CarrierId::parse(carrier).expect("a carrier id");
            let name = rns_types::subjects::carrier_stream(&carrier);
            if let Ok(stream) = jetstream.get_stream(&name).await {
                waiting += jobs_in(&stream).await;
            }
        }
        waiting
    };
    let waiting = waiting_now(jetstream.clone()).await;
    let memory_queued_mb = resident_memory(system);
    eprintln!("bench: backlog of {waiting} waiting; memory {memory_queued_mb:?}");
    system.start_service(Service::Carriers).await;
    let drain_started = Instant::now();
    let mut memory_draining_mb: BTreeMap<&'static str, f64> = BTreeMap::new();
    while drain_started.elapsed() < plan.backlog_drain {
        for (service, megabytes) in resident_memory(system) {
            let most = memory_draining_mb.entry(service).or_default();
            *most = most.max(megabytes);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let remaining = waiting_now(jetstream).await;
    BacklogReport {
        waiting,
        accepted_per_second,
        drained_per_second: waiting.saturating_sub(remaining) as f64
            / drain_started.elapsed().as_secs_f64(),
        memory_before_mb,
        memory_queued_mb,
        memory_draining_mb,
    }
}

/// The jobs waiting in a carrier queue: a batch message counts each of its jobs.
async fn jobs_in(stream: &jetstream::stream::Stream) -> u64 {
    let Ok(info) = stream.get_info().await else {
        return 0;
    };
    let state = info.state;
    let mut jobs = 0;
    for sequence in state.first_sequence..state.last_sequence.saturating_add(1) {
        // Sequences of jobs already taken are gaps in a work queue.
        let Ok(stored) = stream.get_raw_message(sequence).await else {
            continue;
        };
        jobs += match rns_types::wire::CarrierPayload::decode(&stored.payload) {
            Ok(payload) => payload.into_jobs().len() as u64,
            Err(_) => 1,
        };
    }
    jobs
}

/// What [`submit_all`] sends: `messages` to numbers from 010-0000-0000 on, in
/// requests of `recipients`, sent as `load` says, in `priority`'s lane.
struct Submission {
    messages: usize,
    recipients: usize,
    load: Load,
    priority: &'static str,
    /// The customer's sender number.
    from: String,
}

/// Makes every request of `submission`, retrying what the gateway could not take now;
/// returns each request's accept latency in milliseconds.
async fn submit_all(system: &System, key: &str, submission: Submission) -> Vec<f64> {
    let Submission {
        messages,
        recipients,
        load,
        priority,
        from,
    } = submission;
    let client = load_client(load.most_unanswered());
    let url = format!("{}/v1/messages", system.gateway_url());
    let text = if recipients == 1 {
        SINGLE_TEXT
    } else {
        "bench"
    };
    drive(
        "the gateway",
        messages.div_ceil(recipients),
        load,
        |request| {
            let first = request * recipients;
            let to: Vec<String> = (first..(first + recipients).min(messages))
                .map(|number| format!("010{number:08}"))
                .collect();
            client
                .post(&url)
                .bearer_auth(key)
                .json(&json!({"from": from, "to": to, "text": text, "priority": priority}))
        },
    )
    .await
}

/// The text of every single request, to RNS and to Kannel alike: a verification code.
pub(crate) const SINGLE_TEXT: &str = "[RNS] 인증번호는 123456 입니다.";

/// The load generator's HTTP client: a connection kept per concurrent client.
pub(crate) fn load_client(concurrency: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// How the load generator sends its requests.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Load {
    /// This many requests at a time, each sent once one before it was taken (a closed
    /// loop: the rate is what the gateway sustains, the latency what that many waiting
    /// clients make it).
    Clients(usize),
    /// A request every `1 / rate` s whatever the answers (an open loop), at most `limit`
    /// unanswered. A request held back by the limit counts its latency from when it was
    /// due, so a slow gateway cannot hide its queue in the generator's.
    Paced { rate: u32, limit: usize },
}

impl Load {
    /// The most requests unanswered at once: the connections a client keeps.
    pub(crate) fn most_unanswered(self) -> usize {
        match self {
            Load::Clients(clients) => clients,
            Load::Paced { limit, .. } => limit,
        }
    }
}

/// The load generator: makes `requests` requests as `load` says (the request of index
/// `i` built by `request(i)`), each until `gateway` took it ([`until_taken`]); returns
/// each request's milliseconds until it was taken.
pub(crate) async fn drive(
    gateway: &str,
    requests: usize,
    load: Load,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> Vec<f64> {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let (concurrency, period) = match load {
        Load::Clients(clients) => (clients, None),
        Load::Paced { rate, limit } => (limit, Some(Duration::from_secs(1) / rate.max(1))),
    };
    let started = tokio::time::Instant::now();
    futures::stream::iter(0..requests)
        .for_each_concurrent(concurrency, |index| {
            let latencies = &latencies;
            let request = &request;
            async move {
                let took = match period {
                    None => until_taken(gateway, || request(index)).await,
                    Some(period) => {
                        let due = started + period * index as u32;
                        let held_back = tokio::time::Instant::now() > due;
                        tokio::time::sleep_until(due).await;
                        // On time, the timer's own lateness (up to a millisecond) is
                        // not the gateway's; held back, the wait since due is.
                        let from = if held_back {
                            due
                        } else {
                            tokio::time::Instant::now()
                        };
                        until_taken(gateway, || request(index)).await;
                        from.elapsed().as_secs_f64() * 1_000.0
                    }
                };
                latencies.lock().await.push(took);
            }
        })
        .await;
    let latencies = latencies.lock().await.clone();
    latencies
}

/// Makes a request until `gateway` takes it (2xx), again 100 ms after an answer that
/// says "not now" (5xx, 429) or a failed connection; any other refusal is a bench bug
/// and panics. The milliseconds the request that was taken took.
pub(crate) async fn until_taken(
    gateway: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> f64 {
    loop {
        let sent = Instant::now();
        match request().send().await {
            Ok(response) if response.status().is_success() => {
                return sent.elapsed().as_secs_f64() * 1_000.0
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                assert!(
                    status.is_server_error() || status.as_u16() == 429,
                    "{gateway} refused a bench request: {status} {text}"
                );
            }
            Err(error) => eprintln!("bench: a request to {gateway} failed, retrying: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(system: &System, statement: &str) -> usize {
    system
        .clickhouse
        .query(&format!("{statement} FORMAT TabSeparated"))
        .await
        .trim()
        .parse()
        .unwrap_or(0)
}
