//! Points with the real binaries: 50 concurrent sends against a balance that covers
//! only some of them, one carrier rejecting everything. No overdraw; once every
//! message is final, spent equals the messages delivered, failures were refunded, and
//! balance + reserved + spent equals what was topped up. And a gateway killed between a
//! send's reservation and its publish: the dispatcher returns those points.
use std::time::{Duration, Instant};

use reqwest::Method;
use rns_e2e::{count, Service, System, SystemOptions};
use serde_json::{json, Value};

const TOPPED_UP: i64 = 100;
const REQUESTS: usize = 50;
const RECIPIENTS_PER_REQUEST: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_never_overdraw_and_the_ledger_balances_against_deliveries() {
    let system = System::start().await;
    let key = system.customer_with_points("acme", TOPPED_UP as u64).await;
    system
        .set_sms_weights(&key, json!({"kt": 50, "skt": 30, "lgu": 20}))
        .await;
    system
        .set_knobs("lgu", json!({"permanent_failure_rate": 1.0}))
        .await;

    let sends = (0..REQUESTS).map(|request| {
        let system = &system;
        let key = &key;
        async move {
            let to: Vec<String> = (0..RECIPIENTS_PER_REQUEST)
                .map(|index| format!("010{request:04}{index:04}"))
                .collect();
            system
                .call(
                    Method::POST,
                    "/v1/messages",
                    key,
                    Some(json!({"from": "0212345678", "to": to, "text": "concurrent"})),
                )
                .await
        }
    });
    let answers = futures::future::join_all(sends).await;
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 202)
        .map(|(_, body)| body)
        .collect();
    let refused = answers.iter().filter(|(status, _)| *status == 402).count();
    // 100 points pay for 33 requests of 3 SMS; refunds of rejected messages that
    // arrive while later requests come in may pay for a few more.
    assert!(accepted.len() >= 33, "{answers:?}");
    assert!(refused > 0, "{answers:?}");
    assert_eq!(accepted.len() + refused, REQUESTS, "{answers:?}");

    // Wait until every accepted message is final and settled.
    let deadline = Instant::now() + Duration::from_secs(120);
    let account = loop {
        let (status, account) = system.call(Method::GET, "/v1/points", &key, None).await;
        assert_eq!(status, 200, "{account}");
        assert!(account["balance"].as_i64().unwrap() >= 0, "{account}");
        if account["reserved"] == json!(0) || Instant::now() > deadline {
            break account;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        account["reserved"],
        json!(0),
        "everything settled: {account}"
    );

    let mut delivered = 0;
    let mut failed = 0;
    for body in &accepted {
        let request_id = body["request_id"].as_str().unwrap();
        let summary = system
            .wait_for_request(&key, request_id, Duration::from_secs(60), |summary| {
                summary["total"] == json!(RECIPIENTS_PER_REQUEST)
                    && count(&summary["by_status"], "delivered")
                        + count(&summary["by_status"], "failed")
                        == RECIPIENTS_PER_REQUEST as u64
            })
            .await;
        delivered += count(&summary["by_status"], "delivered") as i64;
        failed += count(&summary["by_status"], "failed") as i64;
    }
    let messages = (accepted.len() * RECIPIENTS_PER_REQUEST) as i64;
    assert_eq!(delivered + failed, messages);
    assert!(failed > 0, "lgu rejected its share");
    assert!(
        messages <= TOPPED_UP + failed,
        "only refunds can pay for more than the top-up"
    );
    let carriers_delivered: u64 = {
        let mut total = 0;
        for carrier in ["kt", "skt", "lgu"] {
            total += count(&system.simulator_counts(carrier).await, "delivered");
        }
        total
    };
    assert_eq!(carriers_delivered as i64, delivered);
    assert_eq!(account["spent"], json!(delivered), "{account}");
    assert_eq!(
        account["balance"],
        json!(TOPPED_UP - delivered),
        "{account}"
    );
    assert_eq!(account["topped_up"], json!(TOPPED_UP));

    // The ledger shows each refund with its message and reason.
    let (_, ledger) = system
        .call(Method::GET, "/v1/points/ledger?limit=1000", &key, None)
        .await;
    let refunds: Vec<&Value> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["kind"] == "refund")
        .collect();
    assert_eq!(refunds.len() as i64, failed);
    assert!(refunds.iter().all(|entry| entry["message_id"].is_string()
        && entry["reason"].as_str().unwrap().contains("lgu")));
}

/// The customer's balance and reserved points.
async fn points_of(system: &System, key: &str) -> (i64, i64) {
    let (status, account) = system.call(Method::GET, "/v1/points", key, None).await;
    assert_eq!(status, 200, "{account}");
    (
        account["balance"].as_i64().unwrap(),
        account["reserved"].as_i64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_between_a_reservation_and_its_publish_has_the_points_returned() {
    let mut system = System::start_with(SystemOptions {
        // A send right after another waits this long in the gateway for its SEND
        // message, its points already reserved: time to kill the gateway then.
        gather_interval_milliseconds: Some(60_000),
        unpublished_release_seconds: Some(2),
        ..SystemOptions::default()
    })
    .await;
    let key = system.customer_with_points("acme", 10).await;
    let body = json!({"from": "0212345678", "to": ["01012345678"], "text": "one"});
    let (status, first) = system
        .call(Method::POST, "/v1/messages", &key, Some(body.clone()))
        .await;
    assert_eq!(status, 202, "the first goes at once: {first}");
    let mut second = Box::pin(system.call(Method::POST, "/v1/messages", &key, Some(body)));
    tokio::select! {
        answer = &mut second => panic!("the second send was published within the interval: {answer:?}"),
        _ = rns_testkit::wait_until("both sends' points reserved", Duration::from_secs(30), || async {
            points_of(&system, &key).await.0 == 8
        }) => {}
    }
    drop(second);
    system.kill(Service::Gateway);
    system.spawn_service(Service::Gateway);
    system.wait_ready(Service::Gateway).await;
    // The first was delivered and paid; the second, never published, is returned by
    // the dispatcher once it waited past `unpublished_release_seconds`.
    rns_testkit::wait_until(
        "the unpublished send's point returned",
        Duration::from_secs(60),
        || async { points_of(&system, &key).await == (9, 0) },
    )
    .await;
    let (_, ledger) = system
        .call(Method::GET, "/v1/points/ledger?kind=release", &key, None)
        .await;
    let releases = ledger["items"].as_array().unwrap();
    assert_eq!(releases.len(), 1, "{ledger}");
    assert_eq!(releases[0]["amount"], 1, "{ledger}");
    assert_eq!(
        releases[0]["reason"],
        rns_points::store::UNPUBLISHED_REASON,
        "{ledger}"
    );
    let (_, requests) = system.call(Method::GET, "/v1/requests", &key, None).await;
    assert_eq!(
        requests["items"].as_array().unwrap().len(),
        1,
        "only the first was ever accepted: {requests}"
    );
}
