//! Sender numbers are verified before they send, and one customer holds a number:
//! a mobile number by the code RNS texts to it (from the operator's system number,
//! through the ordinary send path), any other by the operator's decision.
mod common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{error_code, Api, ADMIN_KEY};
use rns_testkit::wait_until;
use rns_types::Priority;
use serde_json::{json, Value};

const MOBILE: &str = "010-5555-1234";

/// The code in the last verification text queued for `number`.
async fn texted_code(api: &Api, number: &str) -> String {
    let texts: Vec<_> = api
        .queued_sends()
        .await
        .into_iter()
        .filter(|request| request.customer_id.as_str() == "rns")
        .filter(|request| request.recipients[0].to.as_str() == number)
        .collect();
    let text = texts.last().expect("a verification text was queued");
    assert_eq!(text.from.as_str(), "18990000", "from the system number");
    assert_eq!(text.priority, Priority::High);
    assert_eq!(text.points(), 0, "the operator's text is charged to no one");
    assert!(text.valid_for_ms.is_some(), "useless once the code expired");
    assert!(
        text.confidential,
        "nobody reads the code back from the records"
    );
    text.text
        .split(|character: char| !character.is_ascii_digit())
        .find(|word| word.len() == 6)
        .unwrap_or_else(|| panic!("no six-digit code in {:?}", text.text))
        .to_owned()
}

async fn send_from(api: &Api, key: &str, from: &str) -> (StatusCode, Value) {
    api.call(
        Method::POST,
        "/v1/messages",
        Some(key),
        Some(json!({"from": from, "to": ["01012345678"], "text": "안녕하세요"})),
    )
    .await
}

async fn register(api: &Api, key: &str, number: &str) -> (StatusCode, Value) {
    api.call(
        Method::POST,
        "/v1/sender-numbers",
        Some(key),
        Some(json!({"number": number})),
    )
    .await
}

async fn enter_code(api: &Api, key: &str, code: &str) -> (StatusCode, Value) {
    api.call(
        Method::POST,
        "/v1/sender-numbers/01055551234/verification",
        Some(key),
        Some(json!({"code": code})),
    )
    .await
}

async fn decide(api: &Api, customer: &str, number: &str, decision: Value) -> (StatusCode, Value) {
    api.call(
        Method::PUT,
        &format!("/v1/admin/customers/{customer}/sender-numbers/{number}"),
        Some(ADMIN_KEY),
        Some(decision),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mobile_number_sends_only_after_the_code_texted_to_it_is_entered() {
    let api = Api::start().await;
    let acme = api.bare_customer("acme").await;
    api.top_up("acme", 100).await;

    let (status, registered) = register(&api, &acme, MOBILE).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["status"], json!("pending"));
    assert_eq!(registered["method"], json!("sms_code"));
    assert!(registered["code_expires_at"].is_string(), "{registered}");
    let code = texted_code(&api, "01055551234").await;

    // Pending: it does not send.
    let (status, refused) = send_from(&api, &acme, MOBILE).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(error_code(&refused), "unverified_sender_number");

    let wrong = if code == "000000" { "111111" } else { "000000" };
    let (status, reply) = enter_code(&api, &acme, wrong).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(error_code(&reply), "wrong_code");
    assert!(reply["error"]["message"]
        .as_str()
        .unwrap()
        .contains("4 attempts left"));

    let (status, verified) = enter_code(&api, &acme, &code).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["status"], json!("verified"));
    assert_eq!(verified["next_step"], Value::Null);
    let (status, sent) = send_from(&api, &acme, MOBILE).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");

    // A code is used once; a verified number takes no more.
    let (status, reply) = enter_code(&api, &acme, &code).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");

    // The reproduction: another customer cannot take the number.
    let rival = api.bare_customer("rival").await;
    let (status, reply) = register(&api, &rival, MOBILE).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    let (status, reply) = send_from(&api, &rival, MOBILE).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(error_code(&reply), "unknown_sender_number");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_are_rate_limited_void_after_five_wrong_entries_and_expire() {
    let api = Api::start_with(|settings| {
        settings.verification.code_ttl_seconds = 2;
        settings.verification.resend_seconds = 1;
        settings.verification.codes_per_day = 3;
    })
    .await;
    let acme = api.bare_customer("acme").await;
    let (status, registered) = register(&api, &acme, MOBILE).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let code = texted_code(&api, "01055551234").await;
    let ask_again = || async {
        api.call(
            Method::POST,
            "/v1/sender-numbers/01055551234/verification-code",
            Some(&acme),
            None,
        )
        .await
    };

    // Five wrong entries void the code: even the right one is refused after.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for left in (0..5).rev() {
        let (status, reply) = enter_code(&api, &acme, wrong).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        assert!(
            reply["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} attempts left")),
            "{reply}"
        );
    }
    let (status, reply) = enter_code(&api, &acme, &code).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&reply), "too_many_attempts");

    // A second code once the number's minute (here a second) passed…
    let expires_at = std::cell::RefCell::new(String::new());
    wait_until("a second code is sent", Duration::from_secs(10), || async {
        let (status, reply) = ask_again().await;
        if status == StatusCode::ACCEPTED {
            *expires_at.borrow_mut() = reply["code_expires_at"].as_str().unwrap().to_owned();
        }
        status == StatusCode::ACCEPTED
    })
    .await;
    let expires_at = expires_at.into_inner();
    let second = texted_code(&api, "01055551234").await;
    // …which expires unused: the right code is then refused.
    let expiry = rns_types::time::parse_rfc3339(&expires_at).unwrap();
    wait_until(
        "the second code expires",
        Duration::from_secs(10),
        || async { rns_types::time::now_milliseconds() > expiry + 500 },
    )
    .await;
    let (status, reply) = enter_code(&api, &acme, &second).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(error_code(&reply), "no_code");

    // Asked again at once: 429 with when to ask; three codes a day, then none.
    let (status, reply) = ask_again().await;
    if status == StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(error_code(&reply), "rate_limited");
    }
    let refused_for_the_day = std::cell::RefCell::new(Value::Null);
    wait_until(
        "the day's codes run out",
        Duration::from_secs(10),
        || async {
            let (status, reply) = ask_again().await;
            let over = status == StatusCode::TOO_MANY_REQUESTS
                && reply["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("today");
            if over {
                *refused_for_the_day.borrow_mut() = reply;
            }
            over
        },
    )
    .await;
    let refused_for_the_day = refused_for_the_day.into_inner();
    assert_eq!(error_code(&refused_for_the_day), "rate_limited");
    let texts = api
        .queued_sends()
        .await
        .into_iter()
        .filter(|request| request.customer_id.as_str() == "rns")
        .count();
    assert_eq!(texts, 3, "three codes texted, no more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_landline_waits_for_the_operator_and_one_customer_holds_a_number() {
    let api = Api::start().await;
    let demo = api.bare_customer("demo").await;
    let rival = api.bare_customer("rival").await;
    let third = api.bare_customer("third").await;
    for customer in ["demo", "rival", "third"] {
        api.top_up(customer, 100).await;
    }
    let (status, registered) = register(&api, &demo, "02-1234-5678").await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["method"], json!("operator_approval"));
    assert_eq!(registered["code_expires_at"], Value::Null);
    assert!(registered["next_step"]
        .as_str()
        .unwrap()
        .contains("operator"));
    // Nobody holds it yet: the rival may ask for it too.
    let (status, _) = register(&api, &rival, "0212345678").await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, refused) = send_from(&api, &demo, "0212345678").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(error_code(&refused), "unverified_sender_number");

    // The operator sees both waiting, and decides with a reason.
    let (status, pending) = api
        .call(
            Method::GET,
            "/v1/admin/sender-numbers?status=pending",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pending}");
    let waiting: Vec<(String, String)> = pending["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["customer"].as_str().unwrap().to_owned(),
                item["number"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        waiting,
        [
            ("demo".to_owned(), "0212345678".to_owned()),
            ("rival".to_owned(), "0212345678".to_owned())
        ]
    );
    let (status, reply) = decide(
        &api,
        "demo",
        "0212345678",
        json!({"status": "verified", "reason": " "}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    let papers = json!({"status": "verified", "reason": "통신서비스 이용증명원 checked"});
    let (status, verified) = decide(&api, "demo", "0212345678", papers.clone()).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["status"], json!("verified"));
    let (status, sent) = send_from(&api, &demo, "02-1234-5678").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");

    // Held by demo: refused to the rival, and to anyone registering it now.
    let (status, reply) = decide(&api, "rival", "0212345678", papers.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    let (status, reply) = register(&api, &third, "02-1234-5678").await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    let (status, reply) = send_from(&api, &rival, "0212345678").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");

    // Suspended: it stops sending, and the customer cannot remove it to start over.
    let (status, _) = decide(
        &api,
        "demo",
        "0212345678",
        json!({"status": "suspended", "reason": "spam complaints"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = send_from(&api, &demo, "0212345678").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("suspended"));
    let (status, reply) = api
        .call(
            Method::DELETE,
            "/v1/sender-numbers/0212345678",
            Some(&demo),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    let (_, listed) = api
        .call(Method::GET, "/v1/sender-numbers", Some(&demo), None)
        .await;
    assert_eq!(listed["items"][0]["status"], json!("suspended"));
    assert_eq!(listed["items"][0]["reason"], json!("spam complaints"));
    // Still demo's while suspended.
    let (status, _) = decide(&api, "rival", "0212345678", papers.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Rejected: demo's claim is given up, and the rival's number can be verified.
    let (status, _) = decide(
        &api,
        "demo",
        "0212345678",
        json!({"status": "rejected", "reason": "the papers name another company"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, verified) = decide(&api, "rival", "0212345678", papers).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    let (status, sent) = send_from(&api, &rival, "0212345678").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    let (status, reply) = send_from(&api, &demo, "0212345678").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
}
