//! SIGTERM under load, as a rolling deploy sends it: every service stops taking
//! work, finishes or returns what it holds, and exits within its grace period; it is
//! started again and nothing accepted is lost or delivered twice.
use rns_e2e::chaos::{self, ChaosPlan};
use rns_service::shutdown::GRACE_PERIOD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_stopped_under_load_exits_within_its_grace_period_and_loses_nothing() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(1);
    eprintln!("seed {seed}");
    let report = chaos::run(ChaosPlan::graceful(seed)).await;
    println!("{} longest_exit={:?}", report.line(), report.longest_exit);
    assert!(report.accepted >= 5_000, "{report:?}");
    assert_eq!(
        report.slow_exits, 0,
        "exits beyond {GRACE_PERIOD:?}: {report:?}"
    );
    assert!(report.passed(), "{report:?}");
}
