//! A mobile sender number verified as a customer does it, with the real binaries:
//! the code travels as an ordinary send of the operator's system customer — routed,
//! delivered by a carrier, recorded in ClickHouse with its text withheld, charged to
//! no one — and once entered the number sends.
use std::time::Duration;

use reqwest::Method;
use rns_e2e::{count, System};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_texted_through_the_send_path_verifies_a_mobile_number() {
    let system = System::start().await;
    let key = system.bare_customer("acme").await;
    system.top_up("acme", 10).await;
    let (status, registered) = system
        .call(
            Method::POST,
            "/v1/sender-numbers",
            &key,
            Some(json!({"number": "010-5555-1234"})),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["status"], json!("pending"));

    // The text reached a carrier: its record is delivered, from the system number,
    // and withheld (nobody reads a code back from RNS's records); the handset has it.
    let query = "SELECT text FROM rns.messages WHERE customer_id = 'rns' \
                 AND to_number = '01055551234' AND from_number = '18990000' FORMAT TabSeparated";
    rns_testkit::wait_until(
        "the code's text is recorded",
        Duration::from_secs(30),
        || async { !system.clickhouse.query(query).await.trim().is_empty() },
    )
    .await;
    assert_eq!(
        system.clickhouse.query(query).await.trim(),
        rns_types::wire::WITHHELD_TEXT
    );
    rns_testkit::wait_until(
        "the code's text is delivered",
        Duration::from_secs(30),
        || async {
            let delivered = system
                .clickhouse
                .query(
                    "SELECT count() FROM rns.events WHERE customer_id = 'rns' \
                 AND kind = 'delivered' FORMAT TabSeparated",
                )
                .await;
            delivered.trim() == "1"
        },
    )
    .await;
    let texts = system.texts_to("01055551234").await;
    let [text] = texts.as_slice() else {
        panic!("one text reached the handset: {texts:?}");
    };
    let code = text
        .split(|character: char| !character.is_ascii_digit())
        .find(|word| word.len() == 6)
        .unwrap_or_else(|| panic!("no code in {text:?}"))
        .to_owned();

    let send = json!({"from": "01055551234", "to": ["01012345678"], "text": "안녕하세요"});
    let (status, refused) = system
        .call(Method::POST, "/v1/messages", &key, Some(send.clone()))
        .await;
    assert_eq!(status, 422, "{refused}");
    let (status, verified) = system
        .call(
            Method::POST,
            "/v1/sender-numbers/01055551234/verification",
            &key,
            Some(json!({ "code": code })),
        )
        .await;
    assert_eq!(status, 200, "{verified}");
    let (status, accepted) = system
        .call(Method::POST, "/v1/messages", &key, Some(send))
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
    // The customer paid for its own message only.
    let (_, points) = system.call(Method::GET, "/v1/points", &key, None).await;
    assert_eq!(points["spent"], json!(1), "{points}");
}
