//! The gateway under test: the real router over a real nats-server and redis-server,
//! driven with `oneshot` requests.
#![allow(dead_code)]
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use rns_gateway::{app, AppState, GatewaySettings, Settings};
use rns_nats::Topology;
use rns_service::{NatsSettings, RedisSettings};
use rns_testkit::{NatsServer, RedisServer};
use rns_types::wire::SendRequest;
use rns_types::CarrierCatalog;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const ADMIN_KEY: &str = "test-admin-key";

pub struct Api {
    server: NatsServer,
    redis: RedisServer,
    router: Router,
    jetstream: async_nats::jetstream::Context,
    /// Stops the gateway's reader of messages from handsets.
    shutdown: tokio_util::sync::CancellationToken,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Api {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the test's changes to the settings.
    pub async fn start_with(configure: impl FnOnce(&mut Settings)) -> Self {
        let server = NatsServer::start().await;
        let redis = RedisServer::start().await;
        let mut settings = Settings {
            nats: NatsSettings {
                url: server.url(),
                ..Default::default()
            },
            redis: RedisSettings { url: redis.url() },
            gateway: GatewaySettings {
                admin_key: ADMIN_KEY.into(),
                max_recipients: 100,
                ..Default::default()
            },
            ..Default::default()
        };
        configure(&mut settings);
        let client = server.client().await;
        let jetstream = async_nats::jetstream::new(client.clone());
        let carriers = CarrierCatalog::korean_default()
            .entries()
            .iter()
            .map(|entry| entry.id.clone())
            .collect();
        Topology::new(settings.nats.topology.clone(), carriers)
            .ensure(&jetstream)
            .await
            .unwrap();
        let state = AppState::connect(&settings, client).await.unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(rns_gateway::inbound::run(state.clone(), shutdown.clone()));
        Self {
            server,
            redis,
            router: app(state),
            jetstream,
            shutdown,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|value| value.to_string());
        self.call_raw(method, uri, key, body).await
    }

    pub async fn call_raw(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = self.call_with_headers(method, uri, key, &[], body).await;
        (status, value)
    }

    pub async fn call_with_headers(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    /// The Redis the gateway uses, for what a test plays the dispatcher's part in.
    pub fn redis_url(&self) -> String {
        self.redis.url()
    }

    pub fn jetstream(&self) -> &async_nats::jetstream::Context {
        &self.jetstream
    }

    /// The NATS server, to take down and bring back.
    /// The nats-server, to freeze and thaw while a request borrows the API.
    pub fn frozen_nats(&self) -> &NatsServer {
        &self.server
    }

    pub fn nats(&mut self) -> &mut NatsServer {
        &mut self.server
    }

    /// Creates a customer with a verified sender number (see
    /// [`Gateway::customer_with_points`]); returns its API key.
    pub async fn customer(&self, id: &str) -> String {
        self.customer_with_points(id, 1_000_000).await
    }

    /// Creates a customer with a verified sender number and `points`. The number is
    /// 02-1234-5678, or `rns_testkit::sender_for(id)` once another customer of the
    /// test verified that one.
    pub async fn customer_with_points(&self, id: &str, points: u64) -> String {
        let key = self.bare_customer(id).await;
        let sender = match self.register_sender(&key, "02-1234-5678").await {
            StatusCode::CREATED => "02-1234-5678".to_owned(),
            _ => {
                let own = rns_testkit::sender_for(id);
                assert_eq!(self.register_sender(&key, &own).await, StatusCode::CREATED);
                own
            }
        };
        self.approve_sender(id, &sender).await;
        if points > 0 {
            self.top_up(id, points).await;
        }
        key
    }

    /// Creates customer `id` without sender numbers or points; returns its API key.
    pub async fn bare_customer(&self, id: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/admin/customers",
                Some(ADMIN_KEY),
                Some(json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["api_key"].as_str().unwrap().to_owned()
    }

    /// Registers `sender` (pending) with the customer's `key`; a 409 means another
    /// customer holds it.
    pub async fn register_sender(&self, key: &str, sender: &str) -> StatusCode {
        let (status, body) = self
            .call(
                Method::POST,
                "/v1/sender-numbers",
                Some(key),
                Some(json!({"number": sender})),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "{status} {body}"
        );
        status
    }

    /// Verifies customer `id`'s `sender` as the operator does.
    pub async fn approve_sender(&self, id: &str, sender: &str) {
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/v1/admin/customers/{id}/sender-numbers/{sender}"),
                Some(ADMIN_KEY),
                Some(json!({"status": "verified", "reason": "registration papers checked"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Adds `amount` points to customer `id`.
    pub async fn top_up(&self, id: &str, amount: u64) {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/v1/admin/customers/{id}/points"),
                Some(ADMIN_KEY),
                Some(json!({"amount": amount})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// The subjects holding message schedules in `SCHEDULES`.
    pub async fn schedule_subjects(&self) -> Vec<String> {
        use futures::StreamExt;
        let stream = self.jetstream.get_stream("SCHEDULES").await.unwrap();
        let mut subjects = stream.info_with_subjects("sched.>").await.unwrap();
        let mut found = Vec::new();
        while let Some(subject) = subjects.next().await {
            found.push(subject.unwrap().0);
        }
        found
    }

    /// The requests waiting in `SEND`, in order.
    pub async fn queued_sends(&self) -> Vec<SendRequest> {
        self.queued_send_messages()
            .await
            .into_iter()
            .flat_map(|(_, requests)| requests)
            .collect()
    }

    /// The messages waiting in `SEND`: each one's `Nats-Msg-Id` and the requests it
    /// holds (one, or several gathered).
    pub async fn queued_send_messages(&self) -> Vec<(String, Vec<SendRequest>)> {
        let mut stream = self.jetstream.get_stream("SEND").await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut messages = Vec::new();
        for sequence in state.first_sequence..state.first_sequence + state.messages {
            let message = stream.get_raw_message(sequence).await.unwrap();
            let id = message
                .headers
                .get("Nats-Msg-Id")
                .map(|value| value.to_string())
                .unwrap_or_default();
            let requests = rns_types::wire::SendPayload::decode(&message.payload)
                .unwrap()
                .into_requests();
            messages.push((id, requests));
        }
        messages
    }
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}
