//! Messages from handsets, as the carriers service stores them in `INBOUND`: a text
//! to a sender's opt-out number opts the handset out of that sender and is kept for
//! the customer; one to a number no customer holds is read and set aside.
use std::time::Duration;

use axum::http::{Method, StatusCode};
use rns_nats::{publish_all, Outbound};
use rns_testkit::wait_until;
use rns_types::inbound::{Inbound, InboundMessage};
use rns_types::subjects::{inbound_subject, INBOUND_CONSUMER, INBOUND_STREAM};
use rns_types::CarrierId;
use serde_json::{json, Value};

mod common;
use common::Api;

async fn from_handset(api: &Api, from: &str, to: &str, text: &str) {
    let kt = CarrierId::parse("kt").unwrap();
    let message = InboundMessage::new(
        kt.clone(),
        from.into(),
        to.into(),
        text,
        rns_types::time::now_milliseconds(),
    );
    let outbound = Outbound {
        subject: inbound_subject(&kt),
        message_id: String::new(),
        payload: serde_json::to_vec(&Inbound::MobileOriginated(message))
            .unwrap()
            .into(),
    };
    publish_all(api.jetstream(), [outbound], 1).await.unwrap();
}

/// The opt-out number of the customer's (first) sender number.
async fn opt_out_number(api: &Api, key: &str) -> String {
    let (_, numbers) = api
        .call(Method::GET, "/v1/sender-numbers", Some(key), None)
        .await;
    numbers["items"][0]["opt_out_number"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the gateway has read and acknowledged everything in `INBOUND`.
async fn all_read(api: &Api) {
    wait_until("INBOUND read", Duration::from_secs(20), || async {
        let mut consumer: async_nats::jetstream::consumer::PullConsumer = api
            .jetstream()
            .get_consumer_from_stream(INBOUND_CONSUMER, INBOUND_STREAM)
            .await
            .unwrap();
        let info = consumer.info().await.unwrap();
        info.num_pending == 0 && info.num_ack_pending == 0
    })
    .await;
}

#[tokio::test]
async fn a_text_to_an_opt_out_number_opts_the_handset_out_and_is_kept_for_the_customer() {
    let api = Api::start().await;
    let acme = api.customer("acme").await;
    let line = opt_out_number(&api, &acme).await;
    from_handset(&api, "010-5555-0001", &line, "수신거부").await;
    from_handset(&api, "01055550002", "0299999999", "누구세요?").await;
    all_read(&api).await;

    let (status, opt_outs) = api
        .call(
            Method::GET,
            "/v1/opt-outs?sender_number=0212345678",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{opt_outs}");
    let recipients: Vec<&Value> = opt_outs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item["recipient"])
        .collect();
    assert_eq!(recipients, [&json!("01055550001")], "{opt_outs}");

    // The opted-out recipient is blocked from that sender from now on.
    let (status, accepted) = api
        .call(
            Method::POST,
            "/v1/messages",
            Some(&acme),
            Some(json!({"from": "0212345678", "to": ["01055550001"], "text": "광고 아님"})),
        )
        .await;
    assert!(status.is_success(), "{accepted}");
    assert_eq!(accepted["blocked"], json!(["01055550001"]), "{accepted}");

    let (status, inbound) = api
        .call(Method::GET, "/v1/inbound-messages", Some(&acme), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{inbound}");
    assert_eq!(
        inbound["items"],
        json!([{"carrier": "kt", "from": "010-5555-0001", "to": line, "text": "수신거부",
                "received_at_ms": inbound["items"][0]["received_at_ms"],
                "opted_out_of": "0212345678"}]),
        "only its own, not the one to a number no customer holds: {inbound}"
    );
}

#[tokio::test]
async fn inbound_messages_page_newest_first_without_gaps_or_repeats() {
    let api = Api::start().await;
    let acme = api.customer("acme").await;
    let line = opt_out_number(&api, &acme).await;
    for index in 0..5 {
        from_handset(
            &api,
            &format!("0105555000{index}"),
            &line,
            &format!("거부 {index}"),
        )
        .await;
    }
    all_read(&api).await;
    let mut texts = Vec::new();
    let mut uri = "/v1/inbound-messages?limit=2".to_owned();
    for _ in 0..5 {
        let (status, page) = api.call(Method::GET, &uri, Some(&acme), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        texts.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item["text"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/inbound-messages?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut sorted = texts.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "{texts:?}");
    assert_eq!(
        texts.first().map(String::as_str),
        Some("거부 4"),
        "newest first: {texts:?}"
    );

    for bad in ["cursor=abc", "limit=0", "since=yesterday"] {
        let (status, body) = api
            .call(
                Method::GET,
                &format!("/v1/inbound-messages?{bad}"),
                Some(&acme),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
}
