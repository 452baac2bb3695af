//! SMPP throughput side by side with Kannel, in one run on one machine (`./scripts/bench
//! --smpp`): the same single-recipient HTTP requests, from the same number of
//! concurrent clients, go to RNS (`POST /v1/messages`, its SMS carrier KT over SMPP)
//! and to Kannel (`bearerbox` with an `smsc = smpp` group, `smsbox`'s
//! `GET /cgi-bin/sendsms`), both binding to the same node-smpp SMSC with two sessions
//! of window 32. A side's rate is its requests divided by the time from its first
//! request until the SMSC had taken every one of its `submit_sm`s (the SMSC's own
//! count). Korean text, UCS-2 on both sides. Both ask for a delivery receipt on every
//! message, so the SMSC does the same work for each: RNS records each (ClickHouse,
//! points); Kannel (`dlr-mask=3`) calls its `dlr-url` for each (a `GET /healthz`).
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rns_testkit::{
    require_program, spare_port, wait_until, ChildProcess, SmscServer, SMSC_PASSWORD,
    SMSC_SYSTEM_ID,
};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::bench::until_taken;
use crate::{System, SystemOptions};

const TEXT: &str = "안녕하세요, RNS 벤치마크입니다.";
const KANNEL_INSTALL: &str = "apt-get install -y kannel";

/// One side's numbers.
#[derive(Debug, Clone)]
pub struct SideReport {
    pub gateway: &'static str,
    pub requests: usize,
    pub clients: usize,
    /// From the first request until the SMSC had every submit.
    pub seconds: f64,
    pub per_second: f64,
    pub accept_p50_milliseconds: f64,
    pub accept_p99_milliseconds: f64,
}

/// A Markdown table of both sides.
pub fn table(sides: &[SideReport]) -> String {
    let mut table = String::from(
        "| gateway | requests | clients | HTTP request → SMSC submit msg/s | seconds | HTTP answer p50 / p99 ms |\n|---|---:|---:|---:|---:|---|\n",
    );
    for side in sides {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} | {:.2} | {:.1} / {:.1} |\n",
            side.gateway,
            side.requests,
            side.clients,
            side.per_second,
            side.seconds,
            side.accept_p50_milliseconds,
            side.accept_p99_milliseconds
        ));
    }
    table
}

/// Runs RNS, then Kannel, against one SMSC.
pub async fn run(requests: usize, clients: usize) -> Vec<SideReport> {
    require_program("bearerbox", KANNEL_INSTALL);
    let system = System::start_with(SystemOptions {
        smpp: true,
        carrier_concurrency: 256,
        ..Default::default()
    })
    .await;
    let key = system
        .customer_with_points("bench", requests as u64 * 2)
        .await;
    system.set_sms_weights(&key, json!({"kt": 1})).await;
    let smsc = system.smsc("kt");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client");

    let gateway = system.gateway_url();
    let rns = measure(smsc, "RNS", requests, clients, |index| {
        http.post(format!("{gateway}/v1/messages"))
            .bearer_auth(&key)
            .json(&json!({"from": "0212345678", "to": [recipient(index)], "text": TEXT}))
    })
    .await;
    eprintln!("bench: {rns:?}");

    let directory = tempfile::tempdir().expect("a temporary directory");
    let kannel = Kannel::start(directory.path(), smsc).await;
    let sendsms = format!("http://127.0.0.1:{}/cgi-bin/sendsms", kannel.sendsms_port);
    let delivery_report = format!("{gateway}/healthz");
    let kannel_side = measure(smsc, "Kannel 1.4.5", requests, clients, |index| {
        http.get(&sendsms).query(&[
            ("username", "bench"),
            ("password", "bench"),
            ("from", "0212345678"),
            ("to", recipient(index).as_str()),
            ("text", TEXT),
            ("charset", "UTF-8"),
            ("coding", "2"),
            ("dlr-mask", "3"),
            ("dlr-url", delivery_report.as_str()),
        ])
    })
    .await;
    eprintln!("bench: {kannel_side:?}");
    vec![rns, kannel_side]
}

fn recipient(index: usize) -> String {
    format!("010{index:08}")
}

async fn accepted(smsc: &SmscServer) -> u64 {
    let counts: Value = serde_json::from_str(&smsc.counts().await).expect("counts are JSON");
    counts["accepted"].as_u64().unwrap_or(0)
}

/// Makes `requests` requests with `clients` at once and waits until the SMSC took as
/// many more submits.
async fn measure(
    smsc: &SmscServer,
    gateway: &'static str,
    requests: usize,
    clients: usize,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> SideReport {
    let before = accepted(smsc).await;
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(requests)));
    let started = Instant::now();
    futures::stream::iter(0..requests)
        .for_each_concurrent(clients, |index| {
            let latencies = &latencies;
            let request = &request;
            async move {
                let took = until_taken(gateway, || request(index)).await;
                latencies.lock().await.push(took);
            }
        })
        .await;
    let target = before + requests as u64;
    wait_until(
        &format!("the SMSC taking {gateway}'s submits"),
        Duration::from_secs(600),
        || async { accepted(smsc).await >= target },
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    SideReport {
        gateway,
        requests,
        clients,
        seconds,
        per_second: requests as f64 / seconds,
        accept_p50_milliseconds: quantile(0.5),
        accept_p99_milliseconds: quantile(0.99),
    }
}

/// Kannel's bearerbox and smsbox, bound to an SMSC.
struct Kannel {
    _bearerbox: ChildProcess,
    _smsbox: ChildProcess,
    sendsms_port: u16,
}

impl Kannel {
    async fn start(directory: &Path, smsc: &SmscServer) -> Self {
        let (admin, smsbox, sendsms) = (spare_port(), spare_port(), spare_port());
        let config = directory.join("kannel.conf");
        let directory_text = directory.display();
        std::fs::write(
            &config,
            format!(
                r#"group = core
admin-port = {admin}
admin-password = bench
smsbox-port = {smsbox}
box-allow-ip = "127.0.0.1"
log-file = "{directory_text}/bearerbox.log"
log-level = 2
store-type = file
store-location = "{directory_text}/kannel.store"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = kt
host = 127.0.0.1
port = {smpp}
transceiver-mode = true
smsc-username = "{SMSC_SYSTEM_ID}"
smsc-password = "{SMSC_PASSWORD}"
system-type = ""
instances = 2
max-pending-submits = 32
enquire-link-interval = 30

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
log-file = "{directory_text}/smsbox.log"
log-level = 2

group = sendsms-user
username = bench
password = bench
max-messages = 10
concatenation = true

group = sms-service
keyword = default
text = "ok"
"#,
                smpp = smsc.smpp_port(),
            ),
        )
        .expect("kannel.conf can be written");
        let binds_before = binds(smsc).await;
        let mut command = Command::new("bearerbox");
        command.arg(&config);
        let bearerbox = ChildProcess::spawn("bearerbox", command, directory);
        // smsbox gives up when bearerbox is not listening for it yet.
        wait_until("bearerbox's box port", Duration::from_secs(30), || async {
            tokio::net::TcpStream::connect(("127.0.0.1", smsbox))
                .await
                .is_ok()
        })
        .await;
        let mut command = Command::new("smsbox");
        command.arg(&config);
        let smsbox_process = ChildProcess::spawn("smsbox", command, directory);
        let http = reqwest::Client::new();
        let status = format!("http://127.0.0.1:{admin}/status.txt?password=bench");
        wait_until("Kannel's SMPP binds", Duration::from_secs(30), || async {
            binds(smsc).await >= binds_before + 2
        })
        .await;
        wait_until("Kannel's sendsms", Duration::from_secs(30), || async {
            let bearerbox_up = http.get(&status).send().await.is_ok();
            let smsbox_up = tokio::net::TcpStream::connect(("127.0.0.1", sendsms))
                .await
                .is_ok();
            bearerbox_up && smsbox_up
        })
        .await;
        Self {
            _bearerbox: bearerbox,
            _smsbox: smsbox_process,
            sendsms_port: sendsms,
        }
    }
}

async fn binds(smsc: &SmscServer) -> u64 {
    let counts: Value = serde_json::from_str(&smsc.counts().await).expect("counts are JSON");
    counts["binds"].as_u64().unwrap_or(0)
}
