//! The short chaos scenario: kills of every service, a carrier down, one slower than
//! the submit timeout, one throttled and reporting delivery in receipts (late, lost,
//! duplicated, early), and ClickHouse outages under load; nothing accepted is lost or
//! delivered twice, every final state agrees with the receipts, every circuit closes
//! once its carrier is back, and the last traffic splits by the weights. The
//! nats-server restart is in the full scenario (`./scripts/chaos`): its known gap is
//! in the README. The same runs with the SMS carriers over SMPP to local SMSCs.
use rns_e2e::chaos::{self, ChaosPlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_kills_and_outages_nothing_accepted_is_lost_or_delivered_twice() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(1);
    eprintln!("chaos seed {seed} (rerun with: rns-chaos --short --seed {seed})");
    let report = chaos::run(ChaosPlan::short(seed)).await;
    println!("{}", report.line());
    assert!(report.accepted >= 5_000, "{report:?}");
    assert!(report.passed(), "{report:?}");
}

/// The same over SMPP: the SMS carriers bind to SMSCs (node-smpp's for KT and LG U+,
/// smpp34's for SKT) that all report in receipts; one SMSC refuses binds and drops its
/// sessions for a while, one answers slower than the submit timeout, one throttles,
/// and one is killed and started again — besides the kills of every service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_smpp_under_kills_and_smsc_faults_nothing_accepted_is_lost_or_sent_twice() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(1);
    eprintln!("chaos seed {seed} (rerun with: rns-chaos --short --smpp --seed {seed})");
    let report = chaos::run(ChaosPlan::short_over_smpp(seed)).await;
    println!("{}", report.line());
    assert!(report.accepted >= 5_000, "{report:?}");
    assert!(
        report.receipts > 0,
        "the SMSCs reported in receipts: {report:?}"
    );
    assert!(report.passed(), "{report:?}");
}
