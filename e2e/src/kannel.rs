//! Kannel 1.4.5, the gateway many operators run instead of RNS, as the benchmark's
//! peer: [`Kannel`] runs `bearerbox` (with its crash-safe file store) and `smsbox`,
//! delivering to an SMPP SMSC or to its own fake SMSCs (`fakesmsc`). The main
//! benchmark gives it the single scenario's requests ([`crate::bench`]).
//!
//! [`run`]: SMPP throughput side by side, in one run on one machine (`./scripts/bench
//! --against-kannel`): the same single-recipient HTTP requests, from the same number of
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
use std::time::{Duration, Instant};

use rns_testkit::{
    require_program, spare_port, wait_until, ChildProcess, SmscServer, SMSC_PASSWORD,
    SMSC_SYSTEM_ID,
};
use serde_json::{json, Value};

use crate::bench::{drive, load_client, Load};
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
    let http = load_client(clients);

    let gateway = system.gateway_url();
    let rns = measure(smsc, "RNS", requests, clients, |index| {
        http.post(format!("{gateway}/v1/messages"))
            .bearer_auth(&key)
            .json(&json!({"from": "0212345678", "to": [recipient(index)], "text": TEXT}))
    })
    .await;
    eprintln!("bench: {rns:?}");

    let directory = tempfile::tempdir().expect("a temporary directory");
    let kannel = Kannel::start_smpp(directory.path(), smsc).await;
    let sendsms = kannel.sendsms_url();
    let delivery_report = format!("{gateway}/healthz");
    let kannel_side = measure(smsc, "Kannel 1.4.5", requests, clients, |index| {
        sendsms_request(&http, &sendsms, &recipient(index), TEXT)
            .query(&[("dlr-mask", "3"), ("dlr-url", delivery_report.as_str())])
    })
    .await;
    eprintln!("bench: {kannel_side:?}");
    vec![rns, kannel_side]
}

fn recipient(index: usize) -> String {
    format!("010{index:08}")
}

/// smsbox's `GET /cgi-bin/sendsms` of `text` (UTF-8, sent as UCS-2) to `to`, from the
/// bench's sender number.
pub(crate) fn sendsms_request(
    http: &reqwest::Client,
    sendsms: &str,
    to: &str,
    text: &str,
) -> reqwest::RequestBuilder {
    http.get(sendsms).query(&[
        ("username", "bench"),
        ("password", "bench"),
        ("from", "0212345678"),
        ("to", to),
        ("text", text),
        ("charset", "UTF-8"),
        ("coding", "2"),
    ])
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
    let started = Instant::now();
    let mut latencies = drive(gateway, requests, Load::Clients(clients), request).await;
    let target = before + requests as u64;
    wait_until(
        &format!("the SMSC taking {gateway}'s submits"),
        Duration::from_secs(600),
        || async { accepted(smsc).await >= target },
    )
    .await;
    let seconds = started.elapsed().as_secs_f64();
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

/// Kannel's bearerbox (with its crash-safe file store) and smsbox, and the fake SMSCs
/// it delivers to, if any.
pub(crate) struct Kannel {
    /// Each process with what it is (`bearerbox`, `smsbox`, `fakesmsc`).
    processes: Vec<(&'static str, ChildProcess)>,
    admin_port: u16,
    sendsms_port: u16,
}

/// Where `fakesmsc` is (Debian's `kannel-extras`).
const FAKESMSC: &str = "/usr/lib/kannel/test/fakesmsc";
const KANNEL_EXTRAS_INSTALL: &str = "apt-get install -y kannel kannel-extras";

impl Kannel {
    /// bearerbox and smsbox, with `smsc_groups` (the `group = smsc` sections) in their
    /// configuration; answers once both listen.
    async fn start(directory: &Path, smsc_groups: &str) -> Self {
        require_program("bearerbox", KANNEL_INSTALL);
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

{smsc_groups}
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
"#
            ),
        )
        .expect("kannel.conf can be written");
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
        let kannel = Self {
            processes: vec![("bearerbox", bearerbox), ("smsbox", smsbox_process)],
            admin_port: admin,
            sendsms_port: sendsms,
        };
        let http = reqwest::Client::new();
        wait_until("Kannel's sendsms", Duration::from_secs(30), || async {
            let bearerbox_up = http.get(kannel.status_url()).send().await.is_ok();
            let smsbox_up = tokio::net::TcpStream::connect(("127.0.0.1", sendsms))
                .await
                .is_ok();
            bearerbox_up && smsbox_up
        })
        .await;
        kannel
    }

    /// Bound to `smsc` over SMPP: two transceiver sessions of window 32.
    async fn start_smpp(directory: &Path, smsc: &SmscServer) -> Self {
        let groups = format!(
            r#"group = smsc
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
"#,
            smpp = smsc.smpp_port(),
        );
        let binds_before = binds(smsc).await;
        let kannel = Self::start(directory, &groups).await;
        wait_until("Kannel's SMPP binds", Duration::from_secs(30), || async {
            binds(smsc).await >= binds_before + 2
        })
        .await;
        kannel
    }

    /// Delivering to `count` of Kannel's own fake SMSCs (`smsc = fake`, each a
    /// `fakesmsc` process that takes every message at once), weighted alike.
    pub(crate) async fn start_with_fake_smscs(directory: &Path, count: usize) -> Self {
        require_program(FAKESMSC, KANNEL_EXTRAS_INSTALL);
        let ports: Vec<u16> = (0..count).map(|_| spare_port()).collect();
        let groups: String = ports
            .iter()
            .enumerate()
            .map(|(index, port)| {
                format!("group = smsc\nsmsc = fake\nsmsc-id = fake{index}\nport = {port}\nconnect-allow-ip = 127.0.0.1\n\n")
            })
            .collect();
        let mut kannel = Self::start(directory, &groups).await;
        for (index, port) in ports.iter().enumerate() {
            let mut command = Command::new(FAKESMSC);
            // No messages of its own (-m 0), no line per message it takes (-v 1).
            command.args([
                "-v",
                "1",
                "-H",
                "127.0.0.1",
                "-r",
                &port.to_string(),
                "-m",
                "0",
                "1 2 text nop",
            ]);
            kannel.processes.push((
                "fakesmsc",
                ChildProcess::spawn(
                    &format!("fakesmsc-{index}"),
                    rns_testkit::niced(&command, crate::SINGLE_HOST_BACKGROUND_NICENESS),
                    directory,
                ),
            ));
        }
        let http = reqwest::Client::new();
        wait_until(
            "Kannel's fake SMSCs online",
            Duration::from_secs(30),
            || async {
                let status = http.get(kannel.status_url()).send().await;
                let text = match status {
                    Ok(response) => response.text().await.unwrap_or_default(),
                    Err(_) => String::new(),
                };
                text.matches("(online").count() >= count
            },
        )
        .await;
        kannel
    }

    fn status_url(&self) -> String {
        format!(
            "http://127.0.0.1:{}/status.txt?password=bench",
            self.admin_port
        )
    }

    /// smsbox's `GET /cgi-bin/sendsms`.
    pub(crate) fn sendsms_url(&self) -> String {
        format!("http://127.0.0.1:{}/cgi-bin/sendsms", self.sendsms_port)
    }

    /// Messages bearerbox has handed to an SMSC so far (its status page's `sent`).
    pub(crate) async fn sent(&self, http: &reqwest::Client) -> u64 {
        let Ok(response) = http.get(self.status_url()).send().await else {
            return 0;
        };
        let text = response.text().await.unwrap_or_default();
        sent_count(&text).unwrap_or(0)
    }

    /// Kannel's processes by name (`bearerbox`, `smsbox`, `fakesmsc`), for CPU accounts.
    pub(crate) fn processes(&self) -> Vec<(&'static str, u32)> {
        self.processes
            .iter()
            .map(|(name, process)| (*name, process.id()))
            .collect()
    }
}

/// The `sent` count of bearerbox's `status.txt` (`SMS: received 0 (0 queued), sent 3
/// (0 queued), store size 0`).
fn sent_count(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|line| line.starts_with("SMS: received"))?;
    let after = line.split_once("sent ")?.1;
    after.split_whitespace().next()?.parse().ok()
}

async fn binds(smsc: &SmscServer) -> u64 {
    let counts: Value = serde_json::from_str(&smsc.counts().await).expect("counts are JSON");
    counts["binds"].as_u64().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::sent_count;

    #[test]
    fn the_sent_count_is_read_off_bearerbox_status() {
        let status = "Status: running, uptime 0d 0h 0m 4s\n\nWDP: received 0 (0 queued), sent 0 (0 queued)\n\nSMS: received 7 (0 queued), sent 1234 (5 queued), store size 5\nSMS: inbound (0.00,0.00,0.00) msg/sec\n";
        assert_eq!(sent_count(status), Some(1234));
        assert_eq!(sent_count("Status: running"), None);
    }
}
