//! Failover with the real binaries: a carrier in outage loses its traffic to the
//! others, nothing is lost or delivered twice, and the ratio report shows what
//! failover did to the customer's split.
use std::time::Duration;

use reqwest::Method;
use rns_e2e::{count, System};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_in_outage_fails_over_and_the_report_shows_the_moved_traffic() {
    let system = System::start().await;
    let key = system.customer("acme").await;
    system
        .set_sms_weights(&key, json!({"kt": 50, "skt": 30, "lgu": 20}))
        .await;
    system.set_knobs("kt", json!({"outage": true})).await;

    let accepted = system.send_to_many(&key, 200, "failover").await;
    let request_id = accepted["request_id"].as_str().unwrap();
    let summary = system
        .wait_for_request(&key, request_id, Duration::from_secs(60), |summary| {
            count(&summary["by_status"], "delivered") == 200
        })
        .await;
    assert_eq!(count(&summary["by_carrier"], "kt"), 0, "{summary}");
    assert_eq!(
        count(&summary["by_carrier"], "skt") + count(&summary["by_carrier"], "lgu"),
        200
    );
    let mut delivered_by_simulators = 0;
    for carrier in ["kt", "skt", "lgu"] {
        let counts = system.simulator_counts(carrier).await;
        assert_eq!(count(&counts, "duplicates"), 0, "{carrier}: {counts}");
        delivered_by_simulators += count(&counts, "delivered");
    }
    assert_eq!(delivered_by_simulators, 200);

    // A message first routed to KT shows the hop in its timeline.
    let moved = accepted["message_ids"][0].as_str().unwrap();
    let (_, message) = system.message(&key, moved).await;
    let kinds: Vec<&str> = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"routed"));
    assert!(kinds.contains(&"failed_over"), "{message}");
    assert_eq!(kinds.last(), Some(&"delivered"));

    let (status, report) = system
        .call(Method::GET, "/v1/routing/report", &key, None)
        .await;
    assert_eq!(status, 200, "{report}");
    let sms = &report["channels"]["sms"];
    assert_eq!(sms["target"], json!({"kt": 50, "lgu": 20, "skt": 30}));
    assert_eq!(
        sms["first_choice"],
        json!({"kt": 100, "skt": 60, "lgu": 40})
    );
    assert_eq!(sms["delivered"]["kt"], json!(0));
    assert_eq!(sms["failed_over"]["kt"], json!(100));
    let (status, circuits) = system
        .call(Method::GET, "/v1/carriers", rns_e2e::ADMIN_KEY, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(circuits["items"][0]["id"], json!("kt"));
    assert_eq!(circuits["items"][0]["circuit"], json!("open"), "{circuits}");

    let (status, reply) = system
        .call(Method::GET, "/v1/routing/report?from=yesterday", &key, None)
        .await;
    assert_eq!(status, 422);
    assert_eq!(reply["error"]["code"], json!("invalid_time"));
}
