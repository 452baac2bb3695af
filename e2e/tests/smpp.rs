//! The whole system with its SMS carriers speaking SMPP to SMSCs no one here wrote:
//! KT and LG U+ bind to node-smpp's server, SKT to smpp34's (see `testkit/smsc`).
//! Sends go in through the gateway and come out as `submit_sm`s in the customer's
//! exact split; `deliver_sm` receipts settle them, points follow, and a carrier whose
//! binds drop is routed around and comes back by itself.
use std::time::Duration;

use reqwest::Method;
use rns_e2e::{count, System, SystemOptions};
use rns_testkit::wait_until;
use serde_json::{json, Value};

async fn start() -> (System, String) {
    start_with(SystemOptions::default().receipt_deadline_seconds).await
}

/// The system over SMPP with receipts awaited `receipt_deadline_seconds`, and the key
/// of customer `acme` (10,000 points, SMS weights 50/30/20).
async fn start_with(receipt_deadline_seconds: u64) -> (System, String) {
    let system = System::start_with(SystemOptions {
        smpp: true,
        receipt_deadline_seconds,
        ..Default::default()
    })
    .await;
    let key = system.customer_with_points("acme", 10_000).await;
    system
        .set_sms_weights(&key, json!({"kt": 50, "skt": 30, "lgu": 20}))
        .await;
    (system, key)
}

async fn smsc_counts(system: &System, carrier: &str) -> Value {
    serde_json::from_str(&system.smsc(carrier).counts().await).expect("counts are JSON")
}

async fn smsc_messages(system: &System, carrier: &str) -> Vec<Value> {
    serde_json::from_str(&system.smsc(carrier).messages().await).expect("messages are JSON")
}

/// Waits until every message of `accepted`'s request has a final status; its summary.
async fn finished(system: &System, key: &str, accepted: &Value) -> Value {
    let total = accepted["message_ids"].as_array().unwrap().len() as u64;
    system
        .wait_for_request(
            key,
            accepted["request_id"].as_str().unwrap(),
            Duration::from_secs(60),
            |summary| {
                ["delivered", "undeliverable", "failed", "unknown"]
                    .iter()
                    .map(|status| count(&summary["by_status"], status))
                    .sum::<u64>()
                    == total
            },
        )
        .await
}

async fn points(system: &System, key: &str) -> Value {
    wait_until("nothing reserved", Duration::from_secs(20), || async {
        system.call(Method::GET, "/v1/points", key, None).await.1["reserved"] == json!(0)
    })
    .await;
    system.call(Method::GET, "/v1/points", key, None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_and_long_korean_lms_reach_both_smscs_in_the_exact_split_and_receipts_settle_them() {
    let (system, key) = start().await;
    let sms = system
        .send_to_many(&key, 100, "안녕하세요, RNS입니다.")
        .await;
    let summary = finished(&system, &key, &sms).await;
    assert_eq!(count(&summary["by_status"], "delivered"), 100, "{summary}");
    assert_eq!(
        summary["by_carrier"],
        json!({"kt": 50, "skt": 30, "lgu": 20}),
        "{summary}"
    );
    for (carrier, share) in [("kt", 50), ("skt", 30), ("lgu", 20)] {
        let counts = smsc_counts(&system, carrier).await;
        assert_eq!(count(&counts, "accepted"), share, "{carrier}: {counts}");
        assert_eq!(
            count(&counts, "receipts_acknowledged"),
            share,
            "{carrier}: every receipt taken: {counts}"
        );
        let taken = smsc_messages(&system, carrier).await;
        assert!(
            taken
                .iter()
                .all(|part| part["text"] == "안녕하세요, RNS입니다." && part["data_coding"] == 8),
            "{carrier}: {taken:?}"
        );
    }

    // A long Korean text is an LMS: it travels in concatenated parts, all to the carrier
    // its message was routed to (both kinds of SMSC), and its parts' receipts deliver it.
    let long_text = "가나다라마바사아자차카타파하".repeat(10);
    let to: Vec<String> = (0..10).map(|index| format!("0109999{index:04}")).collect();
    let (status, lms) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"from": "0212345678", "to": to, "subject": "안내", "text": long_text})),
        )
        .await;
    assert_eq!(status, 202, "{lms}");
    let summary = finished(&system, &key, &lms).await;
    assert_eq!(count(&summary["by_status"], "delivered"), 10, "{summary}");
    assert_eq!(
        summary["by_carrier"],
        json!({"kt": 5, "skt": 3, "lgu": 2}),
        "{summary}"
    );
    for id in lms["message_ids"].as_array().unwrap() {
        let (_, message) = system.message(&key, id.as_str().unwrap()).await;
        assert_eq!(message["type"], "lms", "{message}");
        let carrier = message["carrier"].as_str().unwrap().to_owned();
        let parts: Vec<Value> = smsc_messages(&system, &carrier)
            .await
            .into_iter()
            .filter(|part| part["destination"] == message["to"])
            .collect();
        assert!(parts.len() >= 3, "{carrier}: {parts:?}");
        assert!(
            parts.iter().all(|part| part["parts"] == parts.len()),
            "{parts:?}"
        );
        let joined: String = parts
            .iter()
            .map(|part| part["text"].as_str().unwrap())
            .collect();
        assert_eq!(joined, format!("안내\n{long_text}"), "{carrier}");
    }

    let account = points(&system, &key).await;
    assert_eq!(
        (account["spent"].as_i64(), account["balance"].as_i64()),
        (Some(100 + 10 * 3), Some(10_000 - 130)),
        "100 SMS at 1 and 10 LMS at 3: {account}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_receipts_from_smpp34_refund_and_the_rest_is_charged() {
    let (system, key) = start().await;
    system
        .smsc("skt")
        .set_knobs(r#"{"undeliverable_rate": 1.0}"#)
        .await;
    let sent = system
        .send_to_many(&key, 20, "to a handset that is off")
        .await;
    let summary = finished(&system, &key, &sent).await;
    assert_eq!(
        (
            count(&summary["by_status"], "delivered"),
            count(&summary["by_status"], "undeliverable")
        ),
        (14, 6),
        "SKT's 30% came back undeliverable: {summary}"
    );
    let undeliverable = sent["message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect::<Vec<_>>();
    let mut seen = 0;
    for id in undeliverable {
        let (_, message) = system.message(&key, id).await;
        if message["status"] == "undeliverable" {
            seen += 1;
            assert_eq!(message["carrier"], "skt", "{message}");
            let detail = message["events"].as_array().unwrap().last().unwrap()["detail"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(detail.contains("stat:UNDELIV"), "{message}");
        }
    }
    assert_eq!(seen, 6);
    let account = points(&system, &key).await;
    assert_eq!(
        (account["spent"].as_i64(), account["balance"].as_i64()),
        (Some(14), Some(10_000 - 14)),
        "undeliverable messages are refunded: {account}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smsc_that_drops_its_binds_is_routed_around_and_gets_its_share_again() {
    let (system, key) = start().await;
    let kt = system.smsc("kt");
    kt.set_knobs(r#"{"refuse_binds": true}"#).await;
    kt.drop_sessions().await;
    let during = system
        .send_to_many(&key, 100, "while KT's SMSC is away")
        .await;
    let summary = finished(&system, &key, &during).await;
    assert_eq!(count(&summary["by_status"], "delivered"), 100, "{summary}");
    assert_eq!(count(&summary["by_carrier"], "kt"), 0, "{summary}");
    assert_eq!(system.circuit("kt").await, "open");
    let counts = smsc_counts(&system, "kt").await;
    assert!(
        count(&counts, "refused_binds") > 0,
        "KT's sessions tried to bind again and were refused: {counts}"
    );
    assert_eq!(count(&counts, "accepted"), 0, "{counts}");

    kt.set_knobs(r#"{"refuse_binds": false}"#).await;
    wait_until("KT's circuit closing", Duration::from_secs(60), || async {
        system.circuit("kt").await == "closed"
    })
    .await;
    let after = system.send_to_many(&key, 100, "KT is back").await;
    let summary = finished(&system, &key, &after).await;
    assert_eq!(count(&summary["by_status"], "delivered"), 100, "{summary}");
    assert_eq!(
        summary["by_carrier"],
        json!({"kt": 50, "skt": 30, "lgu": 20}),
        "{summary}"
    );
    let account = points(&system, &key).await;
    assert_eq!(account["spent"].as_i64(), Some(200), "{account}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handset_texting_the_opt_out_number_is_opted_out_and_its_message_kept() {
    let (system, key) = start().await;
    let (status, numbers) = system
        .call(Method::GET, "/v1/sender-numbers", &key, None)
        .await;
    assert_eq!(status, 200, "{numbers}");
    let line = numbers["items"][0]["opt_out_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let answered = system
        .smsc("kt")
        .mobile_originated("01055550001", &line, "수신거부")
        .await;
    assert_eq!(answered, 0, "ESME_ROK");
    wait_until("the opt-out recorded", Duration::from_secs(20), || async {
        let (_, opt_outs) = system
            .call(
                Method::GET,
                "/v1/opt-outs?sender_number=0212345678",
                &key,
                None,
            )
            .await;
        opt_outs["items"][0]["recipient"] == "01055550001"
    })
    .await;
    let (_, inbound) = system
        .call(Method::GET, "/v1/inbound-messages", &key, None)
        .await;
    assert_eq!(
        (
            &inbound["items"][0]["text"],
            &inbound["items"][0]["carrier"],
            &inbound["items"][0]["opted_out_of"]
        ),
        (&json!("수신거부"), &json!("kt"), &json!("0212345678")),
        "{inbound}"
    );
    let (status, accepted) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(
                json!({"from": "0212345678", "to": ["01055550001", "01055550002"], "text": "안내"}),
            ),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["blocked"], json!(["01055550001"]), "{accepted}");
}

/// Chaos over SMPP: while requests come in, KT's SMSC (node-smpp) closes every
/// session, LG U+'s is killed and started again, SKT's (smpp34) unbinds every session,
/// and every receipt comes a second late. Every accepted message reaches a final
/// state, and no handset gets a message twice (a submit whose answer the session took
/// with it is never made again: it ends `unknown`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_dropped_binds_a_restarted_smsc_and_late_receipts_nothing_is_lost_or_sent_twice() {
    let (mut system, key) = start_with(8).await;
    let late = r#"{"receipt_delay_milliseconds": 1000}"#;
    for carrier in ["kt", "skt", "lgu"] {
        system.smsc(carrier).set_knobs(late).await;
    }
    // What LG U+'s SMSC took before it was killed (its records go with it).
    let mut taken = Vec::new();
    let mut requests = Vec::new();
    for round in 0..12 {
        let to: Vec<String> = (0..20)
            .map(|index| format!("010{:08}", round * 20 + index))
            .collect();
        let (status, accepted) = system
            .call(
                Method::POST,
                "/v1/messages",
                &key,
                Some(json!({"from": "0212345678", "to": to, "text": format!("round {round}")})),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        requests.push(accepted);
        match round {
            3 => system.smsc("kt").drop_sessions().await,
            6 => {
                taken.extend(smsc_messages(&system, "lgu").await);
                system.smsc_mut("lgu").restart().await;
                system.smsc("lgu").set_knobs(late).await;
            }
            9 => system.smsc("skt").drop_sessions().await,
            _ => {}
        }
    }
    let mut by_status = std::collections::BTreeMap::<String, u64>::new();
    for accepted in &requests {
        let summary = finished(&system, &key, accepted).await;
        for (status, count) in summary["by_status"].as_object().unwrap() {
            *by_status.entry(status.clone()).or_default() += count.as_u64().unwrap();
        }
    }
    assert_eq!(
        by_status.values().sum::<u64>(),
        240,
        "every accepted message has a final state: {by_status:?}"
    );
    for carrier in ["kt", "skt", "lgu"] {
        taken.extend(smsc_messages(&system, carrier).await);
    }
    let mut destinations: Vec<&str> = taken
        .iter()
        .map(|part| part["destination"].as_str().unwrap())
        .collect();
    let submitted = destinations.len();
    destinations.sort_unstable();
    destinations.dedup();
    assert_eq!(
        destinations.len(),
        submitted,
        "no handset got a message twice"
    );
    // Every fault was felt: both sessions' binds were dropped and both were made
    // again (a session rebinds after its back-off, which may outlast the traffic).
    for carrier in ["kt", "skt"] {
        let counts = smsc_counts(&system, carrier).await;
        assert_eq!(count(&counts, "dropped_sessions"), 2, "{carrier}: {counts}");
        wait_until(
            &format!("{carrier} bound again"),
            Duration::from_secs(20),
            || async { count(&smsc_counts(&system, carrier).await, "binds") >= 4 },
        )
        .await;
    }
    wait_until(
        "LG U+'s sessions bound to the restarted SMSC",
        Duration::from_secs(20),
        || async { count(&smsc_counts(&system, "lgu").await, "binds") >= 2 },
    )
    .await;
    eprintln!("final states under SMPP chaos: {by_status:?}, {submitted} submits");
}
