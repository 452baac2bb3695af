//! One message, one trace: the trace id of a send (the caller's `traceparent`, or
//! one the gateway starts and answers with) is in the logs of all four services —
//! the gateway accepting it, the dispatcher routing it, the carriers recording its
//! outcome and analytics recording its events — so a grep follows it.
use std::time::Duration;

use rns_e2e::{count, System, SystemOptions};
use rns_testkit::wait_until;
use serde_json::{json, Value};

const SERVICES: [&str; 4] = [
    "rns-gateway",
    "rns-dispatcher",
    "rns-carriers",
    "rns-analytics",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_trace_id_is_in_the_logs_of_every_service() {
    let system = System::start_with(SystemOptions {
        log_filter: "info,rns_gateway=debug,rns_dispatcher=debug,rns_carriers=debug,\
                     rns_analytics=debug"
            .to_owned(),
        ..SystemOptions::default()
    })
    .await;
    let key = system.customer("acme").await;
    let http = reqwest::Client::new();
    let send = |traceparent: Option<&'static str>| {
        let mut request = http
            .post(format!("{}/v1/messages", system.gateway_url()))
            .bearer_auth(&key)
            .json(&json!({"from": "0212345678", "to": ["01012345678"], "text": "추적"}));
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        request.send()
    };

    // The caller's trace goes on under a new span.
    let callers = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = send(Some(callers)).await.unwrap();
    assert_eq!(response.status(), 202);
    let answered = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        answered.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && answered != callers,
        "{answered}"
    );
    let accepted: Value = response.json().await.unwrap();
    let request_id = accepted["request_id"].as_str().unwrap().to_owned();
    system
        .wait_for_request(&key, &request_id, Duration::from_secs(30), |summary| {
            count(&summary["by_status"], "delivered") == 1
        })
        .await;
    for service in SERVICES {
        wait_until(
            &format!("{service} logging the trace"),
            Duration::from_secs(10),
            || async {
                !system
                    .log_lines_with(service, "4bf92f3577b34da6a3ce929d0e0e4736")
                    .is_empty()
            },
        )
        .await;
    }

    // Without one, the gateway starts a trace and says which.
    let response = send(None).await.unwrap();
    assert_eq!(response.status(), 202);
    let started = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    let trace_id = started.split('-').nth(1).unwrap().to_owned();
    assert_eq!(trace_id.len(), 32, "{started}");
    assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    for service in SERVICES {
        wait_until(
            &format!("{service} logging the started trace"),
            Duration::from_secs(30),
            || async { !system.log_lines_with(service, &trace_id).is_empty() },
        )
        .await;
    }
    let lines = system.log_lines_with("rns-carriers", &trace_id);
    assert!(lines.contains("outcome recorded"), "{lines}");
}
