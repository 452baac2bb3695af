//! The webhook worker's HTTP client against a real receiver on loopback: a name that
//! resolves to a private address is refused before any connection (the receiver
//! gets nothing), the same name is delivered to when private addresses are allowed
//! (so it was the check that refused), and a redirect is answered, never followed.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use rns_analytics::webhooks::{receiver_client, without_url, WebhookSettings};

/// A receiver: `/moved` answers 307 to `/hook`, `/hook` answers 200; counts the
/// requests `/hook` got.
async fn receiver() -> (u16, Arc<AtomicUsize>) {
    let hooked = Arc::new(AtomicUsize::new(0));
    let counter = hooked.clone();
    let app = Router::new()
        .route(
            "/moved",
            post(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/hook")],
                )
            }),
        )
        .route(
            "/hook",
            post(move || {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hooked)
}

fn settings(allow_private: bool) -> WebhookSettings {
    WebhookSettings {
        allow_private,
        hosts: BTreeMap::from([("receiver.test".to_owned(), "127.0.0.1".parse().unwrap())]),
        ..WebhookSettings::default()
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_and_reaches_nothing() {
    let (port, hooked) = receiver().await;
    let url = format!("http://receiver.test:{port}/hook");

    let refused = receiver_client(&settings(false))
        .unwrap()
        .post(&url)
        .send()
        .await
        .expect_err("a loopback receiver is refused");
    let reason = without_url(&refused);
    assert!(
        reason.contains("receiver.test resolves to 127.0.0.1, which is not a public address"),
        "{reason}"
    );
    assert_eq!(
        hooked.load(Ordering::SeqCst),
        0,
        "nothing reached the receiver"
    );

    // The same name with private addresses allowed is delivered: the check refused it.
    let answer = receiver_client(&settings(true))
        .unwrap()
        .post(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(hooked.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_redirect_is_answered_and_never_followed() {
    let (port, hooked) = receiver().await;
    let answer = receiver_client(&settings(true))
        .unwrap()
        .post(format!("http://receiver.test:{port}/moved"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        hooked.load(Ordering::SeqCst),
        0,
        "the redirect's target was not requested"
    );
}
