//! Secrets never reach the logs: after a full scenario with every service logging at
//! debug — customers and keys made, a key rotated, a webhook with its secret, 080
//! line keys, sends delivered through SMPP carriers (with their passwords) and HTTP
//! carriers (with their receipt tokens), a wrong key tried — no service's log holds
//! an API key, the admin key, a webhook secret, a line key, a receipt token or an
//! SMPP password. The same logs hold the scenario's debug lines and its request id,
//! so they were written and read.
use std::time::Duration;

use reqwest::Method;
use rns_e2e::{count, System, SystemOptions, ADMIN_KEY};
use rns_testkit::wait_until;
use serde_json::json;

const SERVICES: [&str; 4] = [
    "rns-gateway",
    "rns-dispatcher",
    "rns-carriers",
    "rns-analytics",
];
const WEBHOOK_SECRET: &str = "whsec-never-in-a-log-7f3a9c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_service_logs_a_secret_through_a_whole_scenario() {
    let system = System::start_with(SystemOptions {
        log_filter: "debug,async_nats=info,hyper=info,h2=info,reqwest=info,tower=info".to_owned(),
        smpp: true,
        ..SystemOptions::default()
    })
    .await;
    let first_key = system.customer("acme").await;
    let (status, named) = system
        .call(
            Method::POST,
            "/v1/api-keys",
            &first_key,
            Some(json!({"name": "app", "scopes": ["send", "read"]})),
        )
        .await;
    assert_eq!(status, 201, "{named}");
    let named_key = named["key"].as_str().unwrap().to_owned();
    let (status, rotated) = system
        .call(
            Method::POST,
            &format!("/v1/api-keys/{}/rotate", named["id"].as_str().unwrap()),
            &first_key,
            None,
        )
        .await;
    assert_eq!(status, 201, "{rotated}");
    let rotated_key = rotated["key"].as_str().unwrap().to_owned();
    let (status, _) = system
        .call(
            Method::PUT,
            "/v1/webhook",
            &first_key,
            Some(json!({"url": "http://127.0.0.1:9/hook", "secret": WEBHOOK_SECRET})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, numbers) = system
        .call(Method::GET, "/v1/sender-numbers", &first_key, None)
        .await;
    let line = numbers["items"][0]["opt_out_number"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, issued) = system
        .call(
            Method::POST,
            &format!("/v1/admin/opt-out-lines/{line}/key"),
            ADMIN_KEY,
            None,
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let line_key = issued["key"].as_str().unwrap().to_owned();
    let (status, _) = system
        .call(
            Method::POST,
            &format!("/v1/opt-out-lines/{line}/opt-outs"),
            &line_key,
            Some(json!({"recipient": "01099990000"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = system
        .call(Method::GET, "/v1/points", "rns_0badc0de_wrong", None)
        .await;
    assert_eq!(status, 401);

    // SMS by SMPP, AlimTalk by the HTTP carriers with their receipt tokens.
    let (status, sms) = system
        .call(
            Method::POST,
            "/v1/messages",
            &rotated_key,
            Some(
                json!({"from": "0212345678", "to": ["01012345678", "01012345679"], "text": "비밀"}),
            ),
        )
        .await;
    assert_eq!(status, 202, "{sms}");
    let (status, alimtalk) = system
        .call(
            Method::POST,
            "/v1/messages",
            &first_key,
            Some(
                json!({"channel": "alimtalk", "from": "0212345678", "to": ["01012345670"],
                        "text": "알림", "alimtalk": {"template_code": "secret-test"}}),
            ),
        )
        .await;
    assert_eq!(status, 202, "{alimtalk}");
    for accepted in [&sms, &alimtalk] {
        let request = accepted["request_id"].as_str().unwrap();
        let total = accepted["recipients"].as_u64().unwrap();
        system
            .wait_for_request(&first_key, request, Duration::from_secs(60), |summary| {
                count(&summary["by_status"], "delivered") == total
            })
            .await;
    }
    let trace = sms["request_id"].as_str().unwrap().to_owned();
    wait_until(
        "the webhook worker trying the receiver",
        Duration::from_secs(20),
        || async {
            let (_, attempts) = system
                .call(Method::GET, "/v1/webhook/deliveries", &first_key, None)
                .await;
            attempts["items"]
                .as_array()
                .is_some_and(|items| !items.is_empty())
        },
    )
    .await;

    // A person signs up and in: their password and session cookie stay unlogged.
    const PASSWORD: &str = "correct horse battery staple";
    let (status, person) = system
        .call(
            Method::POST,
            "/v1/auth/signup",
            "",
            Some(
                json!({"email": "kim@example.com", "password": PASSWORD, "name": "김",
                        "phone": "010-4444-0002", "company": "민수 마트"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{person}");
    let csrf = person["csrf_token"].as_str().unwrap().to_owned();
    let signed_in = reqwest::Client::new()
        .post(format!("{}/v1/auth/signin", system.gateway_url()))
        .json(&json!({"email": "kim@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let session = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("rns_session=")
        .to_owned();

    let secrets = [
        ("a console password", PASSWORD),
        ("a session cookie", session.as_str()),
        ("a CSRF token", csrf.as_str()),
        ("the first API key", first_key.as_str()),
        ("a named API key", named_key.as_str()),
        ("a rotated API key", rotated_key.as_str()),
        ("the admin key", ADMIN_KEY),
        ("the webhook secret", WEBHOOK_SECRET),
        ("the 080 line's key", line_key.as_str()),
        ("a receipt token", "-e2e-receipts"),
        ("an SMPP password", "\"secret\""),
        ("an SMPP password", "password=secret"),
    ];
    for service in SERVICES {
        assert!(
            !system.log_lines_with(service, "DEBUG").is_empty(),
            "{service} logged the scenario at debug"
        );
        for (what, secret) in secrets {
            let leaked = system.log_lines_with(service, secret);
            assert!(leaked.is_empty(), "{service} logged {what}:\n{leaked}");
        }
    }
    assert!(
        !system.log_lines_with("rns-gateway", &trace).is_empty()
            || !system.log_lines_with("rns-dispatcher", &trace).is_empty(),
        "the send itself was logged"
    );
}
