//! Carriers as they really behave, with the real binaries: a carrier that went down
//! comes back by itself, a carrier too slow to answer keeps its messages, a carrier
//! that throttles is waited for rather than failed over.
use std::time::Duration;

use reqwest::Method;
use rns_e2e::{count, Service, System, SystemOptions};
use rns_testkit::wait_until;
use serde_json::{json, Value};

fn event_kinds(message: &Value) -> Vec<String> {
    message["events"]
        .as_array()
        .map(|events| {
            events
                .iter()
                .map(|event| event["kind"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Regression: once KT's circuit opened, the dispatcher routed around it and no
/// message came to probe it, so it stayed open for good after KT came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carrier_back_from_an_outage_gets_its_share_again_within_a_second() {
    let system = System::start().await;
    let key = system.customer("acme").await;
    system
        .set_sms_weights(&key, json!({"kt": 50, "skt": 30, "lgu": 20}))
        .await;
    system.set_knobs("kt", json!({"outage": true})).await;
    let during = system.send_to_many(&key, 100, "during the outage").await;
    let summary = system
        .wait_for_request(
            &key,
            during["request_id"].as_str().unwrap(),
            Duration::from_secs(60),
            |summary| count(&summary["by_status"], "delivered") == 100,
        )
        .await;
    assert_eq!(count(&summary["by_carrier"], "kt"), 0, "{summary}");
    assert_eq!(system.circuit("kt").await, "open");
    let refused = count(&system.simulator_counts("kt").await, "outage_rejections");
    assert!(refused > 0, "KT's outage was never felt");

    system.set_knobs("kt", json!({"outage": false})).await;
    let closed_after = wait_until("KT's circuit closing", Duration::from_secs(10), || async {
        system.circuit("kt").await == "closed"
    })
    .await;
    eprintln!("KT's circuit closed {closed_after:?} after the carrier came back");
    assert!(
        closed_after <= Duration::from_secs(1),
        "the circuit closed {closed_after:?} after KT came back"
    );

    let after = system.send_to_many(&key, 100, "after the outage").await;
    let summary = system
        .wait_for_request(
            &key,
            after["request_id"].as_str().unwrap(),
            Duration::from_secs(60),
            |summary| count(&summary["by_status"], "delivered") == 100,
        )
        .await;
    assert_eq!(
        summary["by_carrier"],
        json!({"kt": 50, "skt": 30, "lgu": 20}),
        "{summary}"
    );
}

/// Regression: a message KT never answered (its latency above the submit timeout)
/// was asked again on KT as a new hop, met KT's open circuit there and was moved to
/// SKT, which delivered it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_outcome_is_unknown_never_reaches_another_carrier() {
    let system = System::start().await;
    let key = system.customer("acme").await;
    let (status, body) = system
        .call(
            Method::PUT,
            "/v1/routing/sms",
            &key,
            Some(json!({"weights": {"kt": 1, "skt": 0, "lgu": 0}, "failover": ["skt"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // Above the test system's 2 s submit timeout: every submit goes unanswered.
    system
        .set_knobs("kt", json!({"latency_milliseconds": 6000}))
        .await;
    let accepted = system.send_to_many(&key, 1, "slow").await;
    let message_id = accepted["message_ids"][0].as_str().unwrap().to_owned();

    // Every delivery on its first hop went unanswered: it is asked again on KT.
    wait_until(
        "the message staying on KT",
        Duration::from_secs(60),
        || async {
            let (_, message) = system.message(&key, &message_id).await;
            message["events"].as_array().is_some_and(|events| {
                events.iter().any(|event| {
                    event["detail"]
                        .as_str()
                        .is_some_and(|detail| detail.contains("asking kt again"))
                })
            })
        },
    )
    .await;
    assert_eq!(system.circuit("kt").await, "open", "the timeouts opened it");
    let (_, message) = system.message(&key, &message_id).await;
    assert!(
        !event_kinds(&message).contains(&"failed_over".to_owned()),
        "{message}"
    );

    system
        .set_knobs("kt", json!({"latency_milliseconds": 0}))
        .await;
    wait_until(
        "the message being delivered",
        Duration::from_secs(60),
        || async {
            let (_, message) = system.message(&key, &message_id).await;
            message["status"] == "delivered"
        },
    )
    .await;
    let (_, message) = system.message(&key, &message_id).await;
    assert_eq!(message["carrier"], "kt", "{message}");
    for carrier in ["skt", "lgu"] {
        assert!(
            system.simulator_delivered(carrier).await.is_empty(),
            "{carrier} delivered it too: {message}"
        );
    }
    let at_kt = system.simulator_delivered("kt").await;
    assert_eq!(at_kt, vec![message_id.clone()], "{message}");
    assert!(
        event_kinds(&message)
            .iter()
            .all(|kind| kind != "failed_over"),
        "{message}"
    );
}

/// Regression: KT capped at 20 submits a second answered 429 to the rest, which were
/// nak'ed like failures until they ran out of deliveries, and half of KT's share
/// failed over to SKT (the split became 100/220/80).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_carrier_keeps_its_exact_share_and_nothing_fails_over() {
    let system = System::start().await;
    let key = system.customer("acme").await;
    system
        .set_sms_weights(&key, json!({"kt": 50, "skt": 30, "lgu": 20}))
        .await;
    system.set_knobs("kt", json!({"tps_cap": 20})).await;
    let accepted = system.send_to_many(&key, 400, "throttled").await;
    let summary = system
        .wait_for_request(
            &key,
            accepted["request_id"].as_str().unwrap(),
            Duration::from_secs(120),
            |summary| count(&summary["by_status"], "delivered") == 400,
        )
        .await;
    assert_eq!(
        summary["by_carrier"],
        json!({"kt": 200, "skt": 120, "lgu": 80}),
        "{summary}"
    );
    let kt = system.simulator_counts("kt").await;
    assert!(count(&kt, "rate_limited") > 0, "KT never throttled: {kt}");
    assert_eq!(count(&kt, "delivered"), 200, "{kt}");
    let (status, report) = system
        .call(Method::GET, "/v1/routing/report", &key, None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["channels"]["sms"]["failed_over"]["kt"],
        json!(0),
        "{report}"
    );
    assert_eq!(system.circuit("kt").await, "closed");
}

/// Two carriers processes share KT's rate, which the operator sets at run time: they
/// submit at most 210 a second together, measured by KT itself over 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_carriers_processes_share_one_carriers_rate() {
    let system = System::start().await;
    let (_second, second_port) = system.start_replica(Service::Carriers, 2).await;
    system.set_carrier_rate("kt", json!(200)).await;
    let key = system.customer("acme").await;
    system
        .set_sms_weights(&key, json!({"kt": 1, "skt": 0, "lgu": 0}))
        .await;
    let accepted = system.send_to_many(&key, 8_000, "paced").await;
    wait_until("KT's first deliveries", Duration::from_secs(60), || async {
        count(&system.simulator_counts("kt").await, "delivered") >= 200
    })
    .await;

    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    let mut delivered = Vec::with_capacity(31);
    for _ in 0..=30 {
        ticks.tick().await;
        delivered.push(count(&system.simulator_counts("kt").await, "delivered"));
    }
    let per_second: Vec<u64> = delivered.windows(2).map(|pair| pair[1] - pair[0]).collect();
    let in_30_seconds = delivered[30] - delivered[0];
    eprintln!("KT took {in_30_seconds} in 30 s; per second: {per_second:?}");
    assert!(
        in_30_seconds <= 30 * 210,
        "{in_30_seconds} submits in 30 s at a shared 200/s: {per_second:?}"
    );
    assert!(
        in_30_seconds >= 30 * 150,
        "the budget was not used: {in_30_seconds} in 30 s: {per_second:?}"
    );
    // Both processes submitted to KT.
    let submitted_by = |metrics: String| {
        metrics
            .lines()
            .filter(|line| {
                line.starts_with("rns_carrier_submits_total")
                    && line.contains("carrier=\"kt\"")
                    && line.contains("outcome=\"delivered\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let first = submitted_by(system.metrics(Service::Carriers).await);
    let second = submitted_by(
        reqwest::get(format!("http://127.0.0.1:{second_port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert!(
        first > 0.0 && second > 0.0,
        "first {first}, second {second}"
    );
    let summary = system
        .wait_for_request(
            &key,
            accepted["request_id"].as_str().unwrap(),
            Duration::from_secs(120),
            |summary| count(&summary["by_status"], "delivered") == 8_000,
        )
        .await;
    assert_eq!(count(&summary["by_carrier"], "kt"), 8_000, "{summary}");
}

/// A one-time password sent while a campaign waits on a throttled carrier goes first:
/// the campaign's messages wait in the bulk lane, the password takes the next slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_send_overtakes_a_campaign_waiting_on_a_throttled_carrier() {
    let system = System::start().await;
    system.set_carrier_rate("kt", json!(20)).await;
    let key = system.customer("acme").await;
    system
        .set_sms_weights(&key, json!({"kt": 1, "skt": 0, "lgu": 0}))
        .await;
    let to: Vec<String> = (0..400).map(|index| format!("010{index:08}")).collect();
    let (status, campaign) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"from": "0212345678", "to": to, "text": "campaign", "priority": "bulk"})),
        )
        .await;
    assert_eq!(status, 202, "{campaign}");
    wait_until(
        "the campaign under way",
        Duration::from_secs(30),
        || async { count(&system.simulator_counts("kt").await, "delivered") >= 40 },
    )
    .await;

    let (status, password) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"from": "0212345678", "to": ["01099990000"], "text": "인증번호 123456", "priority": "high"})),
        )
        .await;
    assert_eq!(status, 202, "{password}");
    let message_id = password["message_ids"][0].as_str().unwrap().to_owned();
    let took = wait_until(
        "the password delivered",
        Duration::from_secs(10),
        || async { system.simulator_delivered("kt").await.contains(&message_id) },
    )
    .await;
    let campaign_delivered = count(&system.simulator_counts("kt").await, "delivered");
    eprintln!("the password reached KT {took:?} after it was accepted; the campaign had {campaign_delivered} of 400");
    assert!(
        campaign_delivered < 300,
        "the password waited for the campaign: {campaign_delivered} of 400 were delivered first"
    );
    assert!(took <= Duration::from_secs(2), "the password took {took:?}");

    let (status, refused) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"from": "0212345678", "to": ["01099990000"], "text": "x", "priority": "urgent"})),
        )
        .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "invalid_body", "{refused}");
}

/// A send's validity: messages a slow carrier could not take in time end `expired`
/// and are refunded; bad validities are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_not_submitted_within_their_validity_expire_and_are_refunded() {
    let system = System::start().await;
    system.set_carrier_rate("kt", json!(2)).await;
    let key = system.customer_with_points("acme", 100).await;
    system
        .set_sms_weights(&key, json!({"kt": 1, "skt": 0, "lgu": 0}))
        .await;
    let to: Vec<String> = (0..12).map(|index| format!("010{index:08}")).collect();
    let (status, accepted) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"from": "0212345678", "to": to, "text": "soon", "valid_for": 2})),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let summary = system
        .wait_for_request(
            &key,
            accepted["request_id"].as_str().unwrap(),
            Duration::from_secs(60),
            |summary| {
                count(&summary["by_status"], "delivered") + count(&summary["by_status"], "expired")
                    == 12
            },
        )
        .await;
    let delivered = count(&summary["by_status"], "delivered");
    let expired = count(&summary["by_status"], "expired");
    assert!(
        (2..=8).contains(&delivered) && expired >= 4,
        "at 2/s for 2 s: {summary}"
    );
    assert_eq!(
        count(&system.simulator_counts("kt").await, "delivered"),
        delivered
    );
    let account = wait_for_settled(&system, &key).await;
    assert_eq!(account["spent"], json!(delivered), "{account}");
    assert_eq!(account["balance"], json!(100 - delivered), "{account}");

    for (body, why) in [
        (json!({"valid_for": 0}), "zero"),
        (json!({"valid_for": 300_000}), "over 72 hours"),
        (
            json!({"valid_for": 60, "expires_at": "2030-01-01T00:00:00Z"}),
            "both",
        ),
        (json!({"expires_at": "2020-01-01T00:00:00Z"}), "in the past"),
        (json!({"expires_at": "tomorrow"}), "not a time"),
        (
            json!({"expires_at": "2030-01-01T00:00:00Z", "recurrence": {"every": "1h"}}),
            "recurring",
        ),
    ] {
        let mut send = json!({"from": "0212345678", "to": ["01012345678"], "text": "x"});
        for (field, value) in body.as_object().unwrap() {
            send[field] = value.clone();
        }
        let (status, reply) = system
            .call(Method::POST, "/v1/messages", &key, Some(send))
            .await;
        assert_eq!(status, 422, "{why}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_validity", "{why}: {reply}");
    }
}

/// The customer's points once nothing is reserved any more.
async fn wait_for_settled(system: &System, key: &str) -> Value {
    wait_until("the points settled", Duration::from_secs(30), || async {
        system.call(Method::GET, "/v1/points", key, None).await.1["reserved"] == json!(0)
    })
    .await;
    system.call(Method::GET, "/v1/points", key, None).await.1
}

/// The status `GET /v1/messages/{id}` shows.
async fn status_of(system: &System, key: &str, message_id: &str) -> String {
    let (_, message) = system.message(key, message_id).await;
    message["status"].as_str().unwrap_or_default().to_owned()
}

/// A carrier that reports delivery later: its messages stay `submitted` until the
/// receipt, which decides the final state, the points, the webhook-visible events and
/// the statistics; a receipt that never comes ends the message `unknown` after the
/// deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_decide_final_states_points_and_statistics() {
    let system = System::start_with(SystemOptions {
        receipt_deadline_seconds: 5,
        ..Default::default()
    })
    .await;
    let key = system.customer_with_points("acme", 100).await;
    system
        .set_sms_weights(&key, json!({"kt": 1, "skt": 0, "lgu": 0}))
        .await;

    // Delivered, after a receipt two seconds later.
    system
        .set_receipts("kt", json!({"delay_milliseconds": 2000}))
        .await;
    let delivered = system.send_to_many(&key, 6, "receipt delivered").await;
    let first = delivered["message_ids"][0].as_str().unwrap().to_owned();
    wait_until("KT accepted it", Duration::from_secs(30), || async {
        status_of(&system, &key, &first).await == "submitted"
    })
    .await;
    let (_, account) = system.call(Method::GET, "/v1/points", &key, None).await;
    assert_eq!(
        account["reserved"],
        json!(6),
        "held until the receipt: {account}"
    );
    let summary = system
        .wait_for_request(
            &key,
            delivered["request_id"].as_str().unwrap(),
            Duration::from_secs(30),
            |summary| count(&summary["by_status"], "delivered") == 6,
        )
        .await;
    assert_eq!(count(&summary["by_carrier"], "kt"), 6, "{summary}");
    let (_, message) = system.message(&key, &first).await;
    assert_eq!(
        event_kinds(&message),
        ["routed", "submitted", "delivered"],
        "{message}"
    );
    let receipt = &message["events"][2];
    assert!(
        receipt["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("receipt from kt")),
        "{message}"
    );

    // Undeliverable: refunded.
    system
        .set_receipts("kt", json!({"undeliverable_rate": 1.0}))
        .await;
    let unreachable = system.send_to_many(&key, 3, "receipt undeliverable").await;
    system
        .wait_for_request(
            &key,
            unreachable["request_id"].as_str().unwrap(),
            Duration::from_secs(30),
            |summary| count(&summary["by_status"], "undeliverable") == 3,
        )
        .await;

    // Lost: unknown once the 5 s deadline passed, charged.
    system.set_receipts("kt", json!({"loss_rate": 1.0})).await;
    let unreported = system.send_to_many(&key, 1, "receipt lost").await;
    let unreported_id = unreported["message_ids"][0].as_str().unwrap().to_owned();
    wait_until("KT accepted it", Duration::from_secs(30), || async {
        status_of(&system, &key, &unreported_id).await == "submitted"
    })
    .await;
    let waited = wait_until("the deadline", Duration::from_secs(30), || async {
        status_of(&system, &key, &unreported_id).await == "unknown"
    })
    .await;
    eprintln!("the lost receipt's message ended unknown {waited:?} after it was submitted");
    assert!(waited >= Duration::from_secs(3), "too early: {waited:?}");
    let counts = system.simulator_counts("kt").await;
    assert_eq!(count(&counts, "receipts_lost"), 1, "{counts}");
    assert_eq!(count(&counts, "undeliverable"), 3, "{counts}");

    let account = wait_for_settled(&system, &key).await;
    assert_eq!(
        account["balance"],
        json!(100 - 6 - 1),
        "delivered and unknown are charged, undeliverable refunded: {account}"
    );
    let since = rns_types::time::rfc3339(rns_types::time::now_milliseconds() - 3_600_000);
    wait_until("statistics", Duration::from_secs(30), || async {
        let (_, stats) = system
            .call(Method::GET, &format!("/v1/stats?since={since}"), &key, None)
            .await;
        stats["carriers"]
            .as_array()
            .and_then(|rows| rows.iter().find(|row| row["carrier"] == "kt"))
            .is_some_and(|kt| kt["unknown"] == json!(1))
    })
    .await;
    let (_, stats) = system
        .call(Method::GET, &format!("/v1/stats?since={since}"), &key, None)
        .await;
    let kt = stats["carriers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["carrier"] == "kt"))
        .cloned()
        .expect("KT has statistics");
    assert_eq!(
        (
            &kt["submitted"],
            &kt["delivered"],
            &kt["undeliverable"],
            &kt["unknown"]
        ),
        (&json!(10), &json!(6), &json!(3), &json!(1)),
        "{kt}"
    );
    assert_eq!(kt["success_rate"], json!(0.6), "{kt}");
    let to_receipt = kt["latency_ms"]["p50"].as_f64().unwrap();
    let to_carrier = kt["submit_latency_ms"]["p50"].as_f64().unwrap();
    assert!(
        to_receipt > to_carrier && to_receipt >= 1_000.0,
        "latency runs to the receipt, submit latency to the carrier: {kt}"
    );
}

/// Kakao often reports a failed AlimTalk later, in a receipt: the message then falls
/// back to its SMS/LMS as it does when Kakao refuses it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alimtalk_whose_receipt_says_undeliverable_falls_back_to_sms() {
    let system = System::start().await;
    let key = system.customer_with_points("acme", 100).await;
    for carrier in ["ke", "cns"] {
        system
            .set_receipts(carrier, json!({"undeliverable_rate": 1.0}))
            .await;
    }
    let (status, accepted) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({
                "channel": "alimtalk",
                "from": "0212345678",
                "to": ["01011112222"],
                "text": "주문이 접수되었습니다.",
                "alimtalk": {"template_code": "order_v1"},
                "fallback": {"text": "[RNS] 주문이 접수되었습니다."}
            })),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let message_id = accepted["message_ids"][0].as_str().unwrap().to_owned();
    wait_until("delivered as SMS", Duration::from_secs(60), || async {
        status_of(&system, &key, &message_id).await == "delivered"
    })
    .await;
    let (_, message) = system.message(&key, &message_id).await;
    let kinds = event_kinds(&message);
    let submitted = kinds.iter().position(|kind| kind == "submitted");
    let fell_back = kinds.iter().position(|kind| kind == "fell_back");
    assert!(
        matches!((submitted, fell_back), (Some(submitted), Some(fell_back)) if submitted < fell_back),
        "Kakao accepted it, then its receipt made it fall back: {message}"
    );
    let detail = message["events"][fell_back.unwrap()]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("receipt says undeliverable"), "{detail}");
    assert_eq!(
        (&message["channel"], &message["type"]),
        (&json!("sms"), &json!("sms")),
        "{message}"
    );
    assert!(["kt", "skt", "lgu"].contains(&message["carrier"].as_str().unwrap()));
    let account = wait_for_settled(&system, &key).await;
    assert_eq!(
        account["balance"],
        json!(99),
        "charged once, as SMS: {account}"
    );
}
