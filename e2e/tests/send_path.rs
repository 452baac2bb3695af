//! The whole send path with real binaries: HTTP → SEND → dispatcher → carrier queues →
//! carrier workers → simulators → RESULTS → analytics → ClickHouse → HTTP.
use std::time::Duration;

use reqwest::Method;
use rns_e2e::{count, System};
use serde_json::{json, Value};

const RECIPIENTS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_are_delivered_in_the_exact_ratio_and_match_the_carriers_own_counts()
{
    let system = System::start().await;
    // Everything off the accept path yields the CPU to it (`[runtime]
    // background_niceness`); the gateway, nats-server and Redis do not.
    let niceness = system.niceness();
    for (name, value) in &niceness {
        let expected = match *name {
            "rns-gateway" | "nats-server" | "redis-server" => 0,
            _ => rns_e2e::SINGLE_HOST_BACKGROUND_NICENESS,
        };
        assert_eq!(*value, expected, "{name}'s nice value: {niceness:?}");
    }
    assert!(niceness.iter().any(|(name, _)| *name == "rns-dispatcher"));
    let key = system.customer("acme").await;
    system
        .set_sms_weights(&key, json!({"kt": 50, "skt": 30, "lgu": 20}))
        .await;

    let accepted = system
        .send_to_many(&key, RECIPIENTS, "[RNS] 인증번호 123456")
        .await;
    let request_id = accepted["request_id"].as_str().unwrap().to_owned();
    assert_eq!(
        accepted["message_ids"].as_array().unwrap().len(),
        RECIPIENTS
    );

    let summary = system
        .wait_for_request(&key, &request_id, Duration::from_secs(180), |summary| {
            count(&summary["by_status"], "delivered") == RECIPIENTS as u64
        })
        .await;
    assert_eq!(summary["total"], json!(RECIPIENTS));
    assert_eq!(summary["by_status"], json!({"delivered": RECIPIENTS}));
    assert_eq!(
        summary["by_carrier"],
        json!({"kt": 5_000, "skt": 3_000, "lgu": 2_000})
    );

    // The carriers' own records agree with ours, and nobody got a message twice.
    for (carrier, expected) in [("kt", 5_000), ("skt", 3_000), ("lgu", 2_000)] {
        let counts = system.simulator_counts(carrier).await;
        assert_eq!(count(&counts, "delivered"), expected, "{carrier}: {counts}");
        assert_eq!(count(&counts, "duplicates"), 0, "{carrier}: {counts}");
        assert_eq!(
            count(&summary["by_carrier"], carrier),
            count(&counts, "delivered")
        );
    }

    let message_id = accepted["message_ids"][1234].as_str().unwrap();
    let (status, message) = system.message(&key, message_id).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["status"], json!("delivered"));
    assert_eq!(message["to"], json!("01000001234"));
    assert_eq!(message["from"], json!("0212345678"));
    assert_eq!(message["request_id"], json!(request_id));
    assert_eq!(message["attempts"], json!(1));
    let kinds: Vec<&str> = message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["routed", "submitted", "delivered"]);

    // Another customer sees none of it.
    let rival = system.customer("rival").await;
    let (status, body) = system.message(&rival, message_id).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], json!("not_found"));
    let (status, _) = system
        .call(
            Method::GET,
            &format!("/v1/requests/{request_id}"),
            &rival,
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_recipient_requests_follow_the_ratio_and_a_permanent_rejection_is_a_final_failure() {
    let system = System::start().await;
    let key = system.customer("acme").await;
    system
        .set_sms_weights(&key, json!({"kt": 2, "skt": 1, "lgu": 0}))
        .await;
    let mut request_ids = Vec::new();
    for index in 0..30 {
        let (status, body) = system
            .call(
                Method::POST,
                "/v1/messages",
                &key,
                Some(json!({"from": "0212345678", "to": [format!("0109999{index:04}")], "text": "hello"})),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        request_ids.push(body["request_id"].as_str().unwrap().to_owned());
    }
    let mut by_carrier: std::collections::BTreeMap<String, u64> = Default::default();
    for request_id in &request_ids {
        let summary = system
            .wait_for_request(&key, request_id, Duration::from_secs(60), |summary| {
                count(&summary["by_status"], "delivered") == 1
            })
            .await;
        for (carrier, messages) in summary["by_carrier"].as_object().unwrap() {
            *by_carrier.entry(carrier.clone()).or_default() += messages.as_u64().unwrap();
        }
    }
    assert_eq!(
        by_carrier,
        [("kt".to_owned(), 20), ("skt".to_owned(), 10)]
            .into_iter()
            .collect()
    );

    // KT rejects everything for good: the message fails once, with KT's reason.
    system.set_sms_weights(&key, json!({"kt": 1})).await;
    system
        .set_knobs("kt", json!({"permanent_failure_rate": 1.0}))
        .await;
    let (status, accepted) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"from": "0212345678", "to": ["01088887777"], "text": "hello"})),
        )
        .await;
    assert_eq!(status, 202);
    let request_id = accepted["request_id"].as_str().unwrap();
    system
        .wait_for_request(
            &key,
            request_id,
            Duration::from_secs(60),
            |summary: &Value| count(&summary["by_status"], "failed") == 1,
        )
        .await;
    let message_id = accepted["message_ids"][0].as_str().unwrap();
    let (_, message) = system.message(&key, message_id).await;
    assert_eq!(message["status"], json!("failed"));
    let last = message["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], json!("failed"));
    assert!(
        last["detail"]
            .as_str()
            .unwrap()
            .contains("kt: 400 invalid_number"),
        "{last}"
    );
}
