//! Points through the API: top-ups, balance, ledger, and 402 before anything is sent.
mod common;

use axum::http::{Method, StatusCode};
use common::{error_code, Api, ADMIN_KEY};
use serde_json::{json, Value};

#[tokio::test]
async fn a_send_reserves_its_price_and_a_short_balance_is_a_402_that_sends_nothing() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (_, account) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    let start = account["balance"].as_i64().unwrap();

    // Two SMS (1 point each) and one LMS to two recipients (3 each).
    let long_text = "가".repeat(50);
    for (text, recipients) in [("hi", 2), (long_text.as_str(), 2)] {
        let to: Vec<String> = (0..recipients)
            .map(|index| format!("0101111000{index}"))
            .collect();
        let (status, body) = api
            .call(
                Method::POST,
                "/v1/messages",
                Some(&key),
                Some(json!({"from": "0212345678", "to": to, "text": text})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (_, account) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    assert_eq!(account["reserved"], 2 + 6);
    assert_eq!(account["balance"].as_i64().unwrap(), start - 8);

    let (status, ledger) = api
        .call(Method::GET, "/v1/points/ledger?limit=2", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ledger["items"][0]["kind"], "reserve");
    assert_eq!(ledger["items"][0]["amount"], 6);
    assert!(ledger["items"][0]["requests"][0]["request_id"].is_string());
    assert_eq!(ledger["items"][0]["requests"][0]["amount"], 6);
    assert_eq!(ledger["items"][1]["amount"], 2);
    let cursor = ledger["next_cursor"].as_str().unwrap();
    let (_, older) = api
        .call(
            Method::GET,
            &format!("/v1/points/ledger?limit=2&cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(older["items"][0]["kind"], "top_up");
    assert_eq!(older["items"].as_array().unwrap().len(), 1);
    assert!(older["next_cursor"].is_null());

    // Filtered by kind and by request; unknown parameters and kinds are refused.
    let (status, reserves) = api
        .call(
            Method::GET,
            "/v1/points/ledger?kind=reserve",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reserves}");
    let kinds: Vec<&Value> = reserves["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| &entry["kind"])
        .collect();
    assert_eq!(kinds, [&json!("reserve"), &json!("reserve")]);
    let request = reserves["items"][1]["requests"][0]["request_id"]
        .as_str()
        .unwrap();
    let (_, of_request) = api
        .call(
            Method::GET,
            &format!("/v1/points/ledger?request_id={request}"),
            Some(&key),
            None,
        )
        .await;
    let items = of_request["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{of_request}");
    assert_eq!(items[0]["amount"], 2);
    for query in ["kind=refund&foo=bar", "kind=gift", "request_id=nope"] {
        let (status, reply) = api
            .call(
                Method::GET,
                &format!("/v1/points/ledger?{query}"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {reply}");
    }

    // A poor customer: 2 points cannot pay for 3 recipients.
    let poor = api.customer_with_points("poor", 5).await;
    let balance = 2;
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/messages",
            Some(&poor),
            Some(json!({"from": rns_testkit::sender_for("poor"), "to": ["01011110000"], "text": "x".repeat(100)})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let sends_before = api.queued_sends().await.len();
    let too_many: Vec<String> = (0..balance)
        .map(|index| format!("010222{index:05}"))
        .collect();
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/messages",
            Some(&poor),
            Some(json!({"from": rns_testkit::sender_for("poor"), "to": too_many, "text": "x".repeat(100)})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(error_code(&body), "insufficient_points");
    assert!(body["error"]["message"].as_str().unwrap().contains("needs"));
    assert_eq!(
        api.queued_sends().await.len(),
        sends_before,
        "nothing published"
    );
    let (_, account) = api.call(Method::GET, "/v1/points", Some(&poor), None).await;
    assert_eq!(account["reserved"], 3, "the 402 reserved nothing");
}

#[tokio::test]
async fn top_ups_are_for_the_operator_with_valid_amounts_and_known_customers() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let body = json!({"amount": 10});
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/admin/customers/acme/points",
            Some(&key),
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a customer key is not the admin key"
    );
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/admin/customers/ghost/points",
            Some(ADMIN_KEY),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for bad in [
        json!({"amount": 0}),
        json!({"amount": -5}),
        json!({"amount": "ten"}),
        json!({}),
    ] {
        let (status, response) = api
            .call(
                Method::POST,
                "/v1/admin/customers/acme/points",
                Some(ADMIN_KEY),
                Some(bad.clone()),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad} → {response}"
        );
    }
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/points/ledger?cursor=nope",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api.call(Method::GET, "/v1/points", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_past_the_balance_get_a_402_each_and_the_rest_are_sent() {
    let api = Api::start().await;
    // 30 points: 40 concurrent SMS of two recipients (2 points each), whose
    // reservations are gathered into shared Redis calls.
    let key = api.customer_with_points("lean", 30).await;
    let sends = (0..40).map(|index| {
        let api = &api;
        let key = key.clone();
        async move {
            let to = [format!("010{index:08}"), format!("011{index:08}")];
            api.call(
                Method::POST,
                "/v1/messages",
                Some(&key),
                Some(json!({"from": "0212345678", "to": to, "text": "hi"})),
            )
            .await
        }
    });
    let answers = futures::future::join_all(sends).await;
    let accepted = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::ACCEPTED)
        .count();
    for (status, body) in &answers {
        if *status != StatusCode::ACCEPTED {
            assert_eq!(*status, StatusCode::PAYMENT_REQUIRED, "{body}");
            assert_eq!(error_code(body), "insufficient_points");
        }
    }
    assert_eq!(accepted, 15, "30 points cover 15 sends of 2");
    assert_eq!(api.queued_sends().await.len(), 15);
    let (_, account) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    assert_eq!(account["balance"], 0);
    assert_eq!(account["reserved"], 30);
}

#[tokio::test]
async fn a_keyed_send_that_failed_in_an_outage_is_retried_under_its_claim_and_reservation() {
    let mut api = Api::start().await;
    let key = api.customer_with_points("acme", 10).await;
    let body = json!({"from": "0212345678", "to": ["01011112222", "01033334444"], "text": "hi"})
        .to_string();
    // JetStream is down: the publish fails, but it might have been stored.
    api.nats().kill();
    let (status, _, reply) = keyed_send(&api, &key, &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    api.nats().start_again().await;
    let mut accepted = None;
    for _ in 0..50 {
        let (status, _, reply) = keyed_send(&api, &key, &body).await;
        if status == StatusCode::ACCEPTED {
            accepted = Some(reply);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let accepted = accepted.expect("the retry was accepted once JetStream was back");
    // One request, reserved once: the retry found the reservation the outage left.
    let queued = api.queued_sends().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(
        queued[0].request_id.to_string(),
        accepted["request_id"].as_str().unwrap()
    );
    let (_, account) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    assert_eq!(
        (account["balance"].as_i64(), account["reserved"].as_i64()),
        (Some(8), Some(2))
    );
    // Reserved once, never returned and taken again under another id.
    let (_, ledger) = api
        .call(Method::GET, "/v1/points/ledger", Some(&key), None)
        .await;
    let kinds: Vec<&str> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["reserve", "top_up"], "{ledger}");
}

async fn keyed_send(
    api: &Api,
    key: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    api.call_with_headers(
        Method::POST,
        "/v1/messages",
        Some(key),
        &[("idempotency-key", "order-7")],
        Some(body.to_owned()),
    )
    .await
}

/// What the customer's account in Redis says is reserved.
async fn reserved_in_redis(api: &Api, customer: &str) -> i64 {
    let client = redis::Client::open(api.redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let reserved: Option<i64> = redis::cmd("HGET")
        .arg(format!("rns:points:{customer}"))
        .arg("reserved")
        .query_async(&mut connection)
        .await
        .unwrap();
    reserved.unwrap_or(0)
}

/// Drives `send` (which JetStream, frozen, does not answer) until `ready` holds.
async fn unanswered_until<Call, Ready, Holds>(
    send: &mut std::pin::Pin<Box<Call>>,
    what: &str,
    ready: Ready,
) where
    Call: std::future::Future<Output = (StatusCode, Value)>,
    Ready: FnMut() -> Holds,
    Holds: std::future::Future<Output = bool>,
{
    tokio::select! {
        answer = send => panic!("a send was answered while JetStream was frozen: {answer:?}"),
        _ = rns_testkit::wait_until(what, std::time::Duration::from_secs(30), ready) => {}
    }
}

#[tokio::test]
async fn a_caller_that_hangs_up_mid_send_leaves_no_points_reserved_for_a_send_never_published() {
    let mut api = Api::start().await;
    let key = api.customer_with_points("acme", 10).await;
    let body = json!({"from": "0212345678", "to": ["01011112222", "01033334444"], "text": "hi"});
    // JetStream stops answering: the send reserves its points, then waits for its publish.
    api.nats().freeze();
    let mut send = Box::pin(api.call(Method::POST, "/v1/messages", Some(&key), Some(body)));
    unanswered_until(&mut send, "the send's reservation", || async {
        reserved_in_redis(&api, "acme").await == 2
    })
    .await;
    // The caller hangs up (hyper then drops the handler's future, as here), and the
    // server dies with the publish unread: the send was never stored.
    drop(send);
    api.nats().kill();
    // Its points come back all the same, once the gateway stops publishing it again
    // (`UNANSWERED_RETRY_FOR`).
    rns_testkit::wait_until(
        "the unpublished send's points returned",
        std::time::Duration::from_secs(60),
        || async { reserved_in_redis(&api, "acme").await == 0 },
    )
    .await;
    api.nats().start_again().await;
    let (_, account) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    assert_eq!(
        (account["balance"].as_i64(), account["reserved"].as_i64()),
        (Some(10), Some(0)),
        "{account}"
    );
    let (_, ledger) = api
        .call(Method::GET, "/v1/points/ledger", Some(&key), None)
        .await;
    assert_eq!(ledger["items"][0]["kind"], "release", "{ledger}");
    assert_eq!(ledger["items"][1]["kind"], "reserve", "{ledger}");
    assert!(api.queued_sends().await.is_empty(), "nothing was stored");
    assert_eq!(
        unpublished_in_redis(&api).await,
        0,
        "released, so not listed"
    );
}

/// How many reservations Redis lists as awaiting their publish.
async fn unpublished_in_redis(api: &Api) -> i64 {
    let client = redis::Client::open(api.redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("ZCARD")
        .arg(rns_points::store::UNPUBLISHED_KEY)
        .query_async(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_published_send_is_confirmed_so_its_reservation_is_never_taken_for_an_orphan() {
    let api = Api::start().await;
    let key = api.customer_with_points("acme", 10).await;
    let body = json!({"from": "0212345678", "to": ["01011112222"], "text": "hi"});
    let (status, _) = api
        .call(Method::POST, "/v1/messages", Some(&key), Some(body))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    rns_testkit::wait_until(
        "the published send's reservation confirmed",
        std::time::Duration::from_secs(10),
        || async { unpublished_in_redis(&api).await == 0 },
    )
    .await;
    // What releases orphans finds nothing to take from it.
    let store = rns_points::PointsStore::connect(&api.redis_url())
        .await
        .unwrap();
    let released = store
        .release_unpublished(std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    assert!(released.is_empty(), "{released:?}");
    assert_eq!(reserved_in_redis(&api, "acme").await, 1);
}

/// SEND publishes this process's gateway published again for want of an answer.
fn unanswered_publishes() -> u64 {
    rns_service::metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix("rns_gateway_publishes_unanswered_total "))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn a_send_whose_publish_goes_unanswered_is_published_again_and_accepted_once() {
    let api = Api::start().await;
    rns_service::metrics::handle();
    let key = api.customer_with_points("acme", 10).await;
    let body = json!({"from": "0212345678", "to": ["01011112222", "01033334444"], "text": "hi"});
    // JetStream takes the publish but does not answer before the acknowledgement's
    // time runs out; the server may have stored it.
    api.frozen_nats().freeze();
    let mut send = Box::pin(api.call(Method::POST, "/v1/messages", Some(&key), Some(body)));
    unanswered_until(&mut send, "the publish unanswered, tried again", || async {
        unanswered_publishes() >= 1
    })
    .await;
    api.frozen_nats().thaw();
    // It had: the first publish is stored, the repeats under its id are duplicates,
    // and the send is accepted, paid once.
    let (status, reply) = send.await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let queued = api.queued_sends().await;
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(
        queued[0].request_id.to_string(),
        reply["request_id"].as_str().unwrap()
    );
    assert_eq!(reserved_in_redis(&api, "acme").await, 2);
}
