//! The benchmark harness at small counts, so `./scripts/bench` keeps working: every
//! scenario runs (the backlog scenario with 20,000 messages), Kannel takes the single
//! scenario's requests too, nothing is lost, and the numbers are numbers.
use rns_e2e::bench::{self, BenchPlan};

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
    assert_eq!(peer.lost, 0, "{peer:?}");
    assert_eq!(peer.requests, BenchPlan::short().single_requests);
    assert!(peer.delivered_per_second > 0.0, "{peer:?}");
    assert!(
        peer.accept_latency_ms.p99 >= peer.accept_latency_ms.p50,
        "{peer:?}"
    );
    for process in ["bearerbox", "smsbox", "fakesmsc", "load generator"] {
        assert!(
            peer.cpu_seconds_per_thousand.contains_key(process),
            "{process} is accounted: {peer:?}"
        );
    }
    assert!(
        peer.cpu_seconds_per_thousand.values().sum::<f64>() > 0.0,
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
