//! Scheduled sends with the real binaries: a one-time schedule fires within a second
//! of its time, a cancelled one never fires and returns its points, a recurring one
//! fires the expected number of times and pays per firing, and a schedule due while
//! every RNS service is stopped fires when they are back.
use std::time::{Duration, Instant};

use reqwest::Method;
use rns_e2e::{count, Service, System};
use serde_json::{json, Value};

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn rfc3339(milliseconds: u64) -> String {
    rns_types::time::rfc3339(milliseconds)
}

async fn schedule(system: &System, key: &str, body: Value) -> Value {
    let (status, answer) = system
        .call(Method::POST, "/v1/messages", key, Some(body))
        .await;
    assert_eq!(status, 202, "{answer}");
    answer
}

async fn schedule_state(system: &System, key: &str, id: &str) -> Value {
    let (status, record) = system
        .call(Method::GET, &format!("/v1/schedules/{id}"), key, None)
        .await;
    assert_eq!(status, 200, "{record}");
    record
}

/// Polls the schedule until `done` holds or `timeout` passes; returns the last view.
async fn wait_for_schedule(
    system: &System,
    key: &str,
    id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let record = schedule_state(system, key, id).await;
        if done(&record) || Instant::now() > deadline {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn points(system: &System, key: &str) -> Value {
    system.call(Method::GET, "/v1/points", key, None).await.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_time_schedule_fires_on_time_and_a_cancelled_one_never_does() {
    let system = System::start().await;
    let key = system.customer_with_points("acme", 10).await;
    let at = (now_ms() / 1_000 + 3) * 1_000;
    let answer = schedule(
        &system,
        &key,
        json!({"from": "0212345678", "to": ["01012340001"], "text": "예약 발송", "scheduled_at": rfc3339(at)}),
    )
    .await;
    assert_eq!(answer["state"], "scheduled");
    let schedule_id = answer["schedule_id"].as_str().unwrap().to_owned();
    let message_id = answer["message_ids"][0].as_str().unwrap().to_owned();
    let cancelled = schedule(
        &system,
        &key,
        json!({"from": "0212345678", "to": ["01012340002"], "text": "취소될 예약", "scheduled_at": rfc3339(at)}),
    )
    .await;
    assert_eq!(
        points(&system, &key).await["reserved"],
        2,
        "both reserved at scheduling"
    );
    let (status, view) = system
        .call(
            Method::DELETE,
            &format!(
                "/v1/schedules/{}",
                cancelled["schedule_id"].as_str().unwrap()
            ),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], "cancelled");
    assert_eq!(
        points(&system, &key).await["reserved"],
        1,
        "the cancel returned its points"
    );

    let summary = system
        .wait_for_request(
            &key,
            answer["request_id"].as_str().unwrap(),
            Duration::from_secs(20),
            |summary| count(&summary["by_status"], "delivered") == 1,
        )
        .await;
    assert_eq!(summary["by_status"], json!({"delivered": 1}));
    let (_, message) = system.message(&key, &message_id).await;
    let routed_at =
        rns_types::time::parse_rfc3339(message["events"][0]["at"].as_str().unwrap()).unwrap();
    assert!(routed_at >= at, "fired {} ms early", at - routed_at);
    assert!(routed_at < at + 1_000, "fired {} ms late", routed_at - at);
    let record = wait_for_schedule(
        &system,
        &key,
        &schedule_id,
        Duration::from_secs(5),
        |record| record["state"] == "done",
    )
    .await;
    assert_eq!(
        (record["state"].as_str(), record["fires"].as_u64()),
        (Some("done"), Some(1))
    );

    // The cancelled one never fires, even well after its time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = system
        .call(
            Method::GET,
            &format!("/v1/requests/{}", cancelled["request_id"].as_str().unwrap()),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 404, "nothing of the cancelled schedule was sent");
    let received: u64 = [
        system.simulator_counts("kt").await,
        system.simulator_counts("skt").await,
        system.simulator_counts("lgu").await,
    ]
    .iter()
    .map(|counts| count(counts, "received"))
    .sum();
    assert_eq!(received, 1);
    let account = points(&system, &key).await;
    assert_eq!(
        (account["balance"].as_i64(), account["spent"].as_i64()),
        (Some(9), Some(1)),
        "{account}"
    );
    // Cancelling twice is harmless; cancelling what already fired is 409.
    let (status, _) = system
        .call(
            Method::DELETE,
            &format!("/v1/schedules/{schedule_id}"),
            &key,
            None,
        )
        .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_schedule_fires_each_interval_until_its_end_and_pays_per_firing() {
    let system = System::start().await;
    // Enough for two firings of one SMS: the rest are recorded as failed firings.
    let key = system.customer_with_points("acme", 2).await;
    let start = now_ms();
    let answer = schedule(
        &system,
        &key,
        json!({"from": "0212345678", "to": ["01012340003"], "text": "매초 알림",
               "recurrence": {"every": "1s", "until": rfc3339(start + 4_700)}}),
    )
    .await;
    let id = answer["schedule_id"].as_str().unwrap().to_owned();
    assert_eq!(answer["state"], "scheduled");
    assert_eq!(
        points(&system, &key).await["reserved"],
        0,
        "recurring pays at firing"
    );
    let record = wait_for_schedule(&system, &key, &id, Duration::from_secs(15), |record| {
        record["state"] == "done"
    })
    .await;
    assert_eq!(record["state"], "done", "{record}");
    // One firing per second for 4.7 s: 4, or 5 when the server's whole-second ticks
    // fall so that the first is less than 0.7 s after the schedule was made.
    let total = record["fires"].as_u64().unwrap() + record["failed_fires"].as_u64().unwrap();
    assert!(
        (4..=5).contains(&total),
        "one firing per second until the end: {record}"
    );
    let until =
        rns_types::time::parse_rfc3339(record["recurrence"]["until"].as_str().unwrap()).unwrap();
    let failed_at: Vec<u64> = record["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|failure| rns_types::time::parse_rfc3339(failure["at"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        failed_at.iter().all(|at| *at <= until),
        "none after the end: {record}"
    );
    assert!(
        failed_at
            .windows(2)
            .all(|pair| (950..=1_050).contains(&(pair[1] - pair[0]))),
        "a second apart: {record}"
    );
    assert_eq!(record["fires"], 2, "{record}");
    let reason = record["failures"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("needs 1 points"), "{record}");
    // Nothing fires after the end.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = schedule_state(&system, &key, &id).await;
    assert_eq!(later["fires"], record["fires"]);
    assert_eq!(later["failed_fires"], record["failed_fires"]);
    // Two requests were sent and paid for; the ledger balances.
    let mut account = points(&system, &key).await;
    for _ in 0..50 {
        if account["reserved"] == json!(0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        account = points(&system, &key).await;
    }
    assert_eq!(
        (account["balance"].as_i64(), account["spent"].as_i64()),
        (Some(0), Some(2)),
        "{account}"
    );
    let (_, listed) = system
        .call(Method::GET, "/v1/schedules?state=done", &key, None)
        .await;
    assert_eq!(listed["items"][0]["id"], json!(id));

    // A count ends a recurrence too: three firings (failed ones count: the points
    // are spent now), then done.
    let counted = schedule(
        &system,
        &key,
        json!({"from": "0212345678", "to": ["01012340003"], "text": "세 번",
               "recurrence": {"every": "1s", "count": 3}}),
    )
    .await;
    let counted_id = counted["schedule_id"].as_str().unwrap().to_owned();
    assert_eq!(counted["recurrence"]["count"], json!(3), "{counted}");
    let record = wait_for_schedule(
        &system,
        &key,
        &counted_id,
        Duration::from_secs(15),
        |record| record["state"] == "done",
    )
    .await;
    assert_eq!(record["state"], "done", "{record}");
    assert_eq!(
        record["fires"].as_u64().unwrap() + record["failed_fires"].as_u64().unwrap(),
        3,
        "{record}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_due_while_every_service_is_down_fires_when_they_return() {
    let mut system = System::start().await;
    let key = system.customer("acme").await;
    let at = (now_ms() / 1_000 + 3) * 1_000;
    let answer = schedule(
        &system,
        &key,
        json!({"from": "0212345678", "to": ["01012340004"], "text": "아무도 없을 때", "scheduled_at": rfc3339(at)}),
    )
    .await;
    for service in Service::ALL {
        assert!(system.terminate(service, Duration::from_secs(15)));
    }
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()) + 2_000)).await;
    for service in Service::ALL {
        system.start_service(service).await;
    }
    let summary = system
        .wait_for_request(
            &key,
            answer["request_id"].as_str().unwrap(),
            Duration::from_secs(30),
            |summary| count(&summary["by_status"], "delivered") == 1,
        )
        .await;
    assert_eq!(summary["by_status"], json!({"delivered": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_schedules_firings_count_against_the_daily_cap() {
    let system = System::start().await;
    let key = system.customer_with_points("acme", 100).await;
    let (status, limits) = system
        .call(
            Method::PUT,
            "/v1/admin/customers/acme/limits",
            rns_e2e::ADMIN_KEY,
            Some(json!({"daily_messages": 5})),
        )
        .await;
    assert_eq!(status, 200, "{limits}");
    // Two messages a firing, three firings: the third would make six of five.
    let answer = schedule(
        &system,
        &key,
        json!({"from": "0212345678", "to": ["01012340005", "01012340006"], "text": "매초",
               "recurrence": {"every": "1s", "count": 3}}),
    )
    .await;
    let id = answer["schedule_id"].as_str().unwrap().to_owned();
    let record = wait_for_schedule(&system, &key, &id, Duration::from_secs(15), |record| {
        record["state"] == "done"
    })
    .await;
    assert_eq!(
        (record["fires"].as_u64(), record["failed_fires"].as_u64()),
        (Some(2), Some(1)),
        "{record}"
    );
    let reason = record["failures"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("daily cap of 5"), "{record}");
    // The day's count includes the firings: a send now of two passes it too.
    let (status, refused) = system
        .call(
            Method::POST,
            "/v1/messages",
            &key,
            Some(
                json!({"from": "0212345678", "to": ["01012340007", "01012340008"], "text": "지금"}),
            ),
        )
        .await;
    assert_eq!(status, 429, "{refused}");
    assert_eq!(refused["error"]["code"], json!("daily_cap_reached"));
    // Only the paid firings were charged.
    rns_testkit::wait_until("the firings settle", Duration::from_secs(20), || async {
        let account = points(&system, &key).await;
        account["reserved"] == json!(0) && account["spent"] == json!(4)
    })
    .await;
}
