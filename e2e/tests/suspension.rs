//! A suspended customer with the real binaries: its send is refused (403), and the
//! send it had scheduled is cancelled when it comes due — every message `failed`
//! with the reason, every point back — rather than delivered; resumed, it sends.
use std::time::Duration;

use reqwest::Method;
use rns_e2e::{count, System, ADMIN_KEY};
use serde_json::{json, Value};

async fn points(system: &System, key: &str) -> Value {
    system.call(Method::GET, "/v1/points", key, None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_customers_scheduled_send_is_cancelled_and_refunded() {
    let system = System::start().await;
    let key = system.customer_with_points("acme", 10).await;
    let at = (rns_types::time::now_milliseconds() / 1_000 + 3) * 1_000;
    let (status, scheduled) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"from": "0212345678", "to": ["01012340001", "01012340002"], "text": "예약", "scheduled_at": rns_types::time::rfc3339(at)})),
        )
        .await;
    assert_eq!(status, 202, "{scheduled}");
    assert_eq!(points(&system, &key).await["reserved"], 2);

    let (status, reply) = system
        .call(
            Method::PUT,
            "/v1/admin/customers/acme/suspension",
            ADMIN_KEY,
            Some(json!({"reason": "spam complaints"})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let now = json!({"from": "0212345678", "to": ["01012340003"], "text": "지금"});
    let (status, reply) = system
        .call(Method::POST, "/v1/messages", &key, Some(now.clone()))
        .await;
    assert_eq!(status, 403, "{reply}");
    assert_eq!(reply["error"]["code"], json!("customer_suspended"));

    // Due while suspended: cancelled, each message failed with the reason.
    let request = scheduled["request_id"].as_str().unwrap();
    let summary = system
        .wait_for_request(&key, request, Duration::from_secs(30), |summary| {
            count(&summary["by_status"], "failed") == 2
        })
        .await;
    assert_eq!(summary["by_status"], json!({"failed": 2}), "{summary}");
    let (_, message) = system
        .message(&key, scheduled["message_ids"][0].as_str().unwrap())
        .await;
    assert!(
        message.to_string().contains("the customer is suspended"),
        "{message}"
    );
    assert!(
        system.simulator_delivered("kt").await.is_empty()
            && system.simulator_delivered("skt").await.is_empty()
            && system.simulator_delivered("lgu").await.is_empty(),
        "nothing reached a carrier"
    );
    rns_testkit::wait_until("the points come back", Duration::from_secs(20), || async {
        let account = points(&system, &key).await;
        account["balance"] == json!(10) && account["reserved"] == json!(0)
    })
    .await;

    let (status, _) = system
        .call(
            Method::DELETE,
            "/v1/admin/customers/acme/suspension",
            ADMIN_KEY,
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, accepted) = system
        .call(Method::POST, "/v1/messages", &key, Some(now))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let summary = system
        .wait_for_request(
            &key,
            accepted["request_id"].as_str().unwrap(),
            Duration::from_secs(30),
            |summary| count(&summary["by_status"], "delivered") == 1,
        )
        .await;
    assert_eq!(summary["by_status"], json!({"delivered": 1}), "{summary}");
}
