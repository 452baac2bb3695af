//! A whole RNS system of real processes for end-to-end scenarios.
//!
//! [`System::start`] starts nats-server, Redis and ClickHouse fixtures, one carrier
//! simulator per carrier (or, with [`SystemOptions::smpp`], an SMSC for each SMS
//! carrier, which then speaks SMPP), and the four service binaries (`rns-gateway`,
//! `rns-dispatcher`, `rns-carriers`, `rns-analytics`) with one generated `rns.toml`.
//! Services can be killed (SIGKILL) and restarted individually. The binaries are the
//! ones `cargo build --workspace --bins` put next to the test executable.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rns_testkit::{
    spare_port, ChildProcess, ClickHouseServer, NatsServer, RedisServer, SmscImplementation,
    SmscServer, SMSC_PASSWORD, SMSC_SYSTEM_ID,
};
use serde_json::{json, Value};
use tempfile::TempDir;

pub const ADMIN_KEY: &str = "e2e-admin-key";

pub use rns_testkit::sender_for;
/// Each carrier's receipt token is its id followed by this.
const RECEIPT_TOKEN_SUFFIX: &str = "-e2e-receipts";

/// The RNS services, each its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    Gateway,
    Dispatcher,
    Carriers,
    Analytics,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Gateway,
        Service::Dispatcher,
        Service::Carriers,
        Service::Analytics,
    ];

    fn binary(&self) -> &'static str {
        match self {
            Service::Gateway => "rns-gateway",
            Service::Dispatcher => "rns-dispatcher",
            Service::Carriers => "rns-carriers",
            Service::Analytics => "rns-analytics",
        }
    }
}

/// Carriers of the test system: (id, channel).
pub const CARRIERS: [(&str, &str); 5] = [
    ("kt", "sms"),
    ("skt", "sms"),
    ("lgu", "sms"),
    ("ke", "alimtalk"),
    ("cns", "alimtalk"),
];

pub mod bench;
pub mod chaos;
pub mod kannel;

/// Runs `work` (a whole benchmark or chaos run) to its end, unless SIGTERM or SIGINT
/// comes first: then `work` is dropped, and with it every server and service it
/// started (which would otherwise outlive this process and skew the next run), and
/// the process exits with 130.
pub async fn unless_stopped<F: std::future::Future>(name: &str, work: F) -> F::Output {
    let stop = rns_service::shutdown::on_signal();
    let finished = tokio::select! {
        output = work => Some(output),
        () = stop.cancelled() => None,
    };
    match finished {
        Some(output) => output,
        None => {
            eprintln!("{name}: stopped by a signal; its servers and services are stopped");
            std::process::exit(130)
        }
    }
}

pub struct System {
    /// The nats-server, or the first node of the cluster.
    pub nats: NatsServer,
    /// The other nodes of the cluster (none for a single server).
    pub nats_peers: Vec<NatsServer>,
    pub redis: RedisServer,
    pub clickhouse: ClickHouseServer,
    directory: TempDir,
    binaries: PathBuf,
    config: PathBuf,
    gateway_port: u16,
    /// Where the carriers service takes receipts.
    receipts_port: u16,
    health_ports: BTreeMap<Service, u16>,
    services: BTreeMap<Service, ChildProcess>,
    simulators: BTreeMap<&'static str, (ChildProcess, u16)>,
    /// The SMSC of each carrier that speaks SMPP.
    smscs: BTreeMap<&'static str, SmscServer>,
    /// [`SystemOptions::background_niceness`], for simulators started again.
    background_niceness: i32,
    http: reqwest::Client,
}

/// Where cargo put the workspace's binaries: beside this executable, or beside the
/// `deps` folder that holds it when it is a test.
fn binaries_directory() -> PathBuf {
    let executable = std::env::current_exe().expect("the process knows its own path");
    let directory = executable
        .parent()
        .expect("an executable lives in a directory");
    if directory.file_name().is_some_and(|name| name == "deps") {
        directory.parent().expect("deps has a parent").to_path_buf()
    } else {
        directory.to_path_buf()
    }
}

/// Timing of the system under test.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// Seconds before a message held by a killed consumer is redelivered.
    pub ack_wait_seconds: u64,
    /// Submits in flight per carrier.
    pub carrier_concurrency: usize,
    /// Submits per batch request to a carrier (the simulators take batches).
    pub carrier_batch_size: usize,
    /// nats-server nodes: 1, or 3 for a cluster with every stream replicated three
    /// times (the production configuration).
    pub nats_nodes: usize,
    /// How long a receipt is awaited (and an unanswered submit asked again).
    pub receipt_deadline_seconds: u64,
    /// How long analytics lets a batch fill before inserting it (`[analytics]
    /// batch_linger_milliseconds`): short in tests, so results show soon.
    pub analytics_linger_milliseconds: u64,
    /// The SMS carriers speak SMPP, each to an SMSC of its own: KT and LG U+ to
    /// node-smpp's, SKT to smpp34's ([`SMPP_CARRIERS`]).
    pub smpp: bool,
    /// The services' log filter (`[log] filter`).
    pub log_filter: String,
    /// Webhooks may be delivered to private addresses such as the tests' receivers
    /// on 127.0.0.1 (`allow_private` of the gateway and the webhook worker).
    pub private_webhooks: bool,
    /// Webhook receiver names answered without DNS (`[webhooks] hosts`).
    pub webhook_hosts: Vec<(String, std::net::IpAddr)>,
    /// Each service's async workers (`[runtime] worker_threads`): every service
    /// shares this host, so [`SINGLE_HOST_WORKER_THREADS`] as `rns.toml` deploys it.
    pub worker_threads: usize,
    /// The nice value of the background services (`[runtime] background_niceness`),
    /// and of ClickHouse and the carrier simulators beside them: everything off the
    /// accept path yields the CPU to it, as `rns.toml` deploys a shared host.
    pub background_niceness: i32,
    /// The least time between two SEND messages of gathered sends (`[gateway]
    /// gather_interval_milliseconds`); None: the gateway's default.
    pub gather_interval_milliseconds: Option<u64>,
    /// How long a reservation may wait for its request's publish before the
    /// dispatcher returns its points (`[points] unpublished_release_seconds`); None:
    /// the default.
    pub unpublished_release_seconds: Option<u64>,
}

/// `[runtime] worker_threads` when every service shares one host: `rns.toml`'s
/// (`e2e/tests/bench.rs` holds the two equal).
pub const SINGLE_HOST_WORKER_THREADS: usize = 1;

/// `[runtime] background_niceness` when every service shares one host: `rns.toml`'s
/// (`e2e/tests/bench.rs` holds the two equal). Kannel's fake SMSCs, the carriers'
/// stand-ins on its side, run at it too.
pub const SINGLE_HOST_BACKGROUND_NICENESS: i32 = 10;

/// With [`SystemOptions::smpp`]: which SMSC each SMS carrier binds to.
pub const SMPP_CARRIERS: [(&str, SmscImplementation); 3] = [
    ("kt", SmscImplementation::NodeSmpp),
    ("skt", SmscImplementation::Smpp34),
    ("lgu", SmscImplementation::NodeSmpp),
];

impl Default for SystemOptions {
    fn default() -> Self {
        Self {
            ack_wait_seconds: 30,
            carrier_concurrency: 64,
            carrier_batch_size: 32,
            nats_nodes: 1,
            receipt_deadline_seconds: 3_600,
            analytics_linger_milliseconds: 100,
            smpp: false,
            log_filter: "info".to_owned(),
            private_webhooks: true,
            webhook_hosts: Vec::new(),
            worker_threads: SINGLE_HOST_WORKER_THREADS,
            background_niceness: SINGLE_HOST_BACKGROUND_NICENESS,
            gather_interval_milliseconds: None,
            unpublished_release_seconds: None,
        }
    }
}

fn require_binary(directory: &Path, name: &str) -> PathBuf {
    let path = directory.join(name);
    assert!(
        path.is_file(),
        "{} is missing; build the services first with: cargo build --workspace --bins",
        path.display()
    );
    path
}

impl System {
    pub async fn start() -> Self {
        Self::start_with(SystemOptions::default()).await
    }

    pub async fn start_with(options: SystemOptions) -> Self {
        let binaries = binaries_directory();
        for service in Service::ALL {
            require_binary(&binaries, service.binary());
        }
        require_binary(&binaries, "rns-carrier-simulator");
        let nats_nodes = async {
            if options.nats_nodes > 1 {
                NatsServer::start_cluster(options.nats_nodes).await
            } else {
                vec![NatsServer::start().await]
            }
        };
        let smscs = async {
            let mut smscs = BTreeMap::new();
            if options.smpp {
                let started = futures::future::join_all(
                    SMPP_CARRIERS
                        .iter()
                        .map(|(_, implementation)| SmscServer::start_with(*implementation)),
                )
                .await;
                smscs.extend(
                    SMPP_CARRIERS
                        .iter()
                        .map(|(carrier, _)| *carrier)
                        .zip(started),
                );
            }
            smscs
        };
        let (mut nats_nodes, redis, clickhouse, smscs) = tokio::join!(
            nats_nodes,
            RedisServer::start(),
            ClickHouseServer::start_niced(options.background_niceness),
            smscs
        );
        let nats = nats_nodes.remove(0);
        let directory = tempfile::tempdir().expect("temporary directory");
        let mut system = Self {
            nats,
            nats_peers: nats_nodes,
            redis,
            clickhouse,
            config: directory.path().join("rns.toml"),
            directory,
            binaries,
            gateway_port: spare_port(),
            receipts_port: spare_port(),
            health_ports: Service::ALL
                .iter()
                .map(|service| (*service, spare_port()))
                .collect(),
            services: BTreeMap::new(),
            simulators: BTreeMap::new(),
            smscs,
            background_niceness: options.background_niceness,
            http: reqwest::Client::new(),
        };
        for (carrier, _) in CARRIERS {
            if system.smscs.contains_key(carrier) {
                continue;
            }
            let port = spare_port();
            let process = system.spawn_simulator(carrier, port);
            system.simulators.insert(carrier, (process, port));
        }
        // A test may turn a simulator's knobs first thing: each answers before the
        // services start.
        for carrier in system.simulators.keys() {
            let counts = format!("{}/v1/counts", system.simulator_url(carrier));
            let http = &system.http;
            rns_testkit::wait_until(
                &format!("the {carrier} simulator"),
                Duration::from_secs(30),
                || async {
                    http.get(&counts)
                        .send()
                        .await
                        .is_ok_and(|response| response.status().is_success())
                },
            )
            .await;
        }
        system.write_config(&options);
        for service in Service::ALL {
            system.start_service(service).await;
        }
        system
    }

    fn spawn_simulator(&self, carrier: &str, port: u16) -> ChildProcess {
        let mut command = Command::new(self.binaries.join("rns-carrier-simulator"));
        command
            .arg("--carrier")
            .arg(carrier)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"));
        ChildProcess::spawn(
            &format!("simulator-{carrier}"),
            rns_testkit::niced(&command, self.background_niceness),
            self.directory.path(),
        )
    }

    fn write_config(&self, options: &SystemOptions) {
        let mut carriers = String::new();
        for (carrier, channel) in CARRIERS {
            if let Some(smsc) = self.smscs.get(carrier) {
                carriers.push_str(&format!(
                    "[[carriers]]\nid = \"{carrier}\"\nchannel = \"{channel}\"\nkind = \"smpp\"\nconcurrency = {concurrency}\nrequest_timeout_milliseconds = 2000\nsmpp = {{ host = \"127.0.0.1\", port = {port}, system_id = \"{SMSC_SYSTEM_ID}\", password = \"{SMSC_PASSWORD}\", sessions = 2, window = 32, enquire_link_seconds = 1 }}\n\n",
                    concurrency = options.carrier_concurrency,
                    port = smsc.smpp_port(),
                ));
                continue;
            }
            let port = self.simulators[carrier].1;
            carriers.push_str(&format!(
                "[[carriers]]\nid = \"{carrier}\"\nchannel = \"{channel}\"\nendpoint = \"http://127.0.0.1:{port}\"\nconcurrency = {concurrency}\nbatch_size = {batch_size}\nrequest_timeout_milliseconds = 2000\nreceipt_token = \"{carrier}{RECEIPT_TOKEN_SUFFIX}\"\n\n",
                concurrency = options.carrier_concurrency,
                batch_size = options.carrier_batch_size
            ));
        }
        let health = |service| self.health_ports[&service];
        // A line `name = value`, or nothing for the service's default.
        let setting = |name: &str, value: Option<u64>| {
            value.map_or_else(String::new, |value| format!("{name} = {value}\n"))
        };
        let config = format!(
            r#"[nats]
url = "{nats}"
replicas = {replicas}
send_ack_wait = {ack_wait}
results_ack_wait = {ack_wait}
carrier_ack_wait = {ack_wait}

[redis]
url = "{redis}"

[clickhouse]
url = "{clickhouse}"
database = "rns"

[gateway]
listen = "127.0.0.1:{gateway}"
admin_key = "{ADMIN_KEY}"
allow_private_webhooks = {private_webhooks}
min_recurrence_seconds = 1
requests_per_second = 100000
{gather_interval}
[points]
{unpublished_release}

[dispatcher]
health_listen = "127.0.0.1:{dispatcher}"

[carrier_workers]
health_listen = "127.0.0.1:{carrier_workers}"
receipts_listen = "127.0.0.1:{receipts}"
receipt_deadline_seconds = {receipt_deadline}
retry_backoff_milliseconds = [100, 200, 400]

[analytics]
health_listen = "127.0.0.1:{analytics}"
batch_linger_milliseconds = {analytics_linger}

[webhooks]
allow_private = {private_webhooks}
hosts = {{ {webhook_hosts} }}
retry_delays_seconds = [1, 1, 2]
timeout_milliseconds = 2000
concurrency = 8

[log]
format = "json"
filter = "{log_filter}"

[runtime]
worker_threads = {worker_threads}
background_niceness = {background_niceness}

{carriers}"#,
            nats = std::iter::once(&self.nats)
                .chain(&self.nats_peers)
                .map(NatsServer::url)
                .collect::<Vec<_>>()
                .join(","),
            replicas = 1 + self.nats_peers.len(),
            ack_wait = options.ack_wait_seconds,
            redis = self.redis.url(),
            clickhouse = self.clickhouse.url(),
            gateway = self.gateway_port,
            dispatcher = health(Service::Dispatcher),
            carrier_workers = health(Service::Carriers),
            receipts = self.receipts_port,
            receipt_deadline = options.receipt_deadline_seconds,
            analytics = health(Service::Analytics),
            analytics_linger = options.analytics_linger_milliseconds,
            log_filter = options.log_filter,
            worker_threads = options.worker_threads,
            background_niceness = options.background_niceness,
            gather_interval = setting(
                "gather_interval_milliseconds",
                options.gather_interval_milliseconds
            ),
            unpublished_release = setting(
                "unpublished_release_seconds",
                options.unpublished_release_seconds
            ),
            private_webhooks = options.private_webhooks,
            webhook_hosts = options
                .webhook_hosts
                .iter()
                .map(|(name, address)| format!("\"{name}\" = \"{address}\""))
                .collect::<Vec<_>>()
                .join(", "),
        );
        std::fs::write(&self.config, config).expect("rns.toml can be written");
    }

    fn ready_url(&self, service: Service) -> String {
        self.service_url(service, "/readyz")
    }

    fn service_url(&self, service: Service, path: &str) -> String {
        match service {
            Service::Gateway => format!("{}{path}", self.gateway_url()),
            other => format!("http://127.0.0.1:{}{path}", self.health_ports[&other]),
        }
    }

    /// A service's Prometheus metrics (`GET /metrics`).
    pub async fn metrics(&self, service: Service) -> String {
        self.http
            .get(self.service_url(service, "/metrics"))
            .send()
            .await
            .expect("the service answers")
            .text()
            .await
            .expect("metrics are text")
    }

    /// Starts (or restarts) a service and waits until its `/readyz` answers 200.
    pub async fn start_service(&mut self, service: Service) {
        self.spawn_service(service);
        self.wait_ready(service).await;
    }

    /// Starts (or restarts) a service without waiting for it to be ready: a service
    /// may rightly stay unready while a dependency is down.
    pub fn spawn_service(&mut self, service: Service) {
        let mut command = Command::new(self.binaries.join(service.binary()));
        command.arg("--config").arg(&self.config);
        let process = ChildProcess::spawn(service.binary(), command, self.directory.path());
        self.services.insert(service, process);
    }

    /// Starts one more process of `service` beside the first, with the same
    /// configuration but its own health port; waits until it is ready and returns it
    /// with that port (dropping it kills it).
    pub async fn start_replica(&self, service: Service, replica: usize) -> (ChildProcess, u16) {
        let health_port = spare_port();
        let variable = match service {
            Service::Gateway => "RNS_GATEWAY__LISTEN",
            Service::Dispatcher => "RNS_DISPATCHER__HEALTH_LISTEN",
            Service::Carriers => "RNS_CARRIER_WORKERS__HEALTH_LISTEN",
            Service::Analytics => "RNS_ANALYTICS__HEALTH_LISTEN",
        };
        let mut command = Command::new(self.binaries.join(service.binary()));
        command
            .arg("--config")
            .arg(&self.config)
            .env(variable, format!("127.0.0.1:{health_port}"));
        if service == Service::Carriers {
            command.env(
                "RNS_CARRIER_WORKERS__RECEIPTS_LISTEN",
                format!("127.0.0.1:{}", spare_port()),
            );
        }
        let name = format!("{}-{replica}", service.binary());
        let process = ChildProcess::spawn(&name, command, self.directory.path());
        let ready = format!("http://127.0.0.1:{health_port}/readyz");
        rns_testkit::wait_until(&name, Duration::from_secs(60), || async {
            self.http
                .get(&ready)
                .send()
                .await
                .is_ok_and(|response| response.status().is_success())
        })
        .await;
        (process, health_port)
    }

    /// Waits until the service's `/readyz` answers 200. A service still unready
    /// after 30 s is killed and started again once, as a supervisor's health check
    /// would (Nomad's `check_restart`), and that is reported on stderr.
    pub async fn wait_ready(&mut self, service: Service) {
        if self.poll_ready(service, Duration::from_secs(30)).await {
            return;
        }
        eprintln!(
            "{} was not ready within 30 s; restarting it as a supervisor would; its log:\n{}",
            service.binary(),
            self.log(service.binary())
        );
        self.kill(service);
        self.spawn_service(service);
        if self.poll_ready(service, Duration::from_secs(60)).await {
            return;
        }
        panic!(
            "{} was not ready within 60 s of a restart; its log:\n{}",
            service.binary(),
            self.log(service.binary())
        );
    }

    async fn poll_ready(&self, service: Service, timeout: Duration) -> bool {
        let url = self.ready_url(service);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(response) = self.http.get(&url).send().await {
                if response.status().is_success() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// SIGKILL, as a crash.
    /// The process id of a running service.
    pub fn pid(&self, service: Service) -> Option<u32> {
        self.services.get(&service).map(ChildProcess::id)
    }

    /// The nice value of every process of the system, by what it is
    /// ([`System::processes`]), read from `/proc/<pid>/stat`.
    pub fn niceness(&self) -> Vec<(&'static str, i32)> {
        self.processes()
            .into_iter()
            .map(|(name, pid)| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_else(|error| panic!("{name} ({pid}) is running: {error}"));
                // The fields after the command's closing parenthesis: the nice value is
                // the 19th field of the line, the 17th after it.
                let after = &stat[stat.rfind(')').expect("a stat line names its command") + 2..];
                let niceness = after
                    .split(' ')
                    .nth(16)
                    .and_then(|field| field.parse().ok())
                    .expect("a stat line has a nice value");
                (name, niceness)
            })
            .collect()
    }

    /// Every process of the system, each named by what it is (a service's binary,
    /// `nats-server`, `redis-server`, `clickhouse`, `simulators`, `smscs`; several
    /// processes may share a name): what the benchmark sums CPU over.
    pub fn processes(&self) -> Vec<(&'static str, u32)> {
        let services = self
            .services
            .iter()
            .map(|(service, process)| (service.binary(), process.id()));
        let nodes = std::iter::once(&self.nats)
            .chain(&self.nats_peers)
            .map(|node| ("nats-server", node.pid()));
        let simulators = self
            .simulators
            .values()
            .map(|(process, _)| ("simulators", process.id()));
        let smscs = self.smscs.values().map(|smsc| ("smscs", smsc.pid()));
        services
            .chain(nodes)
            .chain([
                ("redis-server", self.redis.pid()),
                ("clickhouse", self.clickhouse.pid()),
            ])
            .chain(simulators)
            .chain(smscs)
            .collect()
    }

    pub fn kill(&mut self, service: Service) {
        if let Some(mut process) = self.services.remove(&service) {
            process.kill();
        }
    }

    /// SIGTERM; whether it exited within `grace`.
    pub fn terminate(&mut self, service: Service, grace: Duration) -> bool {
        self.services
            .remove(&service)
            .map(|mut process| process.terminate(grace))
            .unwrap_or(true)
    }

    /// Every line of a process's log that mentions `needle`, for diagnosis.
    pub fn log_lines_with(&self, name: &str, needle: &str) -> String {
        let text = std::fs::read_to_string(self.directory.path().join(format!("{name}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|line| line.contains(needle)).collect();
        lines.join("\n")
    }

    /// Copies every process's log to a directory that outlives the system (under the
    /// temporary directory) and returns it: a failed run's evidence.
    pub fn keep_logs(&self) -> PathBuf {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_millis())
            .unwrap_or_default();
        let kept = std::env::temp_dir()
            .join("rns-e2e-logs")
            .join(format!("{stamp}-{}", std::process::id()));
        std::fs::create_dir_all(&kept).expect("a directory for the kept logs");
        let logs = std::fs::read_dir(self.directory.path())
            .expect("the system's directory is readable")
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "log"));
        for entry in logs {
            let _ = std::fs::copy(entry.path(), kept.join(entry.file_name()));
        }
        kept
    }

    /// The last lines of a process's log, for failure messages.
    pub fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.directory.path().join(format!("{name}.log")))
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_port)
    }

    /// Every carrier simulator's base URL.
    pub fn simulator_urls(&self) -> Vec<String> {
        self.simulators
            .keys()
            .map(|carrier| self.simulator_url(carrier))
            .collect()
    }

    pub fn simulator_url(&self, carrier: &str) -> String {
        format!("http://127.0.0.1:{}", self.simulators[carrier].1)
    }

    /// The circuit state `GET /v1/carriers` shows for `carrier`.
    pub async fn circuit(&self, carrier: &str) -> String {
        let (status, circuits) = self
            .call(reqwest::Method::GET, "/v1/carriers", ADMIN_KEY, None)
            .await;
        assert_eq!(status, 200, "{circuits}");
        circuits["items"]
            .as_array()
            .expect("carriers are listed")
            .iter()
            .find(|item| item["id"] == carrier)
            .and_then(|item| item["circuit"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// The SMSC an SMPP carrier binds to (with [`SystemOptions::smpp`]).
    pub fn smsc(&self, carrier: &str) -> &SmscServer {
        &self.smscs[carrier]
    }

    /// The SMSC of an SMPP carrier, to restart.
    pub fn smsc_mut(&mut self, carrier: &str) -> &mut SmscServer {
        self.smscs
            .get_mut(carrier)
            .expect("the carrier speaks SMPP")
    }

    /// Changes a simulator's knobs (`PUT /v1/knobs`).
    pub async fn set_knobs(&self, carrier: &str, knobs: Value) {
        let response = self
            .http
            .put(format!("{}/v1/knobs", self.simulator_url(carrier)))
            .json(&knobs)
            .send()
            .await
            .expect("simulator answers");
        assert!(response.status().is_success(), "knobs refused: {knobs}");
    }

    /// Where `carrier` posts receipts to the carriers service.
    pub fn receipts_url(&self, carrier: &str) -> String {
        format!(
            "http://127.0.0.1:{}/v1/receipts/{carrier}",
            self.receipts_port
        )
    }

    /// Puts a simulator in asynchronous mode: it answers `accepted` and posts receipts
    /// to the carriers service as `receipts` says (delay, loss, duplicate, early and
    /// undeliverable rates; the address and token are filled in).
    pub async fn set_receipts(&self, carrier: &str, receipts: Value) {
        self.set_knobs(carrier, self.receipts_knobs(carrier, receipts))
            .await;
    }

    /// The simulator knobs of asynchronous mode for `carrier` (see [`Self::set_receipts`]).
    pub fn receipts_knobs(&self, carrier: &str, mut receipts: Value) -> Value {
        receipts["url"] = json!(self.receipts_url(carrier));
        receipts["token"] = json!(format!("{carrier}{RECEIPT_TOKEN_SUFFIX}"));
        json!({ "receipts": receipts })
    }

    /// What a simulator in asynchronous mode decided and reported for each message it
    /// accepted (`GET /v1/receipts`).
    pub async fn simulator_receipts(&self, carrier: &str) -> Vec<Value> {
        self.http
            .get(format!("{}/v1/receipts", self.simulator_url(carrier)))
            .send()
            .await
            .expect("simulator answers")
            .json()
            .await
            .expect("receipt fates are JSON")
    }

    /// The message ids a simulator delivered (`GET /v1/delivered`).
    pub async fn simulator_delivered(&self, carrier: &str) -> Vec<String> {
        self.http
            .get(format!("{}/v1/delivered", self.simulator_url(carrier)))
            .send()
            .await
            .expect("simulator answers")
            .json()
            .await
            .expect("delivered ids are JSON")
    }

    /// Whether the service's process is running.
    pub fn is_running(&mut self, service: Service) -> bool {
        self.services
            .get_mut(&service)
            .is_some_and(|process| process.is_running())
    }

    /// A simulator's own counters (`GET /v1/counts`).
    /// The texts the carrier simulators took for `number` (its handset's inbox, each
    /// simulator's oldest first): where a person reads a code RNS records withheld.
    pub async fn texts_to(&self, number: &str) -> Vec<String> {
        let mut texts = Vec::new();
        for carrier in self.simulators.keys() {
            let taken: Vec<String> = self
                .http
                .get(format!("{}/v1/texts", self.simulator_url(carrier)))
                .query(&[("to", number)])
                .send()
                .await
                .expect("simulator answers")
                .json()
                .await
                .expect("simulator texts are JSON");
            texts.extend(taken);
        }
        texts
    }

    pub async fn simulator_counts(&self, carrier: &str) -> Value {
        self.http
            .get(format!("{}/v1/counts", self.simulator_url(carrier)))
            .send()
            .await
            .expect("simulator answers")
            .json()
            .await
            .expect("simulator counts are JSON")
    }

    /// Calls the gateway; returns the status and the JSON body (`null` if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.gateway_url()))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Creates a customer with verified sender number 02-1234-5678 and returns its API
    /// key.
    pub async fn customer(&self, id: &str) -> String {
        self.customer_with_points(id, 1_000_000_000).await
    }

    /// Adds `amount` points to customer `id`.
    pub async fn top_up(&self, id: &str, amount: u64) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/admin/customers/{id}/points"),
                ADMIN_KEY,
                Some(json!({"amount": amount})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Creates customer `id` with a verified sender number and `points`; returns its
    /// API key. The number is 02-1234-5678, or [`sender_for`] `id` once another
    /// customer of the run verified that one.
    pub async fn customer_with_points(&self, id: &str, points: u64) -> String {
        let key = self.bare_customer(id).await;
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/sender-numbers",
                &key,
                Some(json!({"number": "02-1234-5678"})),
            )
            .await;
        let sender = match status {
            201 => "02-1234-5678".to_owned(),
            409 => sender_for(id),
            _ => panic!("registering 02-1234-5678: {status} {body}"),
        };
        if status == 409 {
            self.register_sender(&key, &sender).await;
        }
        self.approve_sender(id, &sender).await;
        if points > 0 {
            self.top_up(id, points).await;
        }
        key
    }

    /// Creates customer `id` with `sender` registered and verified by the operator (a
    /// number one customer verified is refused to every other) and `points`; returns
    /// its API key.
    pub async fn customer_with_sender(&self, id: &str, sender: &str, points: u64) -> String {
        let key = self.bare_customer(id).await;
        self.verified_sender(id, &key, sender).await;
        if points > 0 {
            self.top_up(id, points).await;
        }
        key
    }

    /// Creates customer `id` without sender numbers or points; returns its API key.
    pub async fn bare_customer(&self, id: &str) -> String {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/admin/customers",
                ADMIN_KEY,
                Some(json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["api_key"].as_str().expect("api key").to_owned()
    }

    /// Registers `sender` for customer `id` and verifies it as the operator does.
    pub async fn verified_sender(&self, id: &str, key: &str, sender: &str) {
        self.register_sender(key, sender).await;
        self.approve_sender(id, sender).await;
    }

    /// Registers `sender` (pending) with the customer's `key`.
    pub async fn register_sender(&self, key: &str, sender: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::POST,
                "/v1/sender-numbers",
                key,
                Some(json!({"number": sender})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// Verifies customer `id`'s `sender` as the operator does.
    pub async fn approve_sender(&self, id: &str, sender: &str) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/admin/customers/{id}/sender-numbers/{sender}"),
                ADMIN_KEY,
                Some(json!({"status": "verified", "reason": "registration papers checked"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Sends `text` from 02-1234-5678 to `recipients` numbers (010-0000-0000 on),
    /// which must be accepted; returns the 202 body.
    pub async fn send_to_many(&self, key: &str, recipients: usize, text: &str) -> Value {
        let to: Vec<String> = (0..recipients)
            .map(|index| format!("010{index:08}"))
            .collect();
        let (status, accepted) = self
            .call(
                reqwest::Method::POST,
                "/v1/messages",
                key,
                Some(json!({"from": "0212345678", "to": to, "text": text})),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        accepted
    }

    /// `GET /v1/messages/{id}` as the customer with `key`.
    pub async fn message(&self, key: &str, message_id: &str) -> (u16, Value) {
        self.call(
            reqwest::Method::GET,
            &format!("/v1/messages/{message_id}"),
            key,
            None,
        )
        .await
    }

    /// Sets a carrier's send rate as the operator does (`PUT
    /// /v1/admin/carriers/{id}/rate`; `null` returns to the configured one), which must
    /// succeed.
    pub async fn set_carrier_rate(&self, carrier: &str, per_second: Value) {
        let (status, reply) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/admin/carriers/{carrier}/rate"),
                ADMIN_KEY,
                Some(json!({ "per_second": per_second })),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
    }

    /// Sets a customer's SMS weights (`PUT /v1/routing/sms`), which must succeed.
    pub async fn set_sms_weights(&self, key: &str, weights: Value) {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                "/v1/routing/sms",
                key,
                Some(json!({ "weights": weights })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Polls `GET /v1/requests/{id}` until `done` holds for the summary or `timeout`.
    pub async fn wait_for_request(
        &self,
        key: &str,
        request_id: &str,
        timeout: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let (status, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/requests/{request_id}"),
                    key,
                    None,
                )
                .await;
            if status == 200 {
                if done(&body) {
                    return body;
                }
                last = body;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "request {request_id} did not finish within {timeout:?}; last summary: {last}\ncarriers log:\n{}\nanalytics log:\n{}",
            self.log("rns-carriers"),
            self.log("rns-analytics")
        );
    }
}

/// The count for `key` in a JSON object of counts, 0 when absent.
pub fn count(counts: &Value, key: &str) -> u64 {
    counts.get(key).and_then(Value::as_u64).unwrap_or(0)
}
