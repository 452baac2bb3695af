//! The short chaos scenario: kills, outages and a nats-server restart under load;
//! nothing accepted is lost and nothing is delivered twice.
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
