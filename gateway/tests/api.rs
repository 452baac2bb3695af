//! The gateway's API against a real nats-server, driven with `oneshot` requests:
//! authentication, validation of every input, and isolation between customers.
mod common;

use axum::http::{Method, StatusCode};
use common::{error_code, Api, ADMIN_KEY};
use serde_json::{json, Value};
#[tokio::test]
async fn admin_routes_require_the_admin_key() {
    let api = Api::start().await;
    let body = json!({"id": "acme", "name": "Acme"});
    let (status, reply) = api
        .call(
            Method::POST,
            "/v1/admin/customers",
            None,
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&reply), "unauthorized");
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/admin/customers",
            Some("wrong"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let customer_key = api.customer("other").await;
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/admin/customers",
            Some(&customer_key),
            Some(body),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a customer key must not be an admin key"
    );
}

#[tokio::test]
async fn customers_are_validated_unique_and_get_a_working_key() {
    let api = Api::start().await;
    for bad_id in ["Acme", "a.b", "a>b", "a b", ""] {
        let (status, reply) = api
            .call(
                Method::POST,
                "/v1/admin/customers",
                Some(ADMIN_KEY),
                Some(json!({"id": bad_id, "name": "x"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad_id:?}");
        assert_eq!(error_code(&reply), "invalid_customer_id");
    }
    let key = api.customer("acme").await;
    assert!(
        key.starts_with("rns_") && key.len() == 61 && rns_types::api_key::key_id(&key).is_some(),
        "{key}"
    );
    let (status, reply) = api
        .call(
            Method::POST,
            "/v1/admin/customers",
            Some(ADMIN_KEY),
            Some(json!({"id": "acme", "name": "again"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&reply), "conflict");

    let (status, _) = api.call(Method::GET, "/v1/routing", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(Method::GET, "/v1/routing", Some("rns_unknown"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = api.call(Method::GET, "/v1/routing", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn routing_weights_are_validated_against_the_channel_carriers() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (status, reply) = api.call(Method::GET, "/v1/routing", Some(&key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["sms"]["default"], json!(true));
    assert_eq!(
        reply["sms"]["weights"],
        json!({"kt": 1, "lgu": 1, "skt": 1})
    );

    let weights = json!({"weights": {"kt": 50, "skt": 30, "lgu": 20}});
    let (status, reply) = api
        .call(Method::PUT, "/v1/routing/sms", Some(&key), Some(weights))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, reply) = api.call(Method::GET, "/v1/routing", Some(&key), None).await;
    assert_eq!(
        reply["sms"]["weights"],
        json!({"kt": 50, "lgu": 20, "skt": 30})
    );
    assert_eq!(reply["sms"]["default"], json!(false));

    for (body, code) in [
        (json!({"weights": {"ke": 1}}), "invalid_weights"),
        (json!({"weights": {"nope": 1}}), "invalid_weights"),
        (json!({"weights": {"kt": 0, "skt": 0}}), "invalid_weights"),
        (json!({"weights": {}}), "invalid_weights"),
        (json!({"weights": {"kt": -1}}), "invalid_body"),
        (json!({"weights": {"kt": 1.5}}), "invalid_body"),
        (
            json!({"weights": {"kt": 9000, "skt": 9000}}),
            "invalid_weights",
        ),
        (json!({"wieghts": {"kt": 1}}), "invalid_body"),
    ] {
        let (status, reply) = api
            .call(
                Method::PUT,
                "/v1/routing/sms",
                Some(&key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(&reply), code, "{body}");
    }
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/routing/alimtalk",
            Some(&key),
            Some(json!({"weights": {"ke": 1, "cns": 3}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/routing/fax",
            Some(&key),
            Some(json!({"weights": {"kt": 1}})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, reply) = api
        .call_raw(
            Method::PUT,
            "/v1/routing/sms",
            Some(&key),
            Some("{not json".into()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&reply), "malformed_body");
    // A refused change leaves the stored weights alone.
    let (_, reply) = api.call(Method::GET, "/v1/routing", Some(&key), None).await;
    assert_eq!(
        reply["sms"]["weights"],
        json!({"kt": 50, "lgu": 20, "skt": 30})
    );
}

/// `limit` and `cursor` page sender numbers like every other list, in number order,
/// and an unknown parameter is refused.
#[tokio::test]
async fn sender_numbers_are_listed_a_page_at_a_time() {
    let api = Api::start().await;
    let acme = api.customer("acme").await;
    for number in ["15880000", "0311112222", "0513334444"] {
        let (status, _) = api
            .call(
                Method::POST,
                "/v1/sender-numbers",
                Some(&acme),
                Some(json!({"number": number})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/sender-numbers?limit=1".to_owned();
    loop {
        let (status, reply) = api.call(Method::GET, &uri, Some(&acme), None).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        let items = reply["items"].as_array().unwrap();
        assert!(items.len() <= 1, "{reply}");
        seen.extend(
            items
                .iter()
                .map(|item| item["number"].as_str().unwrap().to_owned()),
        );
        match reply["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/sender-numbers?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["0212345678", "0311112222", "0513334444", "15880000"]);
    for query in ["limit=0", "cursor=nonsense", "foo=bar"] {
        let (status, reply) = api
            .call(
                Method::GET,
                &format!("/v1/sender-numbers?{query}"),
                Some(&acme),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {reply}");
    }
}

#[tokio::test]
async fn sender_numbers_are_normalised_and_owned_by_one_customer() {
    let api = Api::start().await;
    let acme = api.customer("acme").await;
    let rival = api.customer("rival").await;
    let (status, reply) = api
        .call(
            Method::POST,
            "/v1/sender-numbers",
            Some(&acme),
            Some(json!({"number": "1588-0000"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(reply["number"], json!("15880000"));
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/sender-numbers",
            Some(&acme),
            Some(json!({"number": "15880000"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, reply) = api
        .call(
            Method::POST,
            "/v1/sender-numbers",
            Some(&acme),
            Some(json!({"number": "call me"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&reply), "invalid_number");

    let (_, reply) = api
        .call(Method::GET, "/v1/sender-numbers", Some(&acme), None)
        .await;
    let numbers: Vec<&Value> = reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| &item["number"])
        .collect();
    assert_eq!(numbers, [&json!("0212345678"), &json!("15880000")]);
    let lines: Vec<&str> = reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["opt_out_number"].as_str().unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .all(|line| line.starts_with("080") && line.len() == 10),
        "{lines:?}"
    );
    assert_ne!(
        lines[0], lines[1],
        "each sender number has its own opt-out number"
    );
    // The rival has its own number (acme verified 02-1234-5678) and its own line.
    let (_, reply) = api
        .call(Method::GET, "/v1/sender-numbers", Some(&rival), None)
        .await;
    assert_eq!(reply["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        reply["items"][0]["number"].as_str().unwrap(),
        rns_testkit::sender_for("rival")
    );
    assert!(!lines.contains(&reply["items"][0]["opt_out_number"].as_str().unwrap()));

    // The rival cannot delete acme's number: 404, and acme still has it.
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/sender-numbers/15880000",
            Some(&rival),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, reply) = api
        .call(Method::GET, "/v1/sender-numbers", Some(&acme), None)
        .await;
    assert_eq!(reply["items"].as_array().unwrap().len(), 2);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/sender-numbers/1588-0000",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/sender-numbers/15880000",
            Some(&acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_valid_send_is_durable_in_jetstream_before_the_202() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let body = json!({"from": "02-1234-5678", "to": ["010-1111-2222", "01033334444", "+82 10 1111 2222"], "text": "인증번호 123456"});
    let (status, reply) = api
        .call(Method::POST, "/v1/messages", Some(&key), Some(body))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let request_id = reply["request_id"].as_str().unwrap();
    assert_eq!(reply["type"], json!("sms"));
    assert_eq!(
        reply["message_ids"],
        json!([format!("{request_id}-0"), format!("{request_id}-1")])
    );

    let sends = api.queued_sends().await;
    assert_eq!(sends.len(), 1);
    let send = &sends[0];
    assert_eq!(send.request_id.to_string(), request_id);
    assert_eq!(send.customer_id.as_str(), "acme");
    let recipients: Vec<&str> = send
        .recipients
        .iter()
        .map(|recipient| recipient.to.as_str())
        .collect();
    assert_eq!(recipients, ["01011112222", "01033334444"]);
    assert_eq!(send.from.as_str(), "0212345678");

    let long = json!({"from": "0212345678", "to": ["01011112222"], "text": "가".repeat(100)});
    let (status, reply) = api
        .call(Method::POST, "/v1/messages", Some(&key), Some(long))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(reply["type"], json!("lms"));
}

#[tokio::test]
async fn bad_sends_are_refused_and_publish_nothing() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let other = api.customer("other").await;
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/sender-numbers",
            Some(&other),
            Some(json!({"number": "0311234567"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let valid = json!({"from": "0212345678", "to": ["01011112222"], "text": "hello"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let cases = [
        (
            with("from", json!("0311234567")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_sender_number",
        ),
        (
            with("from", json!("not a number")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_sender",
        ),
        (
            with("to", json!([])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_recipients",
        ),
        (
            with("to", json!(["01011112222", "0212345678"])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_recipient",
        ),
        (
            with("to", json!(vec!["01011112222"; 101])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_recipients",
        ),
        (
            with("to", json!("01011112222")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            with("text", json!("")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
        ),
        (
            with("text", json!("가".repeat(1_001))),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
        ),
        (
            with("text", json!("emoji 😀")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_text",
        ),
        (
            with("unexpected", json!(1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            json!({"to": ["01011112222"], "text": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, expected_status, expected_code) in cases {
        let (status, reply) = api
            .call(Method::POST, "/v1/messages", Some(&key), Some(body.clone()))
            .await;
        assert_eq!(status, expected_status, "{body}: {reply}");
        assert_eq!(error_code(&reply), expected_code, "{body}");
        assert!(reply["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()));
    }
    let oversized = format!(
        r#"{{"from":"0212345678","to":["01011112222"],"text":"{}"}}"#,
        "a".repeat(2 << 20)
    );
    let (status, reply) = api
        .call_raw(Method::POST, "/v1/messages", Some(&key), Some(oversized))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&reply), "payload_too_large");
    let (status, _) = api
        .call(Method::POST, "/v1/messages", None, Some(valid))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert!(
        api.queued_sends().await.is_empty(),
        "a refused send was published"
    );
}

#[tokio::test]
async fn unknown_routes_and_ids_answer_json_404() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (status, reply) = api.call(Method::GET, "/v1/nothing", Some(&key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&reply), "not_found");
    for uri in ["/v1/messages/garbage", "/v1/requests/garbage"] {
        let (status, reply) = api.call(Method::GET, uri, Some(&key), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(error_code(&reply), "not_found");
    }
    // A route that exists, asked with a method it does not take: the same shape.
    for (method, uri) in [
        (Method::DELETE, "/v1/admin/customers"),
        (Method::DELETE, "/v1/messages"),
        (Method::POST, "/v1/points/ledger"),
    ] {
        let (status, reply) = api.call(method.clone(), uri, Some(&key), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert_eq!(error_code(&reply), "method_not_allowed", "{method} {uri}");
    }
}

#[tokio::test]
async fn a_failover_order_is_validated_and_defaults_to_descending_weight() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let body = json!({"weights": {"kt": 20, "skt": 50, "lgu": 30}});
    let (status, reply) = api
        .call(Method::PUT, "/v1/routing/sms", Some(&key), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["failover"], json!(["skt", "lgu", "kt"]));
    let body = json!({"weights": {"kt": 1}, "failover": ["lgu", "kt"]});
    let (status, reply) = api
        .call(Method::PUT, "/v1/routing/sms", Some(&key), Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, reply) = api.call(Method::GET, "/v1/routing", Some(&key), None).await;
    assert_eq!(reply["sms"]["failover"], json!(["lgu", "kt"]));
    for failover in [json!(["kt", "kt"]), json!(["ke"]), json!(["nope"])] {
        let body = json!({"weights": {"kt": 1}, "failover": failover});
        let (status, reply) = api
            .call(
                Method::PUT,
                "/v1/routing/sms",
                Some(&key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(error_code(&reply), "invalid_failover");
    }
}

#[tokio::test]
async fn carrier_states_are_for_the_operator_and_customers_that_may_read() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (status, reply) = api
        .call(Method::GET, "/v1/carriers", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["items"].as_array().unwrap().len(), 5);
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/carriers",
            Some("rns_00000000_nonsense"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, reply) = api
        .call(Method::GET, "/v1/carriers", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let items = reply["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(items[0]["id"], json!("kt"));
    assert_eq!(items[0]["circuit"], json!("closed"));
    assert_eq!(items[0]["rate_per_second"], Value::Null);
}

#[tokio::test]
async fn the_operator_sets_and_clears_a_carriers_rate_and_bad_rates_are_refused() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let rate = |value: Value| Some(json!({ "per_second": value }));
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/admin/carriers/kt/rate",
            Some(&key),
            rate(json!(20)),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a customer set a carrier's rate"
    );
    for (path, body, expected, code) in [
        (
            "/v1/admin/carriers/nowhere/rate",
            rate(json!(20)),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "/v1/admin/carriers/kt/rate",
            rate(json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rate",
        ),
        (
            "/v1/admin/carriers/kt/rate",
            rate(json!(100_001)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_rate",
        ),
        (
            "/v1/admin/carriers/kt/rate",
            rate(json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/v1/admin/carriers/kt/rate",
            Some(json!({"rate": 5})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        // Regression: an empty body cleared the rate as `null` does.
        (
            "/v1/admin/carriers/kt/rate",
            Some(json!({})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ] {
        let (status, reply) = api.call(Method::PUT, path, Some(ADMIN_KEY), body).await;
        assert_eq!(status, expected, "{path}: {reply}");
        assert_eq!(error_code(&reply), code, "{reply}");
    }
    let (status, reply) = api
        .call(
            Method::PUT,
            "/v1/admin/carriers/kt/rate",
            Some(ADMIN_KEY),
            rate(json!(20)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, json!({"id": "kt", "rate_per_second": 20}));
    let (_, carriers) = api
        .call(Method::GET, "/v1/carriers", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(
        carriers["items"][0]["rate_per_second"],
        json!(20),
        "{carriers}"
    );
    assert_eq!(
        carriers["items"][1]["rate_per_second"],
        Value::Null,
        "{carriers}"
    );
    let (status, reply) = api
        .call(
            Method::PUT,
            "/v1/admin/carriers/kt/rate",
            Some(ADMIN_KEY),
            rate(Value::Null),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (_, carriers) = api
        .call(Method::GET, "/v1/carriers", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(
        carriers["items"][0]["rate_per_second"],
        Value::Null,
        "{carriers}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_send_messages_and_keyed_sends_travel_alone() {
    let api = Api::start().await;
    let acme = api.customer("acme").await;
    let beta = api.customer("beta").await;
    // beta sends from its own number: acme verified 02-1234-5678.
    let beta_sender = rns_testkit::sender_for("beta");
    let send = |api_key: String, to: String, idempotency: Option<String>| {
        let api = &api;
        let from = if api_key == beta {
            beta_sender.clone()
        } else {
            "0212345678".to_owned()
        };
        async move {
            let body = json!({"from": from, "to": [to], "text": "hi"}).to_string();
            let headers: Vec<(&str, &str)> = idempotency
                .as_deref()
                .map(|key| vec![("idempotency-key", key)])
                .unwrap_or_default();
            let (status, _, reply) = api
                .call_with_headers(
                    Method::POST,
                    "/v1/messages",
                    Some(&api_key),
                    &headers,
                    Some(body),
                )
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
            (
                reply["request_id"].as_str().unwrap().to_owned(),
                idempotency.is_some(),
            )
        }
    };
    let mut calls = Vec::new();
    for index in 0..150 {
        let (key, idempotency) = match index % 10 {
            0 => (&acme, Some(format!("order-{index}"))),
            1 | 2 => (&beta, None),
            _ => (&acme, None),
        };
        calls.push(send(key.clone(), format!("010{index:08}"), idempotency));
    }
    let accepted = futures::future::join_all(calls).await;
    let messages = api.queued_send_messages().await;
    // Every accepted request is held by exactly one message of its own customer.
    let mut held = std::collections::HashMap::new();
    for (id, requests) in &messages {
        let customer = &requests[0].customer_id;
        for request in requests {
            assert_eq!(&request.customer_id, customer, "{id} mixes customers");
            assert!(held
                .insert(request.request_id.to_string(), id.clone())
                .is_none());
        }
        let expected = if requests.len() == 1 {
            rns_types::subjects::message_ids::send(&requests[0].request_id)
        } else {
            rns_types::subjects::message_ids::gathered_sends(&requests[0].request_id)
        };
        assert_eq!(id, &expected);
    }
    assert_eq!(held.len(), accepted.len());
    for (request, keyed) in &accepted {
        let id = &held[request];
        if *keyed {
            // Retried under the same request id, it must be de-duplicated alone.
            assert_eq!(id, &format!("send:{request}"));
        }
    }
    assert!(
        messages.len() < accepted.len() * 2 / 3,
        "{} messages for {} concurrent sends",
        messages.len(),
        accepted.len()
    );
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_answer_and_sends_once() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let rival = api.customer("rival").await;
    let body = json!({"from": "0212345678", "to": ["01011112222", "01033334444"], "text": "once"});
    let send = |api_key: &str, idempotency: &str, body: &Value| {
        let api_key = api_key.to_owned();
        let idempotency = idempotency.to_owned();
        let body = body.to_string();
        let api = &api;
        async move {
            api.call_with_headers(
                Method::POST,
                "/v1/messages",
                Some(&api_key),
                &[("idempotency-key", idempotency.as_str())],
                Some(body),
            )
            .await
        }
    };
    let (status, headers, first) = send(&key, "order-1001", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, headers, again) = send(&key, "order-1001", &body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again, first);
    assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(
        api.queued_sends().await.len(),
        1,
        "a repeated key sent again"
    );

    let other_body = json!({"from": "0212345678", "to": ["01011112222"], "text": "different"});
    let (status, _, reply) = send(&key, "order-1001", &other_body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&reply), "idempotency_key_reused");

    // Keys belong to one customer: the same key elsewhere is a new request.
    let rival_body = json!({"from": rns_testkit::sender_for("rival"), "to": ["01011112222", "01033334444"], "text": "once"});
    let (status, _, theirs) = send(&rival, "order-1001", &rival_body).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_ne!(theirs["request_id"], first["request_id"]);
    assert_eq!(api.queued_sends().await.len(), 2);

    for bad in ["", &"k".repeat(256), "has space"] {
        let (status, _, reply) = send(&key, bad, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert_eq!(error_code(&reply), "invalid_idempotency_key");
    }
}

/// The operator lists every customer a page at a time, in id order, never with a key.
#[tokio::test]
async fn the_operator_lists_customers_a_page_at_a_time() {
    let api = Api::start().await;
    for id in ["gamma", "acme", "beta"] {
        api.customer(id).await;
    }
    let mut seen = Vec::new();
    let mut uri = "/v1/admin/customers?limit=2".to_owned();
    loop {
        let (status, reply) = api.call(Method::GET, &uri, Some(ADMIN_KEY), None).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        for item in reply["items"].as_array().unwrap() {
            assert!(item.get("api_key").is_none(), "{item}");
            assert!(item["created_at"].is_string(), "{item}");
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match reply["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/v1/admin/customers?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    // With the operator's own customer, which carries verification codes.
    assert_eq!(seen, ["acme", "beta", "gamma", "rns"]);
    let key = api.customer("delta").await;
    let (status, _) = api
        .call(Method::GET, "/v1/admin/customers", Some(&key), None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a customer's key is no operator's"
    );
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/admin/customers?cursor=Not%20An%20Id",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Issue 17: per-customer limits. The operator sets a customer's request rate (a
/// token bucket shared by every replica: 429 with `Retry-After` beyond it) and a
/// daily cap of messages (429 `daily_cap_reached` until midnight KST); another
/// customer is unaffected; bad limits are 422, an unknown customer 404.
#[tokio::test]
async fn the_operator_limits_a_customers_rate_and_daily_messages() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let other = api.customer("other").await;
    let limits = |body: Value| async {
        let body = body;
        api.call(
            Method::PUT,
            "/v1/admin/customers/acme/limits",
            Some(ADMIN_KEY),
            Some(body),
        )
        .await
    };
    let (status, set) = limits(json!({"requests_per_second": 1, "burst": 3})).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        (
            set["effective_requests_per_second"].as_f64(),
            set["effective_burst"].as_f64()
        ),
        (Some(1.0), Some(3.0)),
        "{set}"
    );
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let (status, headers, _) = api
            .call_with_headers(Method::GET, "/v1/points", Some(&key), &[], None)
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = headers
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
        }
        statuses.push(status);
    }
    let passed = statuses.iter().filter(|status| status.is_success()).count();
    assert!(
        (3..=4).contains(&passed),
        "the burst of 3 (and a refill): {statuses:?}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"), "{statuses:?}");
    let (status, _) = api
        .call(Method::GET, "/v1/points", Some(&other), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "another customer has its own bucket"
    );

    let (status, set) = limits(json!({"requests_per_second": 100000, "daily_messages": 3})).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["daily_messages"], json!(3), "{set}");
    // The bucket refills at the new rate from where the old one left it.
    rns_testkit::wait_until(
        "the bucket refilled",
        std::time::Duration::from_secs(5),
        || async {
            let (status, _) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
            status == StatusCode::OK
        },
    )
    .await;
    let send = |to: Value| {
        api.call(
            Method::POST,
            "/v1/messages",
            Some(&key),
            Some(json!({"from": "0212345678", "to": to, "text": "cap"})),
        )
    };
    let (status, answer) = send(json!(["01011110001", "01011110002"])).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, answer) = send(json!(["01011110003", "01011110004"])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(error_code(&answer), "daily_cap_reached");
    let (status, answer) = send(json!(["01011110005"])).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "the last one under the cap: {answer}"
    );

    let (status, set) = limits(json!({})).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(
        (
            &set["requests_per_second"],
            set["effective_requests_per_second"].as_f64()
        ),
        (&Value::Null, Some(200.0)),
        "back to the default: {set}"
    );
    let (status, answer) = limits(json!([null, null])).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a body is an object: {answer}"
    );
    assert_eq!(error_code(&answer), "invalid_body");
    let (status, answer) = limits(json!({"requests_per_second": 0})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(error_code(&answer), "invalid_limits");
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/admin/customers/nobody/limits",
            Some(ADMIN_KEY),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Issue 17: several named keys per customer with scopes, shown once, listed with
/// their last use, rotated and revoked — a revoked key stops working at once, and a
/// key lacking the scope a route needs is 403.
#[tokio::test]
async fn keys_are_named_scoped_rotated_and_revoked() {
    let api = Api::start().await;
    let owner = api.customer("acme").await;
    let create = |name: &str, scopes: Value| {
        api.call(
            Method::POST,
            "/v1/api-keys",
            Some(&owner),
            Some(json!({"name": name, "scopes": scopes})),
        )
    };
    let (status, reader) = create("reports", json!(["read"])).await;
    assert_eq!(status, StatusCode::CREATED, "{reader}");
    let reader_key = reader["key"].as_str().unwrap().to_owned();
    let reader_id = reader["id"].as_str().unwrap().to_owned();
    assert_eq!(
        rns_types::api_key::key_id(&reader_key),
        Some(reader_id.as_str())
    );
    let (status, sender) = create("app", json!(["send"])).await;
    assert_eq!(status, StatusCode::CREATED, "{sender}");
    let sender_key = sender["key"].as_str().unwrap().to_owned();

    // Each does what its scopes allow, and nothing else.
    let (status, answer) = send_one(&api, &sender_key).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (status, answer) = send_one(&api, &reader_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(error_code(&answer), "forbidden");
    let (status, _) = api
        .call(Method::GET, "/v1/points", Some(&reader_key), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(Method::GET, "/v1/points", Some(&sender_key), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "send does not read");
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/contacts",
            Some(&reader_key),
            Some(json!({"number": "01012345678"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "read does not manage");
    let (status, _) = create("x", json!([])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "no scopes");
    let (status, _) = create("x", json!(["admin"])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "an unknown scope");

    // Listed without the keys themselves, with the last use noted.
    let (status, listed) = api
        .call(Method::GET, "/v1/api-keys", Some(&owner), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "the first key, reports and app: {listed}");
    assert!(
        !listed.to_string().contains(&reader_key),
        "no key is shown again"
    );
    let reports = items
        .iter()
        .find(|item| item["id"] == json!(reader_id))
        .unwrap();
    assert_eq!(reports["scopes"], json!(["read"]));
    rns_testkit::wait_until(
        "the reader's use noted",
        std::time::Duration::from_secs(5),
        || async {
            let (_, listed) = api
                .call(Method::GET, "/v1/api-keys", Some(&owner), None)
                .await;
            listed["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|item| item["id"] == json!(reader_id) && item["last_used_at"].is_string())
        },
    )
    .await;

    // Rotated: a new key of the same name and scopes; the old one stops at once.
    let (status, rotated) = api
        .call(
            Method::POST,
            &format!("/v1/api-keys/{reader_id}/rotate"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    assert_eq!(
        (&rotated["name"], &rotated["scopes"]),
        (&json!("reports"), &json!(["read"]))
    );
    let rotated_key = rotated["key"].as_str().unwrap().to_owned();
    let (status, _) = api
        .call(Method::GET, "/v1/points", Some(&reader_key), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the rotated-out key");
    let (status, _) = api
        .call(Method::GET, "/v1/points", Some(&rotated_key), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Revoked: it stops working even though it was just used (and cached).
    let sender_id = sender["id"].as_str().unwrap();
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{sender_id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = send_one(&api, &sender_key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{sender_id}"),
            Some(&owner),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already revoked");
    // Another customer cannot touch these keys.
    let rival = api.customer("rival").await;
    let rotated_id = rotated["id"].as_str().unwrap();
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/api-keys/{rotated_id}"),
            Some(&rival),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Sends one SMS with `key`.
async fn send_one(api: &Api, key: &str) -> (StatusCode, Value) {
    api.call(
        Method::POST,
        "/v1/messages",
        Some(key),
        Some(json!({"from": "0212345678", "to": ["01012345678"], "text": "scoped"})),
    )
    .await
}

#[tokio::test]
async fn a_routing_preview_shows_the_next_carriers_from_where_the_counter_stands() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let weights = json!({"weights": {"kt": 50, "skt": 30, "lgu": 20}});
    let (status, preview) = api
        .call(
            Method::POST,
            "/v1/routing/sms/preview",
            Some(&key),
            Some(weights.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["cycle_length"], 10);
    let next: Vec<String> = serde_json::from_value(preview["next"].clone()).unwrap();
    assert_eq!(next.len(), 20);
    let count = |carrier: &str| next.iter().filter(|chosen| *chosen == carrier).count();
    assert_eq!((count("kt"), count("skt"), count("lgu")), (10, 6, 4));
    let (_, routing) = api.call(Method::GET, "/v1/routing", Some(&key), None).await;
    assert_eq!(routing["sms"]["default"], true, "a preview changes nothing");

    // Three messages later (the dispatcher's counter for these weights at 3), the
    // preview starts three places on.
    let mut redis = redis::Client::open(api.redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("rns:route:acme:sms:kt=50,lgu=20,skt=30")
        .arg(3)
        .query_async(&mut redis)
        .await
        .unwrap();
    let (_, later) = api
        .call(
            Method::POST,
            "/v1/routing/sms/preview",
            Some(&key),
            Some(weights),
        )
        .await;
    let later: Vec<String> = serde_json::from_value(later["next"].clone()).unwrap();
    assert_eq!(later[..17], next[3..]);

    let (status, answer) = api
        .call(
            Method::POST,
            "/v1/routing/sms/preview",
            Some(&key),
            Some(json!({"weights": {"kt": 0}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(error_code(&answer), "invalid_weights");
}
