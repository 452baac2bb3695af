//! What a send can be, through the API: templates and variables, groups, opt-outs,
//! advertisements, AlimTalk with fallback, MMS images; bad input of each is a clear
//! 422 and publishes nothing, and another customer's ids are 404.
mod common;

use axum::http::{Method, StatusCode};
use base64::Engine;
use common::{error_code, Api};
use rns_types::{Channel, MessageType};
use serde_json::{json, Value};

async fn post(api: &Api, key: &str, path: &str, body: Value) -> (StatusCode, Value) {
    api.call(Method::POST, path, Some(key), Some(body)).await
}

async fn send(api: &Api, key: &str, body: Value) -> (StatusCode, Value) {
    post(api, key, "/v1/messages", body).await
}

async fn template(api: &Api, key: &str, body: Value) -> String {
    let (status, created) = post(api, key, "/v1/templates", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// `base` with `extra`'s fields added.
fn with_fields(base: &Value, extra: Value) -> Value {
    let mut body = base.clone();
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// Sends `body` and checks it is refused with 422 `code`, saying `expected`.
async fn refused(api: &Api, key: &str, body: Value, code: &str, expected: &str) {
    let (status, answer) = send(api, key, body.clone()).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{body} → {answer}"
    );
    assert_eq!(error_code(&answer), code, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains(expected), "{body} → {message}");
}

/// The customer's first sender number's opt-out line as an advertisement prints it.
async fn printed_opt_out_line(api: &Api, key: &str) -> String {
    let (_, senders) = api
        .call(Method::GET, "/v1/sender-numbers", Some(key), None)
        .await;
    let line = senders["items"][0]["opt_out_number"]
        .as_str()
        .unwrap()
        .to_owned();
    format!("{}-{}-{}", &line[..3], &line[3..6], &line[6..])
}

fn jpeg(size: usize) -> String {
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.resize(size, 0x42);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn templates_are_managed_per_customer_with_their_rules() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let sms = template(
        &api,
        &key,
        json!({"channel": "sms", "name": "OTP", "text": "[RNS] #{name}님 인증번호 #{code}"}),
    )
    .await;
    let alimtalk = template(
        &api,
        &key,
        json!({"channel": "alimtalk", "name": "배송", "text": "#{name}님, 주문하신 상품이 발송되었습니다.",
               "alimtalk": {"template_code": "shipped_v1", "title": "배송 시작",
                            "buttons": [{"kind": "delivery_tracking", "name": "배송조회"}]}}),
    )
    .await;
    let (status, found) = api
        .call(
            Method::GET,
            &format!("/v1/templates/{sms}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(found["variables"], json!(["name", "code"]));

    let (_, page) = api
        .call(
            Method::GET,
            "/v1/templates?channel=alimtalk",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["id"], json!(alimtalk));
    let (_, page) = api
        .call(Method::GET, "/v1/templates?limit=1", Some(&key), None)
        .await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, rest) = api
        .call(
            Method::GET,
            &format!("/v1/templates?limit=1&cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    assert_ne!(page["items"][0]["id"], rest["items"][0]["id"]);

    let (status, replaced) = api
        .call(
            Method::PUT,
            &format!("/v1/templates/{sms}"),
            Some(&key),
            Some(json!({"name": "OTP v2", "text": "code #{code}"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["variables"], json!(["code"]));

    for (body, code) in [
        (json!({"name": "x", "text": "hi"}), "invalid_body"),
        (
            json!({"channel": "sms", "name": "x", "text": "hi #{oops"}),
            "invalid_text",
        ),
        (
            json!({"channel": "sms", "name": "x", "text": "가".repeat(1_001)}),
            "invalid_text",
        ),
        (
            json!({"channel": "sms", "name": "", "text": "hi"}),
            "invalid_name",
        ),
        (
            json!({"channel": "alimtalk", "name": "x", "text": "hi"}),
            "invalid_template",
        ),
        (
            json!({"channel": "sms", "name": "x", "text": "hi", "alimtalk": {"template_code": "a"}}),
            "invalid_template",
        ),
        (
            json!({"channel": "alimtalk", "name": "x", "text": "hi",
                   "alimtalk": {"template_code": "a", "buttons": [{"kind": "web_link", "name": "열기"}]}}),
            "invalid_alimtalk",
        ),
        (
            json!({"channel": "fax", "name": "x", "text": "hi"}),
            "invalid_body",
        ),
    ] {
        let (status, answer) = post(&api, &key, "/v1/templates", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} → {answer}"
        );
        assert_eq!(error_code(&answer), code, "{body} → {answer}");
    }
    let (status, answer) = api
        .call(
            Method::PUT,
            &format!("/v1/templates/{sms}"),
            Some(&key),
            Some(json!({"channel": "alimtalk", "name": "x", "text": "y"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");

    let rival = api.customer("rival").await;
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = api
            .call(
                method.clone(),
                &format!("/v1/templates/{sms}"),
                Some(&rival),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
    }
    let (status, _) = send(
        &api,
        &rival,
        json!({"from": "0212345678", "to": ["01011112222"], "template_id": sms, "variables": {"code": "1"}}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another customer's template cannot be sent"
    );

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/templates/{sms}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(
            Method::GET,
            &format!("/v1/templates/{sms}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_template_send_fills_each_recipients_variables_or_names_what_is_missing() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let otp = template(
        &api,
        &key,
        json!({"channel": "sms", "name": "OTP", "text": "#{name}님 인증번호 #{code} (#{brand})"}),
    )
    .await;
    // A contact lends its fields to a recipient named by number.
    post(
        &api,
        &key,
        "/v1/contacts",
        json!({"number": "010-3333-3333", "fields": {"name": "이영희"}}),
    )
    .await;
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "template_id": otp, "variables": {"brand": "RNS"},
               "recipients": [{"to": "01011111111", "variables": {"name": "김철수", "code": "1111"}},
                              {"to": "01033333333", "variables": {"code": "3333"}}]}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let request = api.queued_sends().await.pop().unwrap();
    let texts: Vec<&str> = request
        .recipients
        .iter()
        .map(|recipient| recipient.text.as_deref().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "김철수님 인증번호 1111 (RNS)",
            "이영희님 인증번호 3333 (RNS)"
        ]
    );

    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "template_id": otp, "variables": {"brand": "RNS", "code": "1"},
               "to": ["01044444444"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'name'") && message.contains("01044444444"),
        "{message}"
    );

    for (body, code) in [
        (
            json!({"from": "0212345678", "to": ["01011111111"]}),
            "invalid_body",
        ),
        (
            json!({"from": "0212345678", "to": ["01011111111"], "template_id": otp, "text": "x"}),
            "invalid_body",
        ),
        (
            json!({"from": "0212345678", "to": ["01011111111"], "text": "x", "variables": {"bad name": "x"}}),
            "invalid_variables",
        ),
        (
            json!({"from": "0212345678", "recipients": [{"to": "0212345678"}], "text": "x"}),
            "invalid_recipient",
        ),
        (
            json!({"from": "0212345678", "to": ["01011111111"], "text": "가".repeat(1_001)}),
            "invalid_text",
        ),
    ] {
        let (status, answer) = send(&api, &key, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} → {answer}"
        );
        assert_eq!(error_code(&answer), code, "{body} → {answer}");
    }
    let (_, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["01011111111"], "text": "가".repeat(1_001)}),
    )
    .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 over"),
        "{answer}"
    );
    let (status, _) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["01011111111"], "template_id": "01JDXYZ0000000000000000000"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn groups_expand_without_duplicates_and_members_that_cannot_be_texted_are_reported() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (_, first) = post(&api, &key, "/v1/groups", json!({"name": "A"})).await;
    let first = first["id"].as_str().unwrap().to_owned();
    let (_, landline) = post(
        &api,
        &key,
        "/v1/contacts",
        json!({"number": "02-555-1234", "group_ids": [first]}),
    )
    .await;
    post(
        &api,
        &key,
        "/v1/contacts",
        json!({"number": "010-1000-0001", "group_ids": [first]}),
    )
    .await;
    post(
        &api,
        &key,
        "/v1/contacts",
        json!({"number": "010-1000-0002", "group_ids": [first]}),
    )
    .await;
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["010-1000-0002"], "groups": [first], "text": "hello"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["recipients"], 2);
    assert_eq!(answer["skipped"][0]["contact_id"], landline["id"]);
    let request = api.queued_sends().await.pop().unwrap();
    let numbers: Vec<&str> = request
        .recipients
        .iter()
        .map(|recipient| recipient.to.as_str())
        .collect();
    assert_eq!(
        numbers,
        ["01010000002", "01010000001"],
        "explicit first, then members, once each"
    );

    let rival = api.customer("rival").await;
    let (status, _) = send(
        &api,
        &rival,
        json!({"from": "0212345678", "groups": [first], "text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another customer's group");
    let (_, empty) = post(&api, &key, "/v1/groups", json!({"name": "empty"})).await;
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "groups": [empty["id"]], "text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&answer), "no_recipients");
}

#[tokio::test]
async fn opted_out_recipients_are_blocked_and_not_charged() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (_, senders) = api
        .call(Method::GET, "/v1/sender-numbers", Some(&key), None)
        .await;
    let line = senders["items"][0]["opt_out_number"]
        .as_str()
        .unwrap()
        .to_owned();

    // Issue 17's reproduction: anyone who knew the 080 number could opt out any
    // recipient without a key. Now the line calls with its own key, which the
    // operator issues; the customer records with its API key.
    let line_opt_out = format!("/v1/opt-out-lines/{line}/opt-outs");
    let recipient = json!({"recipient": "010-9999-0001"});
    let (status, answer) = api
        .call(
            Method::POST,
            "/v1/opt-outs",
            None,
            Some(json!({"opt_out_number": line, "recipient": "010-9999-0001"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no key: {answer}");
    let (status, answer) = api
        .call(Method::POST, &line_opt_out, None, Some(recipient.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no line key: {answer}");
    let (status, answer) = api
        .call(
            Method::POST,
            &line_opt_out,
            Some(&key),
            Some(recipient.clone()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a customer key is not the line's: {answer}"
    );
    let (status, issued) = api
        .call(
            Method::POST,
            &format!("/v1/admin/opt-out-lines/{line}/key"),
            Some(common::ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let line_key = issued["key"].as_str().unwrap().to_owned();
    let (status, answer) = api
        .call(
            Method::POST,
            &line_opt_out,
            Some(&line_key),
            Some(recipient.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["sender_number"], json!("0212345678"), "{answer}");
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/opt-out-lines/0800000001/opt-outs",
            Some(&line_key),
            Some(recipient.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "another line's key");
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/admin/opt-out-lines/0800000001/key",
            Some(common::ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a line nobody holds");
    let (status, _) = post(
        &api,
        &key,
        "/v1/opt-outs",
        json!({"sender_number": "02-1234-5678", "recipient": "01099990002"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/opt-outs",
            None,
            Some(json!({"sender_number": "0212345678", "recipient": "01099990001"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = post(
        &api,
        &key,
        "/v1/opt-outs",
        json!({"sender_number": "0212345678", "recipient": "nope"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let rival = api.customer_with_points("rival", 0).await;
    let (status, _) = post(
        &api,
        &rival,
        "/v1/opt-outs",
        json!({"sender_number": "0299990000", "recipient": "01099990003"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "not the rival's sender number"
    );

    let (_, before) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["01099990001", "01099990002", "01099990003"], "text": "hi"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["recipients"], 1);
    assert_eq!(answer["blocked"], json!(["01099990001", "01099990002"]));
    assert_eq!(answer["message_ids"].as_array().unwrap().len(), 3);
    assert_eq!(answer["points"], 1, "only the one sent is charged");
    let (_, after) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    assert_eq!(
        after["balance"].as_i64().unwrap(),
        before["balance"].as_i64().unwrap() - 1
    );
    let request = api.queued_sends().await.pop().unwrap();
    assert_eq!(request.blocked.len(), 2);

    let (_, listed) = api
        .call(
            Method::GET,
            "/v1/opt-outs?sender_number=02-1234-5678",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(listed["opt_out_number"], json!(line));
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/opt-outs/0212345678/01099990001",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/opt-outs/0212345678/01099990001",
            Some(&rival),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn advertisements_follow_the_law() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let printed = printed_opt_out_line(&api, &key).await;
    for text in [
        "세일 안내".to_owned(),
        "(광고) 세일 안내".to_owned(),
        format!("세일 무료수신거부 {printed}"),
    ] {
        let (status, answer) = send(
            &api,
            &key,
            json!({"from": "0212345678", "to": ["01011111111"], "text": text, "advertisement": true, "night_consent": true}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{text}: {answer}");
        assert_eq!(error_code(&answer), "advertisement_rules");
    }
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["01011111111"], "text": format!("(광고) 세일 무료수신거부 {printed}"),
               "advertisement": true, "night_consent": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert!(
        answer.get("held_until").is_none(),
        "consented recipients are not held"
    );
    let queued = api.queued_sends().await.pop().unwrap();
    assert!(queued.advertisement);
    assert_eq!(
        queued.priority,
        rns_types::Priority::Bulk,
        "advertisements go in the bulk lane unless the send says otherwise"
    );
}

#[tokio::test]
async fn priority_validity_and_confidentiality_travel_with_the_send_and_bad_ones_are_refused() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["01011111111"], "text": "인증번호 123456",
               "priority": "high", "valid_for": 180}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let queued = api.queued_sends().await.pop().unwrap();
    assert_eq!(queued.priority, rns_types::Priority::High);
    assert_eq!(queued.valid_for_ms, Some(180_000));
    assert!(!queued.confidential, "recorded as written unless asked");
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["01011111111"], "text": "인증번호 654321",
               "confidential": true}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let queued = api.queued_sends().await.pop().unwrap();
    assert!(queued.confidential, "the dispatcher records it withheld");
    assert_eq!(queued.text, "인증번호 654321", "the carriers get the text");

    let in_an_hour = rns_types::time::rfc3339(rns_types::time::now_milliseconds() + 3_600_000);
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["01011111111"], "text": "hi", "expires_at": in_an_hour}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let queued = api.queued_sends().await.pop().unwrap();
    assert_eq!(queued.priority, rns_types::Priority::Normal);
    let valid_for_ms = queued.valid_for_ms.unwrap();
    assert!(
        (3_590_000..=3_600_000).contains(&valid_for_ms),
        "{valid_for_ms}"
    );

    for (extra, code) in [
        (json!({"priority": "urgent"}), "invalid_body"),
        (json!({"valid_for": 0}), "invalid_validity"),
        (json!({"valid_for": 259_201}), "invalid_validity"),
        (
            json!({"valid_for": 60, "expires_at": in_an_hour}),
            "invalid_validity",
        ),
        (
            json!({"expires_at": "2020-01-01T00:00:00Z"}),
            "invalid_validity",
        ),
    ] {
        let mut body = json!({"from": "0212345678", "to": ["01011111111"], "text": "hi"});
        for (field, value) in extra.as_object().unwrap() {
            body[field] = value.clone();
        }
        let (status, answer) = send(&api, &key, body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{extra}: {answer}"
        );
        assert_eq!(error_code(&answer), code, "{extra}: {answer}");
    }
}

#[tokio::test]
async fn alimtalk_sends_carry_their_content_and_fallback() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let body = json!({
        "channel": "alimtalk", "from": "0212345678", "to": ["01011111111"],
        "text": "주문이 접수되었습니다.",
        "alimtalk": {"template_code": "order_v1", "title": "주문 접수",
                     "buttons": [{"kind": "web_link", "name": "주문 보기", "url_mobile": "https://m.example.com/o/1"}]},
        "fallback": {"text": "[RNS] 주문이 접수되었습니다. https://m.example.com/o/1"}
    });
    let (status, answer) = send(&api, &key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["type"], "alimtalk");
    let request = api.queued_sends().await.pop().unwrap();
    assert_eq!(request.channel, Channel::Alimtalk);
    assert_eq!(request.alimtalk.as_ref().unwrap().buttons.len(), 1);
    let fallback = request.fallback.as_ref().unwrap();
    assert_eq!(
        (fallback.message_type, fallback.price),
        (MessageType::Sms, 1)
    );

    for (body, code) in [
        (
            json!({"channel": "alimtalk", "from": "0212345678", "to": ["01011111111"], "text": "x"}),
            "invalid_body",
        ),
        (
            json!({"channel": "alimtalk", "from": "0212345678", "to": ["01011111111"], "text": "x",
                   "alimtalk": {"template_code": "t", "buttons": [{"kind": "app_link", "name": "앱"}]}}),
            "invalid_text",
        ),
        (
            json!({"from": "0212345678", "to": ["01011111111"], "text": "x", "fallback": {"text": "y"}}),
            "invalid_body",
        ),
        (
            json!({"channel": "alimtalk", "from": "0212345678", "to": ["01011111111"], "text": "(광고) x",
                   "advertisement": true, "alimtalk": {"template_code": "t"}}),
            "advertisement_rules",
        ),
    ] {
        let (status, answer) = send(&api, &key, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} → {answer}"
        );
        assert_eq!(error_code(&answer), code, "{body} → {answer}");
    }
}

#[tokio::test]
async fn mms_images_are_checked_and_stored_once() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let image = jpeg(50_000);
    let body = json!({"from": "0212345678", "to": ["01011111111", "01022222222"], "text": "사진",
                      "images": [{"data": image}, {"data": image}]});
    let (status, answer) = send(&api, &key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        (answer["type"].as_str(), answer["points"].as_u64()),
        (Some("mms"), Some(12))
    );
    let request = api.queued_sends().await.pop().unwrap();
    assert_eq!(request.images.len(), 2);
    assert_eq!(
        request.images[0], request.images[1],
        "the same image is stored once"
    );
    assert!(request.images[0].starts_with("acme/"));

    let too_big = jpeg(300 * 1024 + 1);
    let not_jpeg = base64::engine::general_purpose::STANDARD.encode(b"GIF89a....");
    for (images, expected) in [
        (json!([{"data": not_jpeg}]), "is not a JPEG"),
        (json!([{"data": "%%%"}]), "not base64"),
        (json!([{"data": too_big}]), "1 over the limit"),
        (
            json!([{"data": image}, {"data": image}, {"data": image}, {"data": image}]),
            "at most 3",
        ),
    ] {
        let (status, answer) = send(
            &api,
            &key,
            json!({"from": "0212345678", "to": ["01011111111"], "text": "x", "images": images}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(error_code(&answer), "invalid_images");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains(expected),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn schedules_are_checked_listed_per_customer_and_cancelled_with_their_points() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let base = json!({"from": "0212345678", "to": ["01011111111"], "text": "예약"});
    let with = |extra: Value| with_fields(&base, extra);
    for (extra, expected) in [
        (
            json!({"scheduled_at": "2020-01-01T00:00:00Z"}),
            "in the past",
        ),
        (json!({"scheduled_at": "2099-01-01T00:00:00Z"}), "180 days"),
        (json!({"scheduled_at": "next monday"}), "RFC 3339"),
        (json!({"recurrence": {"cron": "0 9 * * MON"}}), "it needs 6"),
        (
            json!({"recurrence": {"cron": "0 0 9 * * FUNDAY"}}),
            "not a valid cron",
        ),
        (
            json!({"recurrence": {"cron": "0 0 9 * * MON", "timezone": "Asia/Atlantis"}}),
            "time zone",
        ),
        (json!({"recurrence": {"every": "often"}}), "interval"),
        (
            json!({"recurrence": {"every": "1m", "until": "2020-01-01T00:00:00Z"}}),
            "until is in the past",
        ),
        (
            json!({"scheduled_at": "2099-01-01T00:00:00Z", "recurrence": {"every": "1m"}}),
            "not both",
        ),
    ] {
        refused(&api, &key, with(extra), "invalid_schedule", expected).await;
    }

    let (_, before) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    let in_an_hour = rns_types::time::rfc3339(rns_types::time::now_milliseconds() + 3_600_000);
    let (status, once) = send(&api, &key, with(json!({"scheduled_at": in_an_hour}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{once}");
    let once_id = once["schedule_id"].as_str().unwrap().to_owned();
    assert_eq!(once["state"], "scheduled");
    let (_, reserved) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    assert_eq!(
        reserved["reserved"].as_i64(),
        Some(before["reserved"].as_i64().unwrap() + 1)
    );

    let (status, weekly) = send(
        &api,
        &key,
        with(json!({"recurrence": {"cron": "0 0 9 * * MON", "timezone": "Asia/Seoul"}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{weekly}");
    let next = rns_types::time::parse_rfc3339(weekly["next_fire_at"].as_str().unwrap()).unwrap();
    assert_eq!(next % (24 * 3_600_000), 0, "09:00 KST is 00:00 UTC");
    assert_eq!((next / (24 * 3_600_000) + 4) % 7, 1, "a Monday");

    let (_, listed) = api
        .call(Method::GET, "/v1/schedules", Some(&key), None)
        .await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
    let (_, page) = api
        .call(Method::GET, "/v1/schedules?limit=1", Some(&key), None)
        .await;
    assert_eq!(page["items"][0]["id"], json!(once_id));
    assert!(page["next_cursor"].is_string());
    let (status, _) = api
        .call(
            Method::GET,
            "/v1/schedules?state=sleeping",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let rival = api.customer("rival").await;
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = api
            .call(
                method.clone(),
                &format!("/v1/schedules/{once_id}"),
                Some(&rival),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}");
    }
    let (_, theirs) = api
        .call(Method::GET, "/v1/schedules", Some(&rival), None)
        .await;
    assert_eq!(theirs["items"], json!([]));

    let (status, cancelled) = api
        .call(
            Method::DELETE,
            &format!("/v1/schedules/{once_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let (_, after) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    assert_eq!(
        after["reserved"], before["reserved"],
        "the cancel returned the points"
    );
    assert_eq!(after["balance"], before["balance"]);
    let (_, only_cancelled) = api
        .call(
            Method::GET,
            "/v1/schedules?state=cancelled",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(only_cancelled["items"].as_array().unwrap().len(), 1);
    let stream_subjects = api.schedule_subjects().await;
    assert!(
        !stream_subjects
            .iter()
            .any(|subject| subject.contains(&once_id)),
        "purged: {stream_subjects:?}"
    );
    assert!(stream_subjects
        .iter()
        .any(|subject| subject.contains(weekly["schedule_id"].as_str().unwrap())));
}

#[tokio::test]
async fn message_list_filters_are_checked_before_anything_is_queried() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    for query in [
        "status=lost",
        "type=fax",
        "channel=email",
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        "cursor=nope",
        "to_number=12",
        "request_id=abc",
        "schedule_id=../x",
        "carrier=K.T",
        "limit=0",
        "colour=red",
    ] {
        let (status, answer) = api
            .call(
                Method::GET,
                &format!("/v1/messages?{query}"),
                Some(&key),
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query} → {answer}"
        );
    }
}

#[tokio::test]
async fn request_list_and_statistics_queries_are_checked_before_anything_is_queried() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    for path in [
        "/v1/requests?since=yesterday",
        "/v1/requests?cursor=nope",
        "/v1/requests?limit=5000",
        "/v1/requests?colour=red",
        "/v1/stats?bucket=week",
        "/v1/stats?timezone=Mars/Olympus",
        "/v1/stats?since=2026-11-25T00:00:00Z&until=2026-11-24T00:00:00Z",
        "/v1/stats?bucket=minute&since=2026-01-01T00:00:00Z&until=2026-11-01T00:00:00Z",
        "/v1/stats?until=never",
    ] {
        let (status, answer) = api.call(Method::GET, path, Some(&key), None).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} → {answer}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|message| !message.is_empty()),
            "{path} → {answer}"
        );
    }
}

/// Issue 17's reproduction: `"recurrence":{"every":"1s"}` without an end was
/// accepted (it would charge every second), and an advertisement whose every cron
/// firing falls at night was accepted and could never send.
#[tokio::test]
async fn recurrences_that_would_run_away_or_never_send_are_refused() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let base = json!({"from": "0212345678", "to": ["01011111111"], "text": "반복"});
    let with = |extra: Value| with_fields(&base, extra);
    for (extra, expected) in [
        (json!({"recurrence": {"every": "1s"}}), "between 60 seconds"),
        (
            json!({"recurrence": {"every": "1s", "count": 3}}),
            "between 60 seconds",
        ),
        (
            json!({"recurrence": {"cron": "*/10 * * * * *", "count": 3}}),
            "more than once a minute",
        ),
        (json!({"recurrence": {"every": "5m"}}), "needs an end"),
        (
            json!({"recurrence": {"cron": "0 */15 9-18 * * MON-FRI"}}),
            "needs an end",
        ),
        (
            json!({"recurrence": {"every": "1h", "count": 0}}),
            "count must be 1",
        ),
    ] {
        refused(&api, &key, with(extra), "invalid_schedule", expected).await;
    }
    let (status, counted) = send(
        &api,
        &key,
        with(json!({"recurrence": {"every": "5m", "count": 12}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{counted}");
    assert_eq!(counted["recurrence"]["count"], json!(12), "{counted}");

    let printed = printed_opt_out_line(&api, &key).await;
    let advertisement = |cron: &str| {
        json!({"from": "0212345678", "to": ["01011111111"],
               "text": format!("(광고) 세일 무료수신거부 {printed}"), "advertisement": true,
               "recurrence": {"cron": cron, "timezone": "Asia/Seoul"}})
    };
    let (status, answer) = send(&api, &key, advertisement("0 0 22 * * *")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(error_code(&answer), "advertisement_rules");
    assert!(
        answer["error"]["message"].as_str().unwrap().contains(
            "every firing of this recurring advertisement falls between 21:00 and 08:00 KST"
        ),
        "{answer}"
    );
    let (status, answer) = send(&api, &key, advertisement("0 0 10 * * *")).await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "a daytime advertisement: {answer}"
    );
}

/// An 080 line is rate limited across replicas (before its key is checked, so
/// guessing keys is slow too): a burst beyond it is 429 with `Retry-After`.
#[tokio::test]
async fn an_opt_out_line_is_rate_limited() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let line = printed_opt_out_line(&api, &key).await.replace('-', "");
    let path = format!("/v1/opt-out-lines/{line}/opt-outs");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for attempt in 0..40 {
        let (status, headers, _) = api
            .call_with_headers(
                Method::POST,
                &path,
                Some("rns_line_guess"),
                &[("content-type", "application/json")],
                Some(json!({"recipient": format!("0109999{attempt:04}")}).to_string()),
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = headers
                .get("retry-after")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
        }
        statuses.push(status);
    }
    let limited = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    let refused = statuses
        .iter()
        .filter(|status| **status == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        (18..=25).contains(&refused),
        "about the burst of 20 checked: {statuses:?}"
    );
    assert_eq!(limited + refused, 40, "{statuses:?}");
    assert_eq!(retry_after.as_deref(), Some("1"), "{statuses:?}");
}

/// Issue 17: a customer-wide blocklist (numbers this customer never sends to, from any
/// sender), added one at a time or from CSV with per-row errors, listed, removed;
/// blocklisted recipients are reported as blocked and not charged.
#[tokio::test]
async fn blocklisted_recipients_are_blocked_from_every_sender_and_not_charged() {
    let api = Api::start().await;
    let key = api.customer("acme").await;
    let (status, added) = post(
        &api,
        &key,
        "/v1/blocklist",
        json!({"number": "010-7777-0001"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["number"], json!("01077770001"));
    let (status, _) = post(
        &api,
        &key,
        "/v1/blocklist",
        json!({"number": "02-123-4567"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a landline is no recipient"
    );

    let csv = "name,number\nA,010-7777-0002\nB,not a number\nC,01077770001\nD,010-7777-0003\n";
    let (status, _, report) = api
        .call_with_headers(
            Method::POST,
            "/v1/blocklist/import",
            Some(&key),
            &[("content-type", "text/csv")],
            Some(csv.to_owned()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (
            &report["rows"],
            &report["added"],
            &report["already"],
            &report["failed"]
        ),
        (&json!(4), &json!(2), &json!(1), &json!(1)),
        "{report}"
    );
    assert_eq!(report["errors"][0]["row"], json!(3), "{report}");
    let (status, _, _) = api
        .call_with_headers(
            Method::POST,
            "/v1/blocklist/import",
            Some(&key),
            &[("content-type", "application/json")],
            Some("{}".to_owned()),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (status, page) = api
        .call(Method::GET, "/v1/blocklist?limit=2", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"][0]["number"], json!("01077770001"));
    assert_eq!(page["next_cursor"], json!("01077770002"));
    let (_, rest) = api
        .call(
            Method::GET,
            "/v1/blocklist?limit=2&cursor=01077770002",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(rest["items"][0]["number"], json!("01077770003"), "{rest}");

    let (_, before) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    let (status, answer) = send(
        &api,
        &key,
        json!({"from": "0212345678", "to": ["01077770001", "01077770003", "01011112222"], "text": "차단"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        answer["blocked"],
        json!(["01077770001", "01077770003"]),
        "{answer}"
    );
    assert_eq!(answer["recipients"], json!(1), "{answer}");
    let (_, after) = api.call(Method::GET, "/v1/points", Some(&key), None).await;
    assert_eq!(
        before["balance"].as_i64().unwrap() - after["balance"].as_i64().unwrap(),
        1,
        "one recipient charged: {before} → {after}"
    );

    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/blocklist/01077770001",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/blocklist/01077770001",
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let rival = api.customer("rival").await;
    let (status, answer) = send(
        &api,
        &rival,
        json!({"from": rns_testkit::sender_for("rival"), "to": ["01077770003"], "text": "남의 차단"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert!(
        answer.get("blocked").is_none(),
        "another customer's list: {answer}"
    );
}

#[tokio::test]
async fn a_preview_says_what_a_send_would_do_and_sends_nothing() {
    let api = Api::start().await;
    let key = api.customer_with_points("acme", 2).await;
    let (_, group) = post(&api, &key, "/v1/groups", json!({"name": "VIP"})).await;
    let group = group["id"].as_str().unwrap().to_owned();
    for (number, name) in [
        ("010-1000-0001", "민수"),
        ("010-1000-0002", "서연"),
        ("02-555-1234", "본사"),
    ] {
        let contact = json!({"number": number, "group_ids": [group], "fields": {"name": name}});
        let (status, _) = post(&api, &key, "/v1/contacts", contact).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let body = json!({
        "from": "0212345678",
        "to": ["010-1000-0002"],
        "groups": [group],
        "text": "#{name}님 안녕하세요",
    });
    let (status, preview) = post(&api, &key, "/v1/messages/preview", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["recipients"], 2,
        "one number named twice counts once"
    );
    assert_eq!(preview["skipped"][0]["number"], "025551234");
    assert_eq!(preview["type"], "sms");
    assert_eq!(preview["first"][0]["to"], "01010000002");
    assert_eq!(preview["first"][0]["text"], "서연님 안녕하세요");
    assert_eq!(preview["first"][1]["text"], "민수님 안녕하세요");
    assert_eq!(preview["bytes"], 17, "Hangul is two bytes in EUC-KR");
    assert_eq!(
        (
            preview["sms_max_bytes"].as_u64(),
            preview["lms_max_bytes"].as_u64()
        ),
        (Some(90), Some(2000))
    );
    assert_eq!(
        (preview["points"].as_u64(), preview["balance"].as_i64()),
        (Some(2), Some(2))
    );
    assert_eq!(preview["enough_points"], true);
    assert_eq!(preview["when"], "now");
    assert!(
        api.queued_sends().await.is_empty(),
        "a preview sends nothing"
    );

    // The send of the same body does what the preview said.
    let (status, sent) = send(&api, &key, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert_eq!(
        (sent["points"].as_u64(), sent["recipients"].as_u64()),
        (Some(2), Some(2))
    );

    // Written, not addressed yet: the text is measured; long, it is an LMS the
    // balance (now spent) does not cover.
    let long = "가".repeat(46);
    let (status, preview) = post(
        &api,
        &key,
        "/v1/messages/preview",
        json!({"from": "0212345678", "text": long, "to": ["010-1000-0003"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        (preview["bytes"].as_u64(), preview["type"].as_str()),
        (Some(92), Some("lms"))
    );
    assert_eq!(
        (preview["points"].as_u64(), preview["balance"].as_i64()),
        (Some(3), Some(0))
    );
    assert_eq!(preview["enough_points"], false);
    let (status, preview) = post(
        &api,
        &key,
        "/v1/messages/preview",
        json!({"from": "0212345678", "text": "hello"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        (preview["recipients"].as_u64(), preview["bytes"].as_u64()),
        (Some(0), Some(5))
    );

    // A recurring send shows its next firings: 09:00 in Seoul is 00:00 UTC.
    let (_, preview) = post(
        &api,
        &key,
        "/v1/messages/preview",
        json!({"from": "0212345678", "text": "daily", "to": ["010-1000-0003"],
               "recurrence": {"cron": "0 0 9 * * *", "timezone": "Asia/Seoul"}}),
    )
    .await;
    assert_eq!(preview["when"], "recurring", "{preview}");
    let firings = preview["next_firings"].as_array().unwrap();
    assert_eq!(firings.len(), 5);
    assert!(
        firings
            .iter()
            .all(|at| at.as_str().unwrap().ends_with("T00:00:00.000Z")),
        "{preview}"
    );

    // What a send refuses, a preview refuses alike.
    let (status, answer) = post(
        &api,
        &key,
        "/v1/messages/preview",
        json!({"from": "0299998888", "text": "hi", "to": ["010-1000-0003"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&answer), "unknown_sender_number");
    assert!(
        api.queued_sends().await.len() == 1,
        "only the send was queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_each_get_their_own_blocked_recipients() {
    let api = Api::start().await;
    let acme = api.customer("acme").await;
    let rival = api.customer("rival").await;
    // acme blocks the even numbers; rival blocks nobody.
    for index in (0..20).step_by(2) {
        let number = format!("0107777{index:04}");
        let (status, added) = post(&api, &acme, "/v1/blocklist", json!({ "number": number })).await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
    }
    // Forty sends at once, whose lookups share rounds: each answer names exactly its
    // own blocked recipient, if any.
    let sends = (0..40).map(|index| {
        let (key, from) = if index % 4 < 2 {
            (acme.clone(), "0212345678".to_owned())
        } else {
            (rival.clone(), rns_testkit::sender_for("rival"))
        };
        let number = format!("0107777{:04}", index % 20);
        let api = &api;
        async move {
            let (status, answer) = send(
                api,
                &key,
                json!({"from": from, "to": [number.clone(), "01011112222"], "text": "동시"}),
            )
            .await;
            (index, number, status, answer)
        }
    });
    for (index, number, status, answer) in futures::future::join_all(sends).await {
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        // acme's send to an even number; rival's sends to the same numbers go out.
        let blocked_by_acme = index % 4 < 2 && (index % 20) % 2 == 0;
        if blocked_by_acme {
            assert_eq!(answer["blocked"], json!([number]), "send {index}: {answer}");
            assert_eq!(answer["recipients"], json!(1), "send {index}: {answer}");
        } else {
            assert!(answer.get("blocked").is_none(), "send {index}: {answer}");
            assert_eq!(answer["recipients"], json!(2), "send {index}: {answer}");
        }
    }
}

#[tokio::test]
async fn a_large_send_finds_blocked_recipients_in_every_chunk() {
    let api = Api::start_with(|settings| settings.gateway.max_recipients = 2_000).await;
    let acme = api.customer("acme").await;
    // Checked on its own, a thousand at a time: blocked ones in the first and last
    // thousand are both found.
    for number in ["01066660007", "01066661499"] {
        let (status, added) = post(&api, &acme, "/v1/blocklist", json!({ "number": number })).await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
    }
    let to: Vec<String> = (0..1_500)
        .map(|index| format!("0106666{index:04}"))
        .collect();
    let (status, answer) = send(
        &api,
        &acme,
        json!({"from": "0212345678", "to": to, "text": "대량"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(
        answer["blocked"],
        json!(["01066660007", "01066661499"]),
        "{}",
        answer["blocked"]
    );
    assert_eq!(answer["recipients"], json!(1_498));
}
