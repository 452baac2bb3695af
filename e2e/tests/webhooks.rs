//! Status webhooks with the real binaries and a real HTTP receiver: settings are
//! validated; every final state arrives signed; a receiver that fails gets the same
//! delivery again until it answers; retries survive the webhook worker (the analytics
//! process) being killed; a receiver that hangs does not hold up another customer's;
//! a receiver whose name resolves to loopback gets nothing (server-side request
//! forgery refused at delivery).
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use reqwest::Method;
use rns_e2e::{Service, System, SystemOptions};
use rns_testkit::wait_until;
use serde_json::{json, Value};

const SECRET: &str = "a-secret-of-24-characters";

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    delivery: String,
    signature: String,
    body: Bytes,
    answered: StatusCode,
}

/// A webhook receiver: answers 500 while `failures` is above zero (counting down),
/// sleeps 5 s on `/hang/…`, records everything.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
}

impl Receiver {
    async fn start() -> (Self, String) {
        let receiver = Self::default();
        let app = Router::new()
            .route("/{kind}/{customer}", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Message ids of the final events delivered (answered 200) on `path`.
    fn delivered_messages(&self, path: &str) -> BTreeSet<String> {
        self.received()
            .iter()
            .filter(|received| received.path == path && received.answered == StatusCode::OK)
            .flat_map(|received| {
                let body: Value = serde_json::from_slice(&received.body).unwrap();
                body["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|event| event["message_id"].as_str().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    async fn wait_for(&self, path: &str, messages: &BTreeSet<String>, within: Duration) {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.delivered_messages(path).is_superset(messages) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{path} never got {messages:?}; it got {:?}",
            self.received()
        );
    }
}

async fn receive(
    State(receiver): State<Receiver>,
    Path((kind, customer)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let answered =
        match receiver
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            }) {
            Ok(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Err(_) => StatusCode::OK,
        };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    receiver.received.lock().unwrap().push(Received {
        path: format!("/{kind}/{customer}"),
        delivery: header("x-rns-delivery"),
        signature: header("x-rns-signature"),
        body,
        answered,
    });
    if kind == "hang" {
        // Recorded when it arrived; the worker gives up on it after 2 s.
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    answered
}

async fn send(system: &System, key: &str, to: &[&str]) -> BTreeSet<String> {
    send_from(system, key, "0212345678", to).await
}

/// Sends from `from`, which must be the customer's verified number.
async fn send_from(system: &System, key: &str, from: &str, to: &[&str]) -> BTreeSet<String> {
    let (status, accepted) = system
        .call(
            Method::POST,
            "/v1/messages",
            key,
            Some(json!({"from": from, "to": to, "text": "webhook"})),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    accepted["message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect()
}

async fn set_webhook(system: &System, key: &str, url: &str) {
    let (status, body) = system
        .call(
            Method::PUT,
            "/v1/webhook",
            key,
            Some(json!({"url": url, "secret": SECRET})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_states_arrive_signed_and_retries_survive_a_worker_restart() {
    let mut system = System::start().await;
    let key = system.customer_with_points("acme", 100).await;
    let stranger = system.customer_with_points("stranger", 0).await;
    let (receiver, base) = Receiver::start().await;

    for (body, what) in [
        (
            json!({"url": "ftp://example.com/", "secret": SECRET}),
            "scheme",
        ),
        (
            json!({"url": format!("{base}/ok/acme"), "secret": "short"}),
            "secret",
        ),
        (json!({"url": format!("{base}/ok/acme")}), "missing secret"),
        (
            json!({"url": format!("{base}/ok/acme"), "secret": SECRET, "events": "some"}),
            "events",
        ),
    ] {
        let (status, answer) = system
            .call(Method::PUT, "/v1/webhook", &key, Some(body))
            .await;
        assert_eq!(status, 422, "{what}: {answer}");
    }
    let (status, _) = system.call(Method::GET, "/v1/webhook", &key, None).await;
    assert_eq!(status, 404, "no webhook yet");
    set_webhook(&system, &key, &format!("{base}/ok/acme")).await;
    let (status, shown) = system.call(Method::GET, "/v1/webhook", &key, None).await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["events"], json!("final"));
    assert!(
        shown.get("secret").is_none(),
        "the secret is never shown: {shown}"
    );
    let (status, _) = system
        .call(Method::GET, "/v1/webhook", &stranger, None)
        .await;
    assert_eq!(status, 404);

    // The receiver fails the first two POSTs; every message still arrives.
    receiver.failures.store(2, Ordering::SeqCst);
    let first = send(
        &system,
        &key,
        &["01011110001", "01011110002", "01011110003"],
    )
    .await;
    receiver
        .wait_for("/ok/acme", &first, Duration::from_secs(30))
        .await;
    let received = receiver.received();
    for post in &received {
        assert!(
            rns_types::webhook::verify(SECRET, &post.signature, &post.body),
            "signature of {post:?}"
        );
        assert!(!rns_types::webhook::verify(
            "wrong-secret-0000",
            &post.signature,
            &post.body
        ));
    }
    // A failed delivery came again under the same id, and succeeded.
    let mut answers: HashMap<&str, Vec<StatusCode>> = HashMap::new();
    for post in &received {
        answers
            .entry(&post.delivery)
            .or_default()
            .push(post.answered);
    }
    assert!(
        answers.values().any(|statuses| statuses.first()
            == Some(&StatusCode::INTERNAL_SERVER_ERROR)
            && statuses.last() == Some(&StatusCode::OK)),
        "{answers:?}"
    );
    let body: Value = serde_json::from_slice(&received.last().unwrap().body).unwrap();
    assert_eq!(body["events"][0]["status"], json!("delivered"), "{body}");
    assert!(body["events"][0]["carrier"].is_string(), "{body}");

    let (status, attempts) = system
        .call(Method::GET, "/v1/webhook/deliveries?limit=100", &key, None)
        .await;
    assert_eq!(status, 200, "{attempts}");
    let items = attempts["items"].as_array().unwrap();
    let failed = items
        .iter()
        .filter(|item| item["outcome"] == "failed")
        .collect::<Vec<_>>();
    assert_eq!(failed.len(), 2, "{attempts}");
    assert!(failed
        .iter()
        .all(|item| item["status"] == json!(500) && item["next_attempt_at"].is_string()));
    // One delivery may carry several messages' events (the carriers publish the
    // outcomes of concurrent jobs together); together they carry all three.
    let delivered_events: u64 = items
        .iter()
        .filter(|item| item["outcome"] == "delivered")
        .filter_map(|item| item["events"].as_u64())
        .sum();
    assert!(delivered_events >= 3, "{attempts}");
    let (_, theirs) = system
        .call(Method::GET, "/v1/webhook/deliveries", &stranger, None)
        .await;
    assert_eq!(theirs["items"], json!([]), "{theirs}");

    // Retries wait in JetStream while the worker is down, and arrive after it returns.
    receiver.failures.store(usize::MAX, Ordering::SeqCst);
    let second = send(&system, &key, &["01011110004", "01011110005"]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while receiver
        .received()
        .iter()
        .filter(|post| post.answered != StatusCode::OK)
        .count()
        < 2 + 2
    {
        assert!(
            Instant::now() < deadline,
            "the new deliveries were never tried"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    system.kill(Service::Analytics);
    receiver.failures.store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    system.start_service(Service::Analytics).await;
    receiver
        .wait_for("/ok/acme", &second, Duration::from_secs(30))
        .await;

    // Deleting the webhook stops it.
    let (status, _) = system.call(Method::DELETE, "/v1/webhook", &key, None).await;
    assert_eq!(status, 204);
    let (status, _) = system.call(Method::DELETE, "/v1/webhook", &key, None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_up_another_customers_webhooks() {
    let system = System::start().await;
    let slow = system.customer_with_points("slow", 100).await;
    let quick = system.customer_with_points("quick", 100).await;
    let (receiver, base) = Receiver::start().await;
    set_webhook(&system, &slow, &format!("{base}/hang/slow")).await;
    set_webhook(&system, &quick, &format!("{base}/ok/quick")).await;
    let numbers: Vec<String> = (0..40).map(|index| format!("010222{index:05}")).collect();
    let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
    send(&system, &slow, &numbers).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The worker has 8 slots (see the test configuration) and the slow customer 40
    // hanging deliveries; without a per-customer limit they would fill every slot for
    // 2 s at a time, for 10 s.
    // quick has its own number: slow verified 02-1234-5678 first.
    let quick_messages = send_from(
        &system,
        &quick,
        &rns_e2e::sender_for("quick"),
        &["01033330001", "01033330002"],
    )
    .await;
    receiver
        .wait_for("/ok/quick", &quick_messages, Duration::from_secs(4))
        .await;
    assert!(
        receiver
            .received()
            .iter()
            .any(|post| post.path == "/hang/slow"),
        "the slow customer's receiver was being tried meanwhile"
    );
}

/// The reproduction of issue 17: a URL naming a host that resolves to 127.0.0.1 was
/// accepted and its deliveries arrived on loopback. Now it is refused at each
/// delivery (the attempt says why) and the receiver gets nothing; a literal
/// loopback address is refused when it is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_name_resolving_to_loopback_gets_no_delivery() {
    let system = System::start_with(SystemOptions {
        private_webhooks: false,
        webhook_hosts: vec![("receiver.test".to_owned(), "127.0.0.1".parse().unwrap())],
        ..SystemOptions::default()
    })
    .await;
    let key = system.customer_with_points("acme", 100).await;
    let (receiver, base) = Receiver::start().await;
    let port = base.rsplit(':').next().unwrap();

    let (status, refused) = system
        .call(
            Method::PUT,
            "/v1/webhook",
            &key,
            Some(json!({"url": format!("{base}/ok/acme"), "secret": SECRET})),
        )
        .await;
    assert_eq!(status, 422, "a literal loopback address: {refused}");
    set_webhook(
        &system,
        &key,
        &format!("http://receiver.test:{port}/ok/acme"),
    )
    .await;
    send(&system, &key, &["01012345678"]).await;

    let attempts = || async {
        let (_, attempts) = system
            .call(Method::GET, "/v1/webhook/deliveries", &key, None)
            .await;
        attempts["items"].as_array().cloned().unwrap_or_default()
    };
    wait_until(
        "the refused attempt recorded",
        Duration::from_secs(30),
        || async { !attempts().await.is_empty() },
    )
    .await;
    let attempt = attempts().await[0].clone();
    assert_eq!(attempt["outcome"], json!("failed"), "{attempt}");
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .contains("resolves to 127.0.0.1, which is not a public address"),
        "{attempt}"
    );
    assert!(attempt["status"].is_null(), "no answer: {attempt}");
    assert!(
        receiver.received().is_empty(),
        "nothing reached loopback: {:?}",
        receiver.received()
    );
}
