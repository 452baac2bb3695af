//! Every service serves Prometheus metrics that describe what it did: a send of a
//! known size shows up in each stage's counters, and consumer lag is reported.
use std::time::{Duration, Instant};

use reqwest::Method;
use rns_e2e::{count, Service, System};
use serde_json::json;

/// The value of the first series of `name` whose line contains every label given.
fn value(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.starts_with(name)
                && line[name.len()..].starts_with(['{', ' '])
                && labels.iter().all(|label| line.contains(label))
        })
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stage_counts_what_it_did() {
    let system = System::start().await;
    let key = system.customer("acme").await;
    system.set_sms_weights(&key, json!({"kt": 1})).await;
    let to: Vec<String> = (0..25).map(|index| format!("0105555{index:04}")).collect();
    let (status, accepted) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(json!({"from": "0212345678", "to": to, "text": "metrics"})),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    system
        .wait_for_request(
            &key,
            accepted["request_id"].as_str().unwrap(),
            Duration::from_secs(30),
            |summary| count(&summary["by_status"], "delivered") == 25,
        )
        .await;

    let gateway = system.metrics(Service::Gateway).await;
    assert_eq!(
        value(
            &gateway,
            "rns_gateway_messages_accepted_total",
            &["channel=\"sms\""]
        ),
        Some(25.0),
        "{gateway}"
    );
    assert_eq!(
        value(&gateway, "rns_gateway_send_message_size_count", &[]),
        Some(1.0),
        "{gateway}"
    );
    assert!(
        value(
            &gateway,
            "rns_http_requests_total",
            &[
                "route=\"/v1/messages\"",
                "method=\"POST\"",
                "status=\"202\""
            ]
        ) >= Some(1.0),
        "{gateway}"
    );
    assert!(value(
        &gateway,
        "rns_http_request_duration_seconds_count",
        &["route=\"/v1/messages\""]
    )
    .is_some());

    let dispatcher = system.metrics(Service::Dispatcher).await;
    assert_eq!(
        value(
            &dispatcher,
            "rns_dispatcher_messages_routed_total",
            &["carrier=\"kt\""]
        ),
        Some(25.0),
        "{dispatcher}"
    );
    assert_eq!(
        value(
            &dispatcher,
            "rns_dispatcher_requests_total",
            &["outcome=\"dispatched\""]
        ),
        Some(1.0)
    );

    let carriers = system.metrics(Service::Carriers).await;
    assert_eq!(
        value(
            &carriers,
            "rns_carrier_submits_total",
            &["carrier=\"kt\"", "outcome=\"delivered\""]
        ),
        Some(25.0),
        "{carriers}"
    );
    assert_eq!(
        value(
            &carriers,
            "rns_carrier_submit_duration_seconds_count",
            &["carrier=\"kt\""]
        ),
        Some(25.0)
    );

    // Lag gauges are refreshed every 5 s; everything was consumed.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let analytics = system.metrics(Service::Analytics).await;
        let rows = value(
            &analytics,
            "rns_analytics_rows_inserted_total",
            &["table=\"messages\""],
        );
        let lag = value(
            &analytics,
            "rns_consumer_pending_messages",
            &["stream=\"RESULTS\"", "consumer=\"analytics\""],
        );
        if rows == Some(25.0) && lag == Some(0.0) {
            assert!(
                value(&analytics, "rns_analytics_batch_size_count", &[]) >= Some(1.0),
                "{analytics}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows {rows:?}, lag {lag:?}:\n{analytics}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let carriers = system.metrics(Service::Carriers).await;
    assert_eq!(
        value(
            &carriers,
            "rns_consumer_pending_messages",
            &["stream=\"CARRIER_KT\""]
        ),
        Some(0.0),
        "{carriers}"
    );
}
