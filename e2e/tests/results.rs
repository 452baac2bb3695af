//! Results with the real binaries: after two requests are final, `GET /v1/requests`
//! pages them newest first with totals and points, `GET /v1/messages?text=` finds a
//! message by its contact's memo, and `GET /v1/stats` counts per carrier with
//! latency and the split against the target weights. Another customer sees none of
//! it.
use std::time::Duration;

use reqwest::Method;
use rns_e2e::{count, System};
use serde_json::{json, Value};

const RECIPIENTS: usize = 20;

fn is_final(summary: &Value, total: u64) -> bool {
    count(&summary["by_status"], "delivered") + count(&summary["by_status"], "failed") == total
        && summary["points"]["spent"].as_u64().unwrap_or(0)
            + summary["points"]["refunded"].as_u64().unwrap_or(0)
            == total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_messages_and_statistics_report_what_happened() {
    let system = System::start().await;
    let key = system.customer_with_points("acme", 1_000).await;
    let stranger = system.customer_with_points("stranger", 10).await;
    system
        .set_sms_weights(&key, json!({"kt": 50, "skt": 30, "lgu": 20}))
        .await;
    system
        .set_knobs("lgu", json!({"permanent_failure_rate": 1.0}))
        .await;
    let (status, contact) = system
        .call(
            Method::POST,
            "/v1/contacts",
            &key,
            Some(json!({"number": "010-7777-0001", "memo": "VIP 단골"})),
        )
        .await;
    assert_eq!(status, 201, "{contact}");

    let mut request_ids = Vec::new();
    for (to, text) in [
        (
            (0..RECIPIENTS)
                .map(|index| format!("0105555{index:04}"))
                .collect::<Vec<_>>(),
            "주문이 접수되었습니다",
        ),
        (vec!["01077770001".to_owned()], "감사합니다"),
    ] {
        let (status, accepted) = system
            .call(
                Method::POST,
                "/v1/messages",
                &key,
                Some(json!({"from": "0212345678", "to": to, "text": text})),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        request_ids.push(accepted["request_id"].as_str().unwrap().to_owned());
    }
    let first = system
        .wait_for_request(&key, &request_ids[0], Duration::from_secs(60), |summary| {
            is_final(summary, RECIPIENTS as u64)
        })
        .await;
    system
        .wait_for_request(&key, &request_ids[1], Duration::from_secs(60), |summary| {
            is_final(summary, 1)
        })
        .await;
    let delivered = count(&first["by_status"], "delivered");
    let failed = count(&first["by_status"], "failed");
    assert_eq!(failed, count(&first["by_carrier"], "lgu"), "{first}");
    assert_eq!(first["points"]["reserved"], json!(RECIPIENTS));
    assert_eq!(first["points"]["spent"], json!(delivered));
    assert_eq!(first["points"]["refunded"], json!(failed));

    // Newest first, one per page.
    let (status, page) = system
        .call(Method::GET, "/v1/requests?limit=1", &key, None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["items"][0]["id"], json!(request_ids[1]));
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned();
    let (_, page) = system
        .call(
            Method::GET,
            &format!("/v1/requests?limit=1&cursor={cursor}"),
            &key,
            None,
        )
        .await;
    assert_eq!(page["items"][0]["id"], json!(request_ids[0]));
    assert_eq!(page["items"][0]["total"], json!(RECIPIENTS));
    assert_eq!(page["next_cursor"], Value::Null, "{page}");

    // The memo of the contact finds the message sent to its number.
    let (status, found) = system
        .call(Method::GET, "/v1/messages?text=vip", &key, None)
        .await;
    assert_eq!(status, 200, "{found}");
    let items = found["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{found}");
    assert_eq!(items[0]["to"], json!("01077770001"));

    // Statistics, per minute over the last hour, agree with the requests.
    let since = rns_types::time::rfc3339(rns_types::time::now_milliseconds() - 3_600_000);
    let (status, stats) = system
        .call(
            Method::GET,
            &format!("/v1/stats?bucket=minute&since={since}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    let carriers = stats["carriers"].as_array().unwrap();
    let field = |name: &str| -> u64 {
        carriers
            .iter()
            .map(|carrier| carrier[name].as_u64().unwrap())
            .sum()
    };
    assert_eq!(field("first_choice"), RECIPIENTS as u64 + 1, "{stats}");
    assert_eq!(field("delivered"), delivered + 1, "{stats}");
    assert_eq!(field("failed"), failed, "{stats}");
    let kt = carriers
        .iter()
        .find(|carrier| carrier["carrier"] == "kt")
        .expect("kt carried messages");
    assert_eq!(kt["channel"], json!("sms"));
    assert_eq!(kt["success_rate"], json!(1.0));
    assert_eq!(kt["share"]["target"], json!(0.5));
    assert!(kt["latency_ms"]["p50"].as_f64().unwrap() >= 0.0, "{kt}");
    let lgu = carriers
        .iter()
        .find(|carrier| carrier["carrier"] == "lgu")
        .expect("lgu was chosen");
    assert_eq!(lgu["success_rate"], json!(0.0), "{lgu}");
    let bucketed: u64 = stats["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|bucket| bucket["carriers"].as_array().unwrap())
        .map(|carrier| carrier["first_choice"].as_u64().unwrap())
        .sum();
    assert_eq!(bucketed, RECIPIENTS as u64 + 1);

    for path in ["/v1/requests", "/v1/stats", "/v1/messages?text=vip"] {
        let (status, theirs) = system.call(Method::GET, path, &stranger, None).await;
        assert_eq!(status, 200, "{path}: {theirs}");
        let empty = theirs
            .get("items")
            .or_else(|| theirs.get("carriers"))
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty);
        assert!(empty, "{path} shows the stranger nothing: {theirs}");
    }
}
