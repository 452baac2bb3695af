//! The benchmark harness at small counts, so `./scripts/bench` keeps working: every
//! scenario runs (the backlog scenario with 20,000 messages), Kannel takes the single
//! scenario's requests too, nothing is lost, and the numbers are numbers; and a
//! benchmark stopped by a signal stops every server and service it started.
use std::process::{Command, Stdio};
use std::time::Duration;

use rns_e2e::bench::{self, BenchPlan};
use rns_testkit::wait_until;

#[test]
fn the_benchmark_runs_analytics_as_deployed() {
    let deployed = rns_analytics::AnalyticsSettings::default().batch_linger_milliseconds;
    assert_eq!(bench::PRODUCTION_ANALYTICS_LINGER_MILLISECONDS, deployed);
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../rns.toml"))
        .expect("rns.toml");
    assert!(
        example.contains(&format!("batch_linger_milliseconds = {deployed} ")),
        "rns.toml shows the default linger"
    );
    assert_eq!(BenchPlan::full().analytics_linger_milliseconds, deployed);
}

#[test]
fn the_benchmark_sizes_runtimes_as_rns_toml_does() {
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../rns.toml"))
        .expect("rns.toml");
    let section = example
        .split("\n[runtime]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("rns.toml has a [runtime] section");
    let expected = format!("worker_threads = {}", rns_e2e::SINGLE_HOST_WORKER_THREADS);
    assert!(
        section.lines().any(|line| line.trim() == expected),
        "rns.toml's [runtime] says {expected}: {section}"
    );
    assert_eq!(
        rns_e2e::SystemOptions::default().worker_threads,
        rns_e2e::SINGLE_HOST_WORKER_THREADS
    );
    let niceness = format!(
        "background_niceness = {}",
        rns_e2e::SINGLE_HOST_BACKGROUND_NICENESS
    );
    assert!(
        section.lines().any(|line| line.trim() == niceness),
        "rns.toml's [runtime] says {niceness}: {section}"
    );
    assert_eq!(
        rns_e2e::SystemOptions::default().background_niceness,
        rns_e2e::SINGLE_HOST_BACKGROUND_NICENESS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_benchmark_runs_every_scenario_and_loses_nothing() {
    let report = bench::run(BenchPlan::short()).await;
    eprintln!("{}", report.table());
    assert!(report.passed(), "{report:?}");
    assert!(report.publish_ceiling > 0.0 && report.relay_ceiling > 0.0);
    let names: Vec<&str> = report
        .scenarios
        .iter()
        .map(|scenario| scenario.name)
        .collect();
    assert_eq!(names, ["bulk", "single", "paced", "mixed"]);
    for scenario in &report.scenarios {
        assert!(scenario.delivered_per_second > 0.0, "{scenario:?}");
        assert!(scenario.accept_latency_ms.p50 > 0.0, "{scenario:?}");
        assert!(
            scenario.final_latency_ms.p99 >= scenario.final_latency_ms.p50,
            "{scenario:?}"
        );
        // Every process is accounted: the four services, the servers, the simulators
        // and the load generator.
        for process in [
            "rns-gateway",
            "rns-dispatcher",
            "rns-carriers",
            "rns-analytics",
            "nats-server",
            "redis-server",
            "clickhouse",
            "simulators",
            "load generator",
        ] {
            assert!(
                scenario.cpu_seconds_per_thousand.contains_key(process),
                "{process}: {scenario:?}"
            );
        }
        assert!(scenario
            .peak_memory_mb
            .values()
            .all(|megabytes| *megabytes > 1.0));
    }
    let peer = report
        .peer
        .as_ref()
        .expect("Kannel took the single requests");
    assert_eq!(peer.closed.lost, 0, "{peer:?}");
    assert_eq!(peer.requests, BenchPlan::short().single_requests);
    assert!(peer.closed.delivered_per_second > 0.0, "{peer:?}");
    assert!(
        peer.closed.accept_latency_ms.p99 >= peer.closed.accept_latency_ms.p50,
        "{peer:?}"
    );
    for process in ["bearerbox", "smsbox", "fakesmsc", "load generator"] {
        assert!(
            peer.closed.cpu_seconds_per_thousand.contains_key(process),
            "{process} is accounted: {peer:?}"
        );
    }
    assert!(
        peer.closed.cpu_seconds_per_thousand.values().sum::<f64>() > 0.0,
        "Kannel did the work: {peer:?}"
    );
    assert!(report.single_to_peer().is_some_and(|ratio| ratio > 0.0));
    assert!(report.table().contains("Single requests side by side"));
    // The paced scenario held its rate on both sides: 300 requests at 200 a second take
    // about 1.5 s whatever the gateway, so neither accepted far faster than offered.
    let paced = &report.scenarios[2];
    let peer_paced = peer.paced.as_ref().expect("Kannel took the paced requests");
    assert_eq!(peer_paced.lost, 0, "{peer_paced:?}");
    for accepted in [paced.accepted_per_second, peer_paced.accepted_per_second] {
        assert!(
            accepted > 0.0 && accepted < 1.2 * f64::from(BenchPlan::short().paced_rate),
            "paced at {} a second, accepted {accepted}: {report:?}",
            BenchPlan::short().paced_rate
        );
    }
    assert!(report.table().contains("at a fixed 200 requests/s"));
    let priority = report.priority.as_ref().expect("the priority scenario ran");
    assert_eq!(priority.lost, 0, "{priority:?}");
    assert!(
        priority.high_submit_latency_ms.p50 > 0.0
            && priority.bulk_submit_latency_ms.p99 >= priority.high_submit_latency_ms.p99,
        "the high lane waited longer than the campaign: {priority:?}"
    );
    let backlog = report.backlog.as_ref().expect("the backlog scenario ran");
    assert!(
        backlog.waiting >= 20_000,
        "the carrier queues held the backlog: {backlog:?}"
    );
    assert!(backlog.drained_per_second > 0.0, "{backlog:?}");
    assert_eq!(
        backlog.memory_queued_mb.len(),
        3,
        "carriers was stopped: {backlog:?}"
    );
    assert_eq!(backlog.memory_draining_mb.len(), 4, "{backlog:?}");
    let json = report.json();
    assert_eq!(json["scenarios"].as_array().unwrap().len(), 4);
    assert_eq!(json["peer"]["lost"], 0);
    assert_eq!(json["peer"]["paced"]["lost"], 0);
    assert!(json["backlog"]["waiting"].as_u64().unwrap() >= 20_000);
    assert!(json["priority"]["high_submit_latency_ms"]["p99"].is_number());
}

/// The processes whose parent is `parent`, with their names.
fn children_of(parent: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (name) state ppid …`: the name may hold spaces, so split after it.
            let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then(|| (pid, name.to_owned()))
        })
        .collect()
}

/// SIGTERM to `pid`; whether it was sent.
fn terminate(pid: u32) -> bool {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .is_ok_and(|status| status.success())
}

/// A benchmark process given SIGTERM when the test ends before it did (so a failing
/// test does not leave it running).
struct Terminated(std::process::Child);

impl Drop for Terminated {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            terminate(self.0.id());
            let _ = self.0.wait();
        }
    }
}

/// Whether `pid` is gone (or a zombie waiting for init to reap it).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_benchmark_stopped_by_a_signal_leaves_no_server_or_service_running() {
    let data = tempfile::tempdir().expect("a temporary directory");
    let mut bench = Terminated(
        Command::new(env!("CARGO_BIN_EXE_rns-bench"))
            .args(["--short", "--only", "single"])
            .env("TMPDIR", data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rns-bench starts"),
    );
    let pid = bench.0.id();
    let started = [
        "nats-server",
        "redis-server",
        "rns-gateway",
        "rns-dispatcher",
        "rns-carriers",
        "rns-analytics",
    ];
    wait_until(
        "the benchmark's servers and services running",
        Duration::from_secs(120),
        || {
            let children = children_of(pid);
            let running = started
                .iter()
                .all(|expected| children.iter().any(|(_, name)| name == expected));
            async move { running }
        },
    )
    .await;
    let children = children_of(pid);
    assert!(terminate(pid), "SIGTERM sent to rns-bench");
    let mut status = None;
    wait_until("rns-bench exiting", Duration::from_secs(30), || {
        if status.is_none() {
            status = bench.0.try_wait().expect("rns-bench can be waited for");
        }
        let exited = status.is_some();
        async move { exited }
    })
    .await;
    let status = status.expect("rns-bench exited");
    assert_eq!(
        status.code(),
        Some(130),
        "stopped by the signal: {status:?}"
    );
    wait_until(
        "every server and service the benchmark started gone",
        Duration::from_secs(30),
        || {
            let left: Vec<_> = children.iter().filter(|(pid, _)| !gone(*pid)).collect();
            let none_left = left.is_empty();
            async move { none_left }
        },
    )
    .await;
}
