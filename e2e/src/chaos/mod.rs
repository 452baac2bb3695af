//! The chaos scenario: load through the real binaries while processes die.
//!
//! While a load generator sends requests for several customers (retrying with the
//! same `Idempotency-Key` until it gets a 202, as a careful client does), a script
//! kills every service with SIGKILL at random moments and restarts it, puts one
//! carrier in outage, makes another slower than the submit timeout and throttles a
//! third (each for a while, then back), stops ClickHouse for a while and restarts
//! nats-server once.
//! Variants stop the services with SIGTERM instead ([`ChaosPlan::graceful`]: each
//! must exit within its grace period) or run a 3-node cluster with R3 streams and
//! kill one node ([`ChaosPlan::cluster`]). One carrier reports delivery in receipts
//! the whole time, some of them late, lost, duplicated or before the submit answer.
//! With [`ChaosPlan::smpp`] the SMS carriers speak SMPP to SMSCs instead, all of them
//! reporting in receipts, and one SMSC is killed and started again ([`carriers`] has
//! the faults of each kind).
//! Afterwards it compares four records: what the gateway accepted, the final states
//! in ClickHouse, what each carrier took (message ids, or destinations over SMPP),
//! and what the receipts said (or did not say); it checks that every
//! circuit that opened closed again once its carrier was back, and — with every
//! carrier back — sends calm traffic last, whose split must match the weights
//! within 1%.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use rns_service::shutdown::GRACE_PERIOD;

use rns_types::wire::MessageStatus;

use crate::{Service, System, SystemOptions, CARRIERS};

mod carriers;
use carriers::{CarrierSide, Trouble, ASYNCHRONOUS_CARRIER};

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct ChaosPlan {
    pub messages: usize,
    pub recipients_per_request: usize,
    pub customers: usize,
    /// Rounds of kills: each round kills every service once.
    pub kill_rounds: usize,
    /// Longest pause between two faults.
    pub pause: Duration,
    pub carrier_outage: Duration,
    pub clickhouse_outage: Duration,
    /// How long the wait for every accepted message to reach a final state goes on
    /// after the last message that became final: a message counts as lost only once
    /// nothing has moved for this long (or after [`SETTLE_CAP_FACTOR`] times it in
    /// all). A machine loaded by other tests works off the backlog slower, but works
    /// it off; a fixed window counted messages still on their way as lost.
    pub settle_timeout: Duration,
    /// Whether to restart nats-server once (the full scenario does; the short form
    /// leaves it out while a rare stall of a service restarted across the server
    /// restart is investigated). With a cluster, one node is killed instead
    /// (SIGKILL) and started again later.
    pub restart_nats: bool,
    /// Whether services are stopped with SIGTERM, as an orchestrator stops them
    /// (each must then exit within its grace period), instead of SIGKILL.
    pub terminate: bool,
    /// Whether a carrier outage and a ClickHouse outage are part of the script.
    pub outages: bool,
    /// nats-server nodes: 1, or 3 for a cluster with streams replicated three times.
    pub nats_nodes: usize,
    /// How long a receipt is awaited (and an unanswered submit asked again): lost
    /// receipts end `unknown` this long after their submit.
    pub receipt_deadline: Duration,
    /// Messages per customer sent once every fault is over, whose split by carrier
    /// must match the weights within 1%.
    pub calm_messages_per_customer: usize,
    /// The pace of the load while the faults go on.
    pub messages_per_second: usize,
    /// The SMS carriers speak SMPP to SMSCs (node-smpp's and smpp34's) instead of
    /// HTTP to the simulators; every SMSC reports in receipts, and one is killed and
    /// started again.
    pub smpp: bool,
    pub seed: u64,
}

impl ChaosPlan {
    /// The full scenario of `./scripts/chaos`.
    pub fn full(seed: u64) -> Self {
        Self {
            messages: 100_000,
            recipients_per_request: 500,
            customers: 3,
            kill_rounds: 3,
            pause: Duration::from_secs(4),
            carrier_outage: Duration::from_secs(30),
            clickhouse_outage: Duration::from_secs(30),
            settle_timeout: Duration::from_secs(600),
            restart_nats: true,
            terminate: false,
            outages: true,
            nats_nodes: 1,
            receipt_deadline: Duration::from_secs(90),
            calm_messages_per_customer: 3_000,
            messages_per_second: 2_000,
            smpp: false,
            seed,
        }
    }

    /// The short form that runs in `./scripts/test`.
    pub fn short(seed: u64) -> Self {
        Self {
            messages: 6_000,
            recipients_per_request: 100,
            customers: 3,
            kill_rounds: 1,
            pause: Duration::from_millis(800),
            carrier_outage: Duration::from_secs(3),
            clickhouse_outage: Duration::from_secs(3),
            settle_timeout: Duration::from_secs(180),
            restart_nats: false,
            terminate: false,
            outages: true,
            nats_nodes: 1,
            receipt_deadline: Duration::from_secs(20),
            calm_messages_per_customer: 600,
            messages_per_second: 1_000,
            smpp: false,
            seed,
        }
    }

    /// Every service stopped with SIGTERM under load (and started again), as a
    /// rolling deploy does.
    pub fn graceful(seed: u64) -> Self {
        Self {
            terminate: true,
            outages: false,
            pause: Duration::from_millis(1_500),
            ..Self::short(seed)
        }
    }

    /// The short form with the SMS carriers over SMPP ([`Self::smpp`]).
    pub fn short_over_smpp(seed: u64) -> Self {
        Self {
            smpp: true,
            ..Self::short(seed)
        }
    }

    /// A 3-node cluster with R3 streams, one node killed (SIGKILL) mid-run.
    pub fn cluster(seed: u64) -> Self {
        Self {
            kill_rounds: 0,
            outages: false,
            restart_nats: true,
            nats_nodes: 3,
            pause: Duration::from_secs(2),
            ..Self::short(seed)
        }
    }
}

/// What the scenario found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChaosReport {
    pub accepted: usize,
    pub final_states: usize,
    pub lost: usize,
    /// Message ids delivered by more than one carrier.
    pub duplicate_deliveries: usize,
    /// Messages with both a `delivered` and a `failed` event.
    pub conflicting_final_states: usize,
    /// Message ids a carrier delivered that RNS does not record as delivered.
    pub unrecorded_deliveries: usize,
    pub failovers: usize,
    /// Repeated submits of an already delivered message that a carrier recognised
    /// by its client reference (after a worker died between submit and record).
    pub resubmissions_absorbed: u64,
    /// Customers whose points do not balance once everything settled: balance +
    /// reserved + spent differs from what was topped up, something is still
    /// reserved, or spent differs from their delivered and unknown messages (1 point
    /// each; an unknown outcome is charged).
    pub unbalanced_points: usize,
    /// Services that did not exit within their grace period after SIGTERM.
    pub slow_exits: usize,
    /// Carriers whose circuit was still open once everything settled, though every
    /// carrier was back.
    pub open_circuits: usize,
    /// Submits the carriers answered "slow down" (429), all waited out.
    pub throttled: u64,
    /// Messages that ended `unknown`, `expired` or `undeliverable`.
    pub unknown: usize,
    pub expired: usize,
    pub undeliverable: usize,
    /// Receipts the asynchronous carrier posted (each copy of a duplicate counts),
    /// and those it never sent.
    pub receipts: u64,
    pub receipts_lost: u64,
    /// Messages of the asynchronous carrier whose final state is not what its receipt
    /// said (`delivered`, `undeliverable`), or not `unknown` though it sent none.
    pub receipt_mismatches: usize,
    /// Customer and carrier pairs whose share of the calm traffic's first choices is
    /// more than 1% from the weights.
    pub unbalanced_split: usize,
    /// The longest time a service took to exit after SIGTERM.
    pub longest_exit: Duration,
    /// Replicas of the SEND stream, as the services created it.
    pub stream_replicas: usize,
}

impl ChaosReport {
    pub fn passed(&self) -> bool {
        self.accepted > 0
            && self.lost == 0
            && self.duplicate_deliveries == 0
            && self.conflicting_final_states == 0
            && self.unrecorded_deliveries == 0
            && self.unbalanced_points == 0
            && self.slow_exits == 0
            && self.open_circuits == 0
            && self.receipt_mismatches == 0
            && self.unbalanced_split == 0
    }

    /// The closing line of `./scripts/chaos`.
    pub fn line(&self) -> String {
        format!(
            "chaos: accepted={} final={} lost={} duplicate_deliveries={} failovers={} unbalanced_points={} open_circuits={} throttled={} unknown={} expired={} undeliverable={} receipts={} receipts_lost={} receipt_mismatches={} unbalanced_split={}",
            self.accepted,
            self.final_states,
            self.lost,
            self.duplicate_deliveries,
            self.failovers,
            self.unbalanced_points,
            self.open_circuits,
            self.throttled,
            self.unknown,
            self.expired,
            self.undeliverable,
            self.receipts,
            self.receipts_lost,
            self.receipt_mismatches,
            self.unbalanced_split
        )
    }
}

/// A request the gateway accepted: its id and number of messages.
type Accepted = Vec<(String, usize)>;

/// Runs the scenario and returns what it found.
pub async fn run(plan: ChaosPlan) -> ChaosReport {
    let mut system = System::start_with(SystemOptions {
        ack_wait_seconds: 5,
        nats_nodes: plan.nats_nodes,
        receipt_deadline_seconds: plan.receipt_deadline.as_secs(),
        smpp: plan.smpp,
        ..Default::default()
    })
    .await;
    let mut carriers = CarrierSide::prepare(&system, plan.smpp).await;
    let mut keys = Vec::new();
    let weights = [
        json!({"kt": 50, "skt": 30, "lgu": 20}),
        json!({"kt": 1, "skt": 1, "lgu": 1}),
        json!({"kt": 0, "skt": 7, "lgu": 3}),
    ];
    for index in 0..plan.customers {
        let customer = format!("chaos-{index}");
        let key = system
            .customer_with_sender(&customer, &crate::sender_for(&customer), 1_000_000_000)
            .await;
        system
            .set_sms_weights(&key, weights[index % weights.len()].clone())
            .await;
        keys.push(key);
    }

    let accepted: Arc<Mutex<Accepted>> = Arc::default();
    let faults_done = Arc::new(AtomicBool::new(false));
    let customer_keys = keys.clone();
    let load = tokio::spawn(generate_load(
        system.gateway_url(),
        keys,
        plan.clone(),
        accepted.clone(),
        faults_done.clone(),
    ));
    let exits = inject_faults(&mut system, &plan, &mut carriers).await;
    faults_done.store(true, Ordering::SeqCst);
    // Every service must come back (a supervisor restarts one that does not) before
    // the load generator's retries can finish.
    for service in Service::ALL {
        if !system.is_running(service) {
            system.spawn_service(service);
        }
        system.wait_ready(service).await;
    }
    load.await.expect("the load generator does not panic");
    let open_circuits = open_circuits(&system).await;
    let calm = calm_traffic(&system, &customer_keys, plan.calm_messages_per_customer).await;
    let mut accepted = accepted.lock().await.clone();
    accepted.extend(calm.iter().cloned());
    let mut report = verify(&system, &carriers, &accepted, plan.settle_timeout).await;
    report.unbalanced_points = unbalanced_points(&system, &customer_keys).await;
    report.slow_exits = exits.iter().filter(|exit| **exit > GRACE_PERIOD).count();
    report.open_circuits = open_circuits;
    report.unbalanced_split = unbalanced_split(&system, &calm, &weights).await;
    report.longest_exit = exits.into_iter().max().unwrap_or_default();
    report.stream_replicas = async_nats::jetstream::new(system.nats.client().await)
        .get_stream(rns_types::subjects::SEND_STREAM)
        .await
        .map(|stream| stream.cached_info().config.num_replicas)
        .unwrap_or(0);
    if !report.passed() {
        eprintln!(
            "chaos: the services' logs are kept in {}",
            system.keep_logs().display()
        );
    }
    report
}

/// Sends `per_customer` messages for each customer with every carrier back, in
/// requests of 100, four at a time; returns the accepted requests.
async fn calm_traffic(system: &System, keys: &[String], per_customer: usize) -> Accepted {
    let requests: Vec<(usize, usize)> = (0..keys.len())
        .flat_map(|customer| (0..per_customer.div_ceil(100)).map(move |index| (customer, index)))
        .collect();
    let started = Instant::now();
    let accepted: Accepted = futures::stream::iter(requests)
        .map(|(customer, index)| async move {
            // Numbers of their own: over SMPP a destination names its message.
            let to: Vec<String> = (0..100)
                .map(|number| format!("0109{customer:01}{index:02}{number:04}"))
                .collect();
            let body = json!({"from": crate::sender_for(&format!("chaos-{customer}")), "to": to, "text": format!("calm {index}")});
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let (status, reply) = system
                    .call(
                        reqwest::Method::POST,
                        "/v1/messages",
                        &keys[customer],
                        Some(body.clone()),
                    )
                    .await;
                if let (202, Some(request)) = (status, reply["request_id"].as_str()) {
                    let count = reply["message_ids"].as_array().map_or(0, Vec::len);
                    return (request.to_owned(), count);
                }
                assert!(
                    Instant::now() < deadline,
                    "a calm request was refused for a minute: {status} {reply}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .buffer_unordered(4)
        .collect()
        .await;
    eprintln!(
        "chaos: calm traffic: {} requests accepted in {:?}",
        accepted.len(),
        started.elapsed()
    );
    accepted
}

/// Customer and carrier pairs whose share of the first choices of `calm` is more than
/// 1% off its weight (customer `chaos-<i>` has `weights[i % len]`).
async fn unbalanced_split(system: &System, calm: &Accepted, weights: &[Value]) -> usize {
    if calm.is_empty() {
        return 0;
    }
    let requests = calm
        .iter()
        .map(|(request, _)| format!("'{request}'"))
        .collect::<Vec<_>>()
        .join(",");
    let rows = system
        .clickhouse
        .query(&format!(
            // A batch of events inserted twice leaves duplicate rows until a merge.
            "SELECT customer_id, carrier, uniqExact(message_id) FROM rns.events \
             WHERE kind = 'routed' AND hop = 1 AND request_id IN ({requests}) \
             GROUP BY customer_id, carrier FORMAT TabSeparated"
        ))
        .await;
    let mut routed: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for line in rows.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if let [customer, carrier, count] = fields[..] {
            routed
                .entry(customer.to_owned())
                .or_default()
                .insert(carrier.to_owned(), count.trim().parse().unwrap_or(0.0));
        }
    }
    let mut unbalanced = 0;
    for (index, weights) in (0..routed.len().max(1)).zip(weights.iter().cycle()) {
        let customer = format!("chaos-{index}");
        let Some(counts) = routed.get(&customer) else {
            continue;
        };
        let total: f64 = counts.values().sum();
        let weight_sum: f64 = weights
            .as_object()
            .map(|weights| weights.values().filter_map(Value::as_f64).sum())
            .unwrap_or(0.0);
        for (carrier, weight) in weights.as_object().into_iter().flatten() {
            let target = weight.as_f64().unwrap_or(0.0) / weight_sum;
            let share = counts.get(carrier).copied().unwrap_or(0.0) / total;
            eprintln!("chaos: calm split {customer} {carrier}: {share:.4} (target {target:.4})");
            if (share - target).abs() > 0.01 {
                unbalanced += 1;
            }
        }
    }
    unbalanced
}

/// Carriers whose circuit is open, given a moment to close: every carrier is back by
/// now, so its recovery probe must close it within about a second. Answers to
/// submits made while a carrier was slow can still time out for a submit timeout
/// after it is back, each run of them opening its circuit for a probe's while (an
/// SMSC's probe is its bound session, good at once): the circuits must stay closed
/// for [`CIRCUITS_SETTLED`] before the calm traffic, whose split they would bend.
async fn open_circuits(system: &System) -> usize {
    let open = || async {
        let (_, circuits) = system
            .call(reqwest::Method::GET, "/v1/carriers", crate::ADMIN_KEY, None)
            .await;
        circuits["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|item| item["circuit"] == "open")
                    .count()
            })
            .unwrap_or(usize::MAX)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut closed_since = None;
    loop {
        let count = open().await;
        let now = Instant::now();
        if count > 0 {
            closed_since = None;
        } else if closed_since.is_none() {
            closed_since = Some(now);
        }
        let settled = closed_since.is_some_and(|since| now - since >= CIRCUITS_SETTLED);
        if settled || now >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How long every circuit stays closed before the calm traffic: longer than the
/// test system's 2 s submit timeout.
const CIRCUITS_SETTLED: Duration = Duration::from_secs(3);

/// Checks every customer's points once settlement caught up (see
/// [`ChaosReport::unbalanced_points`]).
async fn unbalanced_points(system: &System, keys: &[String]) -> usize {
    let delivered_rows = system
        .clickhouse
        .query(
            "SELECT customer_id, count() FROM (SELECT customer_id, message_id, argMax(status, ordinal) AS status \
             FROM rns.events GROUP BY customer_id, message_id) WHERE status IN ('delivered', 'unknown') GROUP BY customer_id FORMAT TabSeparated",
        )
        .await;
    let delivered: HashMap<String, i64> = delivered_rows
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(customer, count)| (customer.to_owned(), count.trim().parse().unwrap_or(0)))
        .collect();
    let mut unbalanced = 0;
    for (index, key) in keys.iter().enumerate() {
        let customer = format!("chaos-{index}");
        let deadline = Instant::now() + Duration::from_secs(60);
        let account = loop {
            let (_, account) = system
                .call(reqwest::Method::GET, "/v1/points", key, None)
                .await;
            if account["reserved"] == json!(0) || Instant::now() > deadline {
                break account;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let field = |name: &str| account[name].as_i64().unwrap_or(-1);
        let balanced = field("balance") + field("reserved") + field("spent") == field("topped_up");
        let spent_matches = field("spent") == delivered.get(&customer).copied().unwrap_or(0);
        if !(balanced && field("reserved") == 0 && spent_matches) {
            eprintln!(
                "chaos: points of {customer} do not balance: {account}, delivered {:?}",
                delivered.get(&customer)
            );
            unbalanced += 1;
        }
    }
    unbalanced
}

/// Sends at least `plan.messages` messages, and goes on until the faults are over
/// (up to three times as many), in requests of `recipients_per_request`, four at a
/// time, retrying each with its idempotency key until the gateway accepts it.
async fn generate_load(
    gateway: String,
    keys: Vec<String>,
    plan: ChaosPlan,
    accepted: Arc<Mutex<Accepted>>,
    faults_done: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let requests = plan.messages.div_ceil(plan.recipients_per_request);
    // Paced, so the traffic spans the faults: a pipeline faster than the fault script
    // would otherwise deliver everything before the first carrier goes down.
    let every = Duration::from_secs_f64(
        plan.recipients_per_request as f64 / plan.messages_per_second.max(1) as f64,
    );
    let pace = Mutex::new(tokio::time::interval(every));
    futures::stream::iter(0..requests * 3)
        .take_while(|request| {
            let more = *request < requests || !faults_done.load(Ordering::SeqCst);
            futures::future::ready(more)
        })
        .then(|request| {
            let pace = &pace;
            async move {
                pace.lock().await.tick().await;
                request
            }
        })
        .for_each_concurrent(4, |request| {
            let client = &client;
            let gateway = &gateway;
            let keys = &keys;
            let accepted = &accepted;
            let plan = &plan;
            async move {
                let first = request * plan.recipients_per_request;
                let recipients: Vec<String> = (first..first + plan.recipients_per_request)
                    .map(|number| format!("010{number:08}"))
                    .collect();
                let customer = request % keys.len();
                let body = json!({"from": crate::sender_for(&format!("chaos-{customer}")), "to": recipients, "text": format!("chaos {request}")});
                let key = &keys[customer];
                let deadline = Instant::now() + Duration::from_secs(300);
                while Instant::now() < deadline {
                    let response = client
                        .post(format!("{gateway}/v1/messages"))
                        .bearer_auth(key)
                        .header("idempotency-key", format!("chaos-{request}"))
                        .json(&body)
                        .send()
                        .await;
                    match response {
                        Ok(response) if response.status().as_u16() == 202 => {
                            let reply: Value = response.json().await.unwrap_or(Value::Null);
                            if let Some(request_id) = reply["request_id"].as_str() {
                                let count = reply["message_ids"].as_array().map_or(0, Vec::len);
                                accepted.lock().await.push((request_id.to_owned(), count));
                                return;
                            }
                        }
                        Ok(response) if response.status().is_client_error() => {
                            let status = response.status();
                            let text = response.text().await.unwrap_or_default();
                            panic!("the gateway refused a valid request: {status} {text}");
                        }
                        _ => {}
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                eprintln!("request {request} was never accepted");
            }
        })
        .await;
}

async fn pause(plan: &ChaosPlan, random: &mut rand::rngs::StdRng) {
    let milliseconds = random.random_range(100..=plan.pause.as_millis().max(101) as u64);
    tokio::time::sleep(Duration::from_millis(milliseconds)).await;
}

/// The fault script: kills (or SIGTERMs) and restarts, a carrier outage, a slow and
/// a throttled carrier, a ClickHouse outage, a nats-server restart (or the kill of
/// one cluster node) and, over SMPP, an SMSC killed and started again — in random
/// order and at random moments. Returns how long each SIGTERM'd service took to exit.
async fn inject_faults(
    system: &mut System,
    plan: &ChaosPlan,
    carriers: &mut CarrierSide,
) -> Vec<Duration> {
    let mut exits = Vec::new();
    let mut random = rand::rngs::StdRng::seed_from_u64(plan.seed);
    #[derive(Debug, Clone, Copy)]
    enum Fault {
        Kill(Service),
        Carrier(&'static str, Trouble),
        SmscRestart(&'static str),
        ClickHouseOutage,
        NatsRestart,
    }
    let mut faults: Vec<Fault> = Vec::new();
    for _ in 0..plan.kill_rounds {
        faults.extend(Service::ALL.iter().map(|service| Fault::Kill(*service)));
    }
    if plan.outages {
        let [(outage, _), (slow, _), (throttled, _), ..] = CARRIERS;
        faults.extend([
            Fault::Carrier(outage, Trouble::Outage),
            Fault::Carrier(slow, Trouble::Slow),
            Fault::Carrier(throttled, Trouble::Throttled),
            Fault::ClickHouseOutage,
        ]);
        let restartable = carriers.restartable();
        if !restartable.is_empty() {
            let carrier = restartable[random.random_range(0..restartable.len())];
            faults.push(Fault::SmscRestart(carrier));
        }
    }
    if plan.restart_nats {
        faults.push(Fault::NatsRestart);
    }
    for index in (1..faults.len()).rev() {
        faults.swap(index, random.random_range(0..=index));
    }
    // Carriers in trouble, each with when it is back.
    let mut carriers_back_at: Vec<(&str, Instant)> = Vec::new();
    let mut clickhouse_back_at: Option<Instant> = None;
    for fault in faults {
        pause(plan, &mut random).await;
        eprintln!("chaos: {fault:?}");
        match fault {
            Fault::Kill(service) if plan.terminate => {
                let started = Instant::now();
                // Past the grace period it is killed; the report counts it as slow.
                system.terminate(service, GRACE_PERIOD + Duration::from_secs(5));
                let exit = started.elapsed();
                eprintln!("chaos: {service:?} exited {exit:?} after SIGTERM");
                exits.push(exit);
                system.spawn_service(service);
            }
            Fault::Kill(service) => {
                system.kill(service);
                pause(plan, &mut random).await;
                system.spawn_service(service);
            }
            Fault::Carrier(carrier, trouble) => {
                carriers.trouble(system, carrier, trouble).await;
                carriers_back_at.push((carrier, Instant::now() + plan.carrier_outage));
            }
            Fault::SmscRestart(carrier) => {
                carriers.restart(system, carrier).await;
                // Its trouble, if it had one, went with it.
                carriers_back_at.retain(|(troubled, _)| *troubled != carrier);
            }
            Fault::ClickHouseOutage => {
                system.clickhouse.stop();
                clickhouse_back_at = Some(Instant::now() + plan.clickhouse_outage);
            }
            Fault::NatsRestart if !system.nats_peers.is_empty() => {
                let node = random.random_range(0..system.nats_peers.len());
                eprintln!(
                    "chaos: killing cluster node {} of {}",
                    node + 2,
                    plan.nats_nodes
                );
                system.nats_peers[node].kill();
                pause(plan, &mut random).await;
                pause(plan, &mut random).await;
                system.nats_peers[node].start_again().await;
            }
            Fault::NatsRestart => system.nats.restart().await,
        }
        for (carrier, _) in carriers_back_at
            .iter()
            .filter(|(_, at)| Instant::now() >= *at)
        {
            eprintln!("chaos: {carrier} is back");
            carriers.restore(system, carrier).await;
        }
        carriers_back_at.retain(|(_, at)| Instant::now() < *at);
        if clickhouse_back_at.is_some_and(|at| Instant::now() >= at) {
            system.clickhouse.resume().await;
            clickhouse_back_at = None;
        }
    }
    for (carrier, at) in carriers_back_at {
        tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
        eprintln!("chaos: {carrier} is back");
        carriers.restore(system, carrier).await;
    }
    if let Some(at) = clickhouse_back_at {
        tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
        system.clickhouse.resume().await;
    }
    exits
}

/// What JetStream holds about message `id` on its first hops at `carrier`: its
/// receipt deadline (the schedule, its due notice unread, or the entry left once
/// it came) and its `failure_reasons` entries (submit claim, attempts, move).
async fn message_diagnosis(system: &System, carrier: &str, id: &str) -> String {
    let jetstream = async_nats::jetstream::new(system.nats.client().await);
    let mut lines = Vec::new();
    if let Ok(stream) = jetstream
        .get_stream(rns_types::subjects::RECEIPTS_STREAM)
        .await
    {
        for hop in 0..3 {
            for subject in [
                format!("receipt_deadline.{carrier}.{id}.{hop}"),
                format!("receipt.{carrier}.deadline.{id}.{hop}"),
            ] {
                if let Ok(stored) = stream.get_last_raw_message_by_subject(&subject).await {
                    lines.push(format!(
                        "{subject} #{} {:?}: {}",
                        stored.sequence,
                        stored.headers,
                        String::from_utf8_lossy(&stored.payload)
                    ));
                }
            }
        }
    }
    if let Ok(reasons) = jetstream
        .get_key_value(rns_types::subjects::FAILURE_REASONS_BUCKET)
        .await
    {
        for hop in 0..3 {
            for suffix in ["submitting", "ambiguous", "next", "1", "2", "3"] {
                let key = format!("{id}.{hop}.{suffix}");
                if let Ok(Some(entry)) = reasons.entry(key.clone()).await {
                    lines.push(format!(
                        "failure_reasons {key} #{}: {}",
                        entry.revision,
                        String::from_utf8_lossy(&entry.value)
                    ));
                }
            }
        }
    }
    if lines.is_empty() {
        "no deadline and no failure_reasons entries".to_owned()
    } else {
        lines.join("\n")
    }
}

/// Every message id's current status, from ClickHouse.
async fn statuses(system: &System) -> HashMap<String, String> {
    let rows = system
        .clickhouse
        .query(
            "SELECT message_id, toString(argMax(status, ordinal)) FROM rns.events GROUP BY message_id FORMAT TabSeparated",
        )
        .await;
    rows.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(id, status)| (id.to_owned(), status.to_owned()))
        .collect()
}

/// What JetStream holds of `carrier`'s message `carrier_reference`:
/// its receipt correlation, and whether a receipt of it is stored unread in
/// `RECEIPTS`.
async fn receipt_diagnosis(system: &System, carrier: &str, carrier_reference: &str) -> String {
    let jetstream = async_nats::jetstream::new(system.nats.client().await);
    let carrier = rns_types::CarrierId::parse(carrier).expect("a carrier id");
    let key = rns_types::receipt::correlation_key(&carrier, carrier_reference);
    let last = |stream: String, subject: String| {
        let jetstream = jetstream.clone();
        async move {
            let stream = match jetstream.get_stream(&stream).await {
                Ok(stream) => stream,
                Err(error) => return format!("{stream}: {error}"),
            };
            match stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message) => format!(
                    "{subject} #{}: {}",
                    message.sequence,
                    String::from_utf8_lossy(&message.payload)
                ),
                Err(error) => format!("{subject}: {error}"),
            }
        }
    };
    let correlation = last(
        format!("KV_{}", rns_types::subjects::RECEIPT_CORRELATIONS_BUCKET),
        format!(
            "$KV.{}.{key}",
            rns_types::subjects::RECEIPT_CORRELATIONS_BUCKET
        ),
    )
    .await;
    let receipt = last(
        rns_types::subjects::RECEIPTS_STREAM.to_owned(),
        rns_types::subjects::receipt_subject(&key),
    )
    .await;
    format!("correlation: {correlation}\nreceipt: {receipt}")
}

/// What each SMS carrier's queue still holds and where its lanes' consumers stand,
/// for a diagnosis: a job left in a queue (handed out and never acknowledged, or
/// past MaxDeliver) shows here.
async fn carrier_queues_state(system: &System) -> String {
    let jetstream = async_nats::jetstream::new(system.nats.client().await);
    let mut lines = Vec::new();
    for carrier in ["kt", "skt", "lgu"] {
        let carrier = rns_types::CarrierId::parse(carrier).expect("a carrier id");
        let stream = rns_types::subjects::carrier_stream(&carrier);
        let held = match jetstream.get_stream(&stream).await {
            Ok(mut found) => match found.info().await {
                Ok(info) => format!(
                    "{stream} holds {} (sequences {}..{})",
                    info.state.messages, info.state.first_sequence, info.state.last_sequence
                ),
                Err(error) => format!("{stream} unreadable: {error}"),
            },
            Err(error) => format!("{stream} unreadable: {error}"),
        };
        lines.push(held);
        for priority in rns_types::Priority::ALL {
            let name = rns_types::subjects::carrier_lane_consumer(&carrier, priority);
            let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
                jetstream.get_consumer_from_stream(&name, &stream).await;
            if let Ok(consumer) = consumer {
                let info = consumer.cached_info();
                lines.push(format!(
                    "  {name}: pending {}, ack pending {}, redelivered {}, ack floor {}, delivered up to {}",
                    info.num_pending,
                    info.num_ack_pending,
                    info.num_redelivered,
                    info.ack_floor.stream_sequence,
                    info.delivered.stream_sequence
                ));
            }
        }
    }
    lines.join("\n")
}

/// The receipts consumer's counts, for a diagnosis.
async fn receipts_consumer_state(system: &System) -> String {
    let jetstream = async_nats::jetstream::new(system.nats.client().await);
    let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> = jetstream
        .get_consumer_from_stream(
            rns_types::subjects::RECEIPT_CONSUMER,
            rns_types::subjects::RECEIPTS_STREAM,
        )
        .await;
    let stream = jetstream
        .get_stream(rns_types::subjects::RECEIPTS_STREAM)
        .await
        .map(|stream| stream.cached_info().state.clone());
    match (consumer, stream) {
        (Ok(consumer), Ok(stream)) => {
            let info = consumer.cached_info();
            format!(
                "RECEIPTS holds {} messages; consumer receipts: pending {}, ack pending {}, redelivered {}, waiting pulls {}, delivered up to {}",
                stream.messages,
                info.num_pending,
                info.num_ack_pending,
                info.num_redelivered,
                info.num_waiting,
                info.delivered.stream_sequence
            )
        }
        (consumer, stream) => format!(
            "RECEIPTS unreadable: {:?} {:?}",
            consumer.err(),
            stream.err()
        ),
    }
}

/// A message's events in ClickHouse, one line each, for a diagnosis.
async fn timeline(system: &System, id: &str) -> String {
    system
        .clickhouse
        .query(&format!(
            "SELECT at_ms, toString(kind), carrier, hop, attempt, detail FROM rns.events \
             WHERE message_id = '{id}' ORDER BY at_ms FORMAT TabSeparated"
        ))
        .await
}

async fn count(system: &System, statement: &str) -> usize {
    system
        .clickhouse
        .query(statement)
        .await
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The longest wait for final states, in settle timeouts, however steadily messages
/// keep becoming final.
pub const SETTLE_CAP_FACTOR: u32 = 4;

async fn verify(
    system: &System,
    carriers: &CarrierSide,
    accepted: &Accepted,
    settle_timeout: Duration,
) -> ChaosReport {
    let expected: HashSet<String> = accepted
        .iter()
        .flat_map(|(request, count)| (0..*count).map(move |index| format!("{request}-{index}")))
        .collect();
    let is_final = |status: &str| {
        MessageStatus::ALL
            .iter()
            .any(|known| known.is_final() && known.as_str() == status)
    };
    let cap = Instant::now() + settle_timeout * SETTLE_CAP_FACTOR;
    let mut moved = (0, Instant::now());
    let mut current = statuses(system).await;
    loop {
        let finals = expected
            .iter()
            .filter(|id| current.get(*id).is_some_and(|status| is_final(status)))
            .count();
        if finals > moved.0 {
            moved = (finals, Instant::now());
        }
        let stalled = moved.1.elapsed() >= settle_timeout;
        if finals == expected.len() || stalled || Instant::now() >= cap {
            break;
        }
        eprintln!(
            "chaos: {finals} of {} messages final; waiting",
            expected.len()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        current = statuses(system).await;
    }

    let truth = carriers.ground_truth(system).await;
    let duplicated: Vec<&String> = truth
        .taken
        .iter()
        .filter(|(_, times)| **times > 1)
        .map(|(id, _)| id)
        .take(3)
        .collect();
    for id in duplicated {
        let timeline = timeline(system, id).await;
        let mentions = system.log_lines_with("rns-carriers", id);
        eprintln!("chaos: {id} was taken twice by the carriers; its timeline:\n{timeline}\ncarriers log:\n{mentions}");
    }
    let final_states = expected
        .iter()
        .filter(|id| current.get(*id).is_some_and(|status| is_final(status)))
        .count();
    let status_of = |id: &str| current.get(id).map(String::as_str).unwrap_or("none");
    // What the receipts said, against the final states.
    let mut receipt_mismatches = 0;
    for (id, said, record) in &truth.receipts {
        let status = status_of(id);
        if status == *said || (truth.unknown_always_possible && status == "unknown") {
            continue;
        }
        if receipt_mismatches < 3 {
            let timeline = timeline(system, id).await;
            let carrier = record["carrier"].as_str().unwrap_or(ASYNCHRONOUS_CARRIER);
            let stored = match record["carrier_reference"].as_str() {
                Some(reference) => format!(
                    "{}\n{}",
                    receipt_diagnosis(system, carrier, reference).await,
                    message_diagnosis(system, carrier, id).await
                ),
                None => String::new(),
            };
            eprintln!(
                "chaos: {id}: the receipt says {said}, RNS says {status}; the carrier's record: {record}; RNS's timeline:\n{timeline}\n{stored}"
            );
        }
        receipt_mismatches += 1;
    }
    if receipt_mismatches > 0 || final_states < expected.len() {
        eprintln!("chaos: {}", receipts_consumer_state(system).await);
        eprintln!("chaos: {}", carrier_queues_state(system).await);
    }
    let unknown_reasons = system
        .clickhouse
        .query(
            "SELECT count() AS messages, substring(detail, 1, 100) AS reason FROM rns.events \
             WHERE kind = 'unknown' GROUP BY reason ORDER BY messages DESC LIMIT 8 FORMAT TabSeparated",
        )
        .await;
    eprintln!("chaos: why messages ended unknown:\n{unknown_reasons}");
    for id in expected
        .iter()
        .filter(|id| current.get(*id).is_some_and(|status| status == "unknown"))
        .take(2)
    {
        let timeline = timeline(system, id).await;
        eprintln!("chaos: {id} ended unknown:\n{timeline}");
    }
    let conflicting = system
        .clickhouse
        .query(
            "SELECT message_id FROM (SELECT message_id, uniqExact(kind) AS kinds FROM rns.events \
             WHERE kind IN ('delivered', 'failed', 'unknown', 'expired', 'undeliverable') GROUP BY message_id) \
             WHERE kinds > 1 LIMIT 2 FORMAT TabSeparated",
        )
        .await;
    for id in conflicting.lines() {
        let timeline = timeline(system, id).await;
        eprintln!("chaos: {id} has two final states:\n{timeline}");
    }
    let with_status = |wanted: &str| {
        expected
            .iter()
            .filter(|id| current.get(*id).is_some_and(|status| status == wanted))
            .count()
    };
    ChaosReport {
        accepted: expected.len(),
        final_states,
        lost: expected.len() - final_states,
        duplicate_deliveries: truth.taken.values().filter(|times| **times > 1).count(),
        conflicting_final_states: count(
            system,
            "SELECT count() FROM (SELECT message_id, uniqExact(kind) AS kinds FROM rns.events \
             WHERE kind IN ('delivered', 'failed', 'unknown', 'expired', 'undeliverable') GROUP BY message_id) WHERE kinds > 1",
        )
        .await,
        unrecorded_deliveries: truth
            .delivered
            .iter()
            .map(|id| status_of(id))
            .filter(|status| {
                *status != "delivered" && !(truth.unknown_always_possible && *status == "unknown")
            })
            .count(),
        failovers: count(
            system,
            "SELECT uniqExact(message_id) FROM rns.events WHERE kind = 'failed_over'",
        )
        .await,
        resubmissions_absorbed: truth.resubmissions_absorbed,
        throttled: truth.throttled,
        unknown: with_status("unknown"),
        expired: with_status("expired"),
        undeliverable: with_status("undeliverable"),
        receipts: truth.receipts_sent,
        receipts_lost: truth.receipts_lost,
        receipt_mismatches,
        ..Default::default()
    }
}
