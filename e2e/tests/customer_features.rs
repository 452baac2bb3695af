//! Customer features end to end with the real binaries: groups and variables,
//! AlimTalk falling back to SMS, MMS images reaching the carrier, opted-out
//! recipients recorded as blocked.
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use reqwest::Method;
use rns_e2e::{count, System};
use rns_testkit::wait_until;
use serde_json::{json, Value};

async fn post(system: &System, key: &str, path: &str, body: Value) -> Value {
    let (status, answer) = system.call(Method::POST, path, key, Some(body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

async fn final_messages(system: &System, key: &str, accepted: &Value, total: usize) -> Vec<Value> {
    let request_id = accepted["request_id"].as_str().unwrap();
    system
        .wait_for_request(key, request_id, Duration::from_secs(60), |summary| {
            summary["total"] == json!(total)
                && ["delivered", "failed", "blocked"]
                    .iter()
                    .map(|status| count(&summary["by_status"], status))
                    .sum::<u64>()
                    == total as u64
        })
        .await;
    let mut messages = Vec::new();
    for id in accepted["message_ids"].as_array().unwrap() {
        let (status, message) = system.message(key, id.as_str().unwrap()).await;
        assert_eq!(status, 200, "{message}");
        messages.push(message);
    }
    messages
}

fn kinds(message: &Value) -> Vec<&str> {
    message["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_groups_and_explicit_numbers_reach_each_recipient_once_with_their_own_variables(
) {
    let system = System::start().await;
    let key = system.customer("acme").await;
    let first = post(&system, &key, "/v1/groups", json!({"name": "A"})).await["id"].clone();
    let second = post(&system, &key, "/v1/groups", json!({"name": "B"})).await["id"].clone();
    // Contacts 1-4 in A, 3-6 in B: 3 and 4 are in both.
    for index in 1..=6 {
        let mut groups = Vec::new();
        if index <= 4 {
            groups.push(first.clone());
        }
        if index >= 3 {
            groups.push(second.clone());
        }
        post(
            &system,
            &key,
            "/v1/contacts",
            json!({"number": format!("010-7000-000{index}"), "group_ids": groups,
                   "fields": {"name": format!("고객{index}")}}),
        )
        .await;
    }
    let template = post(
        &system,
        &key,
        "/v1/templates",
        json!({"channel": "sms", "name": "event", "text": "#{name}님, #{event}에 초대합니다"}),
    )
    .await["id"]
        .clone();
    let accepted = post(
        &system,
        &key,
        "/v1/messages",
        json!({
            "from": "0212345678",
            "template_id": template,
            "variables": {"event": "송년회"},
            "to": ["010-7000-0005"],
            "recipients": [
                {"to": "01070000002", "variables": {"name": "직접 지정"}},
                {"to": "01099990000", "variables": {"name": "외부 손님"}}
            ],
            "groups": [first, second]
        }),
    )
    .await;
    assert_eq!(accepted["recipients"], 7, "{accepted}");
    let messages = final_messages(&system, &key, &accepted, 7).await;

    let texts: BTreeMap<&str, &str> = messages
        .iter()
        .map(|message| {
            (
                message["to"].as_str().unwrap(),
                message["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(texts.len(), 7, "each recipient once: {texts:?}");
    let expected: BTreeMap<&str, &str> = [
        ("01070000001", "고객1님, 송년회에 초대합니다"),
        ("01070000002", "직접 지정님, 송년회에 초대합니다"),
        ("01070000003", "고객3님, 송년회에 초대합니다"),
        ("01070000004", "고객4님, 송년회에 초대합니다"),
        ("01070000005", "고객5님, 송년회에 초대합니다"),
        ("01070000006", "고객6님, 송년회에 초대합니다"),
        ("01099990000", "외부 손님님, 송년회에 초대합니다"),
    ]
    .into();
    assert_eq!(texts, expected);
    assert!(messages
        .iter()
        .all(|message| message["status"] == "delivered"));
    let mut delivered = 0;
    for carrier in ["kt", "skt", "lgu"] {
        let counts = system.simulator_counts(carrier).await;
        delivered += count(&counts, "delivered");
        assert_eq!(count(&counts, "duplicates"), 0, "{carrier}: {counts}");
    }
    assert_eq!(
        delivered, 7,
        "the carriers saw exactly one message per recipient"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alimtalk_that_kakao_rejects_falls_back_to_sms_and_is_charged_as_sms() {
    let system = System::start().await;
    let key = system.customer_with_points("acme", 100).await;
    for carrier in ["ke", "cns"] {
        system
            .set_knobs(carrier, json!({"permanent_failure_rate": 1.0}))
            .await;
    }
    let accepted = post(
        &system,
        &key,
        "/v1/messages",
        json!({
            "channel": "alimtalk",
            "from": "0212345678",
            "to": ["01011112222"],
            "text": "주문이 접수되었습니다.",
            "alimtalk": {"template_code": "order_v1", "title": "주문 접수",
                         "buttons": [{"kind": "delivery_tracking", "name": "배송조회"}]},
            "fallback": {"text": "[RNS] 주문 접수 안내: 장문으로 보내는 대체 문자입니다. 주문하신 상품이 접수되었으며 곧 발송됩니다. 감사합니다."}
        }),
    )
    .await;
    assert_eq!(
        accepted["points"], 3,
        "reserved: the dearer of AlimTalk (1) and LMS (3)"
    );
    let message = final_messages(&system, &key, &accepted, 1).await.remove(0);
    assert_eq!(message["status"], "delivered", "{message}");
    let timeline = kinds(&message);
    assert!(timeline.contains(&"fell_back"), "{timeline:?}");
    assert_eq!(timeline.last(), Some(&"delivered"));
    let events = message["events"].as_array().unwrap();
    let fell_back = events
        .iter()
        .find(|event| event["kind"] == "fell_back")
        .unwrap();
    assert!(
        ["ke", "cns"].contains(&fell_back["carrier"].as_str().unwrap()),
        "{fell_back}"
    );
    let delivered_by = events.last().unwrap()["carrier"].as_str().unwrap();
    assert!(["kt", "skt", "lgu"].contains(&delivered_by), "{message}");
    // Regression: the message showed the AlimTalk it never was delivered as. It
    // shows the LMS that reached the handset, and the AlimTalk it fell back from.
    assert_eq!(message["carrier"], delivered_by, "{message}");
    assert_eq!(
        (&message["channel"], &message["type"]),
        (&json!("sms"), &json!("lms")),
        "{message}"
    );
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .starts_with("[RNS] 주문 접수 안내"),
        "{message}"
    );
    assert_eq!(
        message["fell_back_from"],
        json!({"channel": "alimtalk", "type": "alimtalk", "text": "주문이 접수되었습니다."}),
        "{message}"
    );
    // Regression: statistics showed the AlimTalk carrier that rejected it at a
    // success rate of 1.0, and the routing report left the fallback out.
    let rejected_by = fell_back["carrier"].as_str().unwrap();
    let since = rns_types::time::rfc3339(rns_types::time::now_milliseconds() - 3_600_000);
    let (status, stats) = system
        .call(Method::GET, &format!("/v1/stats?since={since}"), &key, None)
        .await;
    assert_eq!(status, 200, "{stats}");
    let row = |carrier: &str| {
        stats["carriers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["carrier"] == carrier)
            .cloned()
            .unwrap_or_else(|| panic!("{carrier} has no statistics: {stats}"))
    };
    let alimtalk = row(rejected_by);
    assert_eq!(alimtalk["failed_over"], json!(1), "{alimtalk}");
    assert_eq!(alimtalk["success_rate"], json!(0.0), "{alimtalk}");
    assert_eq!(row(delivered_by)["delivered"], json!(1), "{stats}");
    let (status, report) = system
        .call(Method::GET, "/v1/routing/report", &key, None)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["channels"]["alimtalk"]["fell_back"][rejected_by],
        json!(1),
        "{report}"
    );
    assert_eq!(
        report["channels"]["sms"]["delivered"][delivered_by],
        json!(1),
        "{report}"
    );
    let alimtalk_rejections: u64 = [
        system.simulator_counts("ke").await,
        system.simulator_counts("cns").await,
    ]
    .iter()
    .map(|counts| count(counts, "permanent_failures"))
    .sum();
    assert_eq!(
        alimtalk_rejections, 1,
        "a rejection falls back at once, not via the other relay"
    );

    // Settled as the LMS it became: 3 spent, nothing left reserved.
    wait_until("nothing reserved", Duration::from_secs(10), || async {
        system.call(Method::GET, "/v1/points", &key, None).await.1["reserved"] == json!(0)
    })
    .await;
    let account = system.call(Method::GET, "/v1/points", &key, None).await.1;
    assert_eq!(
        (account["spent"].as_i64(), account["balance"].as_i64()),
        (Some(3), Some(97)),
        "{account}\n{}\n{}",
        system.log("rns-dispatcher"),
        system.log("rns-carriers")
    );

    // AlimTalk that Kakao accepts is delivered by a relay with its content.
    for carrier in ["ke", "cns"] {
        system
            .set_knobs(carrier, json!({"permanent_failure_rate": 0.0}))
            .await;
    }
    let accepted = post(
        &system,
        &key,
        "/v1/messages",
        json!({"channel": "alimtalk", "from": "0212345678", "to": ["01011113333"],
               "text": "예약이 확정되었습니다.", "alimtalk": {"template_code": "booking_v1"}}),
    )
    .await;
    let message = final_messages(&system, &key, &accepted, 1).await.remove(0);
    assert_eq!(message["status"], "delivered");
    let relays: u64 = [
        system.simulator_counts("ke").await,
        system.simulator_counts("cns").await,
    ]
    .iter()
    .map(|counts| count(counts, "alimtalk"))
    .sum();
    assert_eq!(relays, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mms_images_reach_the_carrier_and_opted_out_recipients_are_recorded_as_blocked() {
    let system = System::start().await;
    let key = system.customer("acme").await;
    system.set_sms_weights(&key, json!({"kt": 1})).await;
    post(
        &system,
        &key,
        "/v1/opt-outs",
        json!({"sender_number": "0212345678", "recipient": "01055550003"}),
    )
    .await;
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0];
    jpeg.resize(20_000, 7);
    let image = base64::engine::general_purpose::STANDARD.encode(&jpeg);
    let accepted = post(
        &system,
        &key,
        "/v1/messages",
        json!({"from": "0212345678", "to": ["01055550001", "01055550002", "01055550003"],
               "text": "새 메뉴 사진", "subject": "신메뉴", "images": [{"data": image}, {"data": image}]}),
    )
    .await;
    assert_eq!(accepted["type"], "mms");
    assert_eq!(accepted["blocked"], json!(["01055550003"]));
    let messages = final_messages(&system, &key, &accepted, 3).await;
    let statuses: HashMap<&str, &str> = messages
        .iter()
        .map(|message| {
            (
                message["to"].as_str().unwrap(),
                message["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses["01055550001"], "delivered");
    assert_eq!(statuses["01055550002"], "delivered");
    assert_eq!(statuses["01055550003"], "blocked");
    let counts = system.simulator_counts("kt").await;
    assert_eq!(count(&counts, "delivered"), 2, "{counts}");
    assert_eq!(
        count(&counts, "images"),
        4,
        "two images to each of two recipients: {counts}"
    );
}
