//! The send path on a 3-node JetStream cluster running the production configuration
//! with R3 streams: one node is killed (SIGKILL) mid-run and started again later, and
//! every accepted message still reaches exactly one final state.
use rns_e2e::chaos::{self, ChaosPlan};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_of_three_nodes_killed_every_accepted_message_reaches_a_final_state() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(1);
    eprintln!("seed {seed}");
    let report = chaos::run(ChaosPlan::cluster(seed)).await;
    println!("{}", report.line());
    assert!(report.accepted >= 5_000, "{report:?}");
    assert_eq!(
        report.stream_replicas, 3,
        "streams are replicated on every node"
    );
    assert!(report.passed(), "{report:?}");
}
