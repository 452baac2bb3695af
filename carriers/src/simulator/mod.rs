//! A carrier simulator: a real HTTP server speaking the HTTP carrier protocol, for
//! development, tests and benchmarks.
//!
//! Knobs, changeable at runtime with `PUT /v1/knobs`: `latency_milliseconds` before
//! answering, `transient_failure_rate` (500), `permanent_failure_rate` (400
//! `invalid_number`), `outage` (503 to everything), `tps_cap` (429 above that many
//! submits per second). Besides single submits it takes batches
//! (`POST /v1/messages/batch`, see [`crate::http`]). It de-duplicates by client reference like a careful carrier:
//! a reference already delivered is answered 200 with `"duplicate": true` and counted
//! in `duplicates`, never delivered twice. `GET /v1/counts` returns its counters and
//! `GET /v1/delivered` the delivered message ids: the ground truth that end-to-end
//! tests compare RNS's records against.
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::Rng;
use rns_types::PhoneNumber;
use serde::{Deserialize, Serialize};
use serde_json::json;

use base64::Engine;

use crate::http::{
    BatchSubmitAnswer, BatchSubmitRequest, BatchSubmitResponse, SubmitRequest, SubmitResponse,
    BATCH_SUBMIT_LIMIT,
};

/// The simulator's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    pub latency_milliseconds: u64,
    pub transient_failure_rate: f64,
    pub permanent_failure_rate: f64,
    pub outage: bool,
    pub tps_cap: Option<u32>,
}

/// What the simulator saw and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub received: u64,
    pub delivered: u64,
    pub duplicates: u64,
    pub transient_failures: u64,
    pub permanent_failures: u64,
    pub rate_limited: u64,
    pub outage_rejections: u64,
    /// MMS images in delivered messages.
    #[serde(default)]
    pub images: u64,
    /// Delivered AlimTalk messages that carried AlimTalk content.
    #[serde(default)]
    pub alimtalk: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    transient_failures: AtomicU64,
    permanent_failures: AtomicU64,
    rate_limited: AtomicU64,
    outage_rejections: AtomicU64,
    images: AtomicU64,
    alimtalk: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Counts {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Counts {
            received: read(&self.received),
            delivered: read(&self.delivered),
            duplicates: read(&self.duplicates),
            transient_failures: read(&self.transient_failures),
            permanent_failures: read(&self.permanent_failures),
            rate_limited: read(&self.rate_limited),
            outage_rejections: read(&self.outage_rejections),
            images: read(&self.images),
            alimtalk: read(&self.alimtalk),
        }
    }
}

#[derive(Debug)]
struct RateWindow {
    started: Instant,
    submits: u32,
}

/// The shared state of one simulated carrier.
#[derive(Debug, Clone)]
pub struct Simulator(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    name: String,
    knobs: RwLock<Knobs>,
    counters: Counters,
    /// Delivered client references (RNS message ids), for de-duplication and for
    /// `GET /v1/delivered`, the ground truth of who delivered what.
    delivered: Mutex<HashSet<String>>,
    rate_window: Mutex<RateWindow>,
}

impl Simulator {
    pub fn new(name: &str, knobs: Knobs) -> Self {
        Self(Arc::new(Inner {
            name: name.to_owned(),
            knobs: RwLock::new(knobs),
            counters: Counters::default(),
            delivered: Mutex::new(HashSet::new()),
            rate_window: Mutex::new(RateWindow {
                started: Instant::now(),
                submits: 0,
            }),
        }))
    }

    pub fn counts(&self) -> Counts {
        self.0.counters.snapshot()
    }

    pub fn set_knobs(&self, knobs: Knobs) {
        *self.0.knobs.write().expect("knobs lock is never poisoned") = knobs;
    }

    fn knobs(&self) -> Knobs {
        self.0
            .knobs
            .read()
            .expect("knobs lock is never poisoned")
            .clone()
    }

    fn over_rate(&self, cap: u32) -> bool {
        let mut window = self
            .0
            .rate_window
            .lock()
            .expect("rate lock is never poisoned");
        if window.started.elapsed() >= Duration::from_secs(1) {
            window.started = Instant::now();
            window.submits = 0;
        }
        window.submits += 1;
        window.submits > cap
    }
}

/// The simulator's HTTP API.
pub fn app(simulator: Simulator) -> Router {
    Router::new()
        .route("/healthz", get(health))
        .route("/v1/messages", post(submit))
        .route("/v1/messages/batch", post(submit_batch))
        .route("/v1/counts", get(counts))
        .route("/v1/delivered", get(delivered))
        .route("/v1/knobs", get(get_knobs).put(put_knobs))
        .with_state(simulator)
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let (status, body) = failure(status, code, message);
    (status, Json(body)).into_response()
}

async fn submit(
    State(simulator): State<Simulator>,
    Json(request): Json<SubmitRequest>,
) -> Response {
    simulator
        .0
        .counters
        .received
        .fetch_add(1, Ordering::Relaxed);
    let knobs = simulator.knobs();
    if knobs.latency_milliseconds > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.latency_milliseconds)).await;
    }
    let (status, body) = simulator.answer(&request, &knobs);
    (status, Json(body)).into_response()
}

/// `POST /v1/messages/batch`: up to [`BATCH_SUBMIT_LIMIT`] submits in one request,
/// each answered as its own submit would be. The latency knob applies once; an
/// outage refuses the whole request with 503.
async fn submit_batch(
    State(simulator): State<Simulator>,
    Json(batch): Json<BatchSubmitRequest>,
) -> Response {
    if batch.messages.len() > BATCH_SUBMIT_LIMIT {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            &format!("at most {BATCH_SUBMIT_LIMIT} messages per batch"),
        );
    }
    let counters = &simulator.0.counters;
    let count = batch.messages.len() as u64;
    counters.received.fetch_add(count, Ordering::Relaxed);
    let knobs = simulator.knobs();
    if knobs.latency_milliseconds > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.latency_milliseconds)).await;
    }
    if knobs.outage {
        counters
            .outage_rejections
            .fetch_add(count, Ordering::Relaxed);
        return error(StatusCode::SERVICE_UNAVAILABLE, "outage", "carrier is down");
    }
    let results = batch
        .messages
        .iter()
        .map(|request| {
            let (status, body) = simulator.answer(request, &knobs);
            BatchSubmitAnswer {
                http_status: status.as_u16(),
                body,
            }
        })
        .collect();
    Json(BatchSubmitResponse { results }).into_response()
}

fn failure(status: StatusCode, code: &str, message: &str) -> (StatusCode, serde_json::Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

impl Simulator {
    /// The answer to one submit (already counted as received): its HTTP status and
    /// JSON body.
    fn answer(&self, request: &SubmitRequest, knobs: &Knobs) -> (StatusCode, serde_json::Value) {
        let counters = &self.0.counters;
        if knobs.outage {
            counters.outage_rejections.fetch_add(1, Ordering::Relaxed);
            return failure(StatusCode::SERVICE_UNAVAILABLE, "outage", "carrier is down");
        }
        if knobs.tps_cap.is_some_and(|cap| self.over_rate(cap)) {
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return failure(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "submit rate over the contracted TPS",
            );
        }
        let reference = {
            let mut hasher = DefaultHasher::new();
            request.client_reference.hash(&mut hasher);
            format!("{}-{:016x}", self.0.name, hasher.finish())
        };
        let delivered = |duplicate| {
            let answer = SubmitResponse {
                status: "delivered".into(),
                carrier_reference: reference.clone(),
                duplicate,
            };
            (
                StatusCode::OK,
                serde_json::to_value(answer).expect("an answer serialises"),
            )
        };
        let already_delivered = self
            .0
            .delivered
            .lock()
            .expect("delivered lock is never poisoned")
            .contains(&request.client_reference);
        if already_delivered {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return delivered(true);
        }
        if let Err(reason) = check_content(request) {
            counters.permanent_failures.fetch_add(1, Ordering::Relaxed);
            return failure(StatusCode::BAD_REQUEST, "invalid_content", reason);
        }
        if PhoneNumber::parse_mobile(&request.to).is_err() {
            counters.permanent_failures.fetch_add(1, Ordering::Relaxed);
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_number",
                "not a mobile subscriber",
            );
        }
        let (transient, permanent) = {
            let mut random = rand::rng();
            (
                random.random_bool(knobs.transient_failure_rate.clamp(0.0, 1.0)),
                random.random_bool(knobs.permanent_failure_rate.clamp(0.0, 1.0)),
            )
        };
        if transient {
            counters.transient_failures.fetch_add(1, Ordering::Relaxed);
            return failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "temporary_failure",
                "try again",
            );
        }
        if permanent {
            counters.permanent_failures.fetch_add(1, Ordering::Relaxed);
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_number",
                "subscriber unknown",
            );
        }
        let first_delivery = self
            .0
            .delivered
            .lock()
            .expect("delivered lock is never poisoned")
            .insert(request.client_reference.clone());
        if first_delivery {
            counters.delivered.fetch_add(1, Ordering::Relaxed);
            counters
                .images
                .fetch_add(request.images.len() as u64, Ordering::Relaxed);
            if request.alimtalk.is_some() {
                counters.alimtalk.fetch_add(1, Ordering::Relaxed);
            }
        } else {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
        }
        delivered(!first_delivery)
    }
}

/// What a real carrier would refuse as malformed: an MMS without JPEG images, an
/// AlimTalk message without its template, images on a text message.
fn check_content(request: &SubmitRequest) -> Result<(), &'static str> {
    match request.message_type.as_str() {
        "mms" => {
            if request.images.is_empty() {
                return Err("an MMS needs at least one image");
            }
            for image in &request.images {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&image.data)
                    .map_err(|_| "image data is not base64")?;
                if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
                    return Err("image is not a JPEG");
                }
            }
            Ok(())
        }
        "alimtalk" if request.alimtalk.is_none() => Err("an AlimTalk message needs its template"),
        _ if !request.images.is_empty() => Err("only an MMS carries images"),
        _ => Ok(()),
    }
}

async fn counts(State(simulator): State<Simulator>) -> Json<Counts> {
    Json(simulator.counts())
}

/// Every client reference this carrier delivered, in no particular order.
async fn delivered(State(simulator): State<Simulator>) -> Json<Vec<String>> {
    let delivered = simulator
        .0
        .delivered
        .lock()
        .expect("delivered lock is never poisoned");
    Json(delivered.iter().cloned().collect())
}

/// `GET /healthz`: what a carrier's health URL says, the recovery probe's question.
/// It answers as slowly as a submit (`latency_milliseconds`) and 503 in an outage,
/// so a carrier is healthy exactly when a submit would be answered in time.
async fn health(State(simulator): State<Simulator>) -> Response {
    let knobs = simulator.knobs();
    if knobs.latency_milliseconds > 0 {
        tokio::time::sleep(Duration::from_millis(knobs.latency_milliseconds)).await;
    }
    if knobs.outage {
        return error(StatusCode::SERVICE_UNAVAILABLE, "outage", "carrier is down");
    }
    "ok".into_response()
}

async fn get_knobs(State(simulator): State<Simulator>) -> Json<Knobs> {
    Json(simulator.knobs())
}

async fn put_knobs(State(simulator): State<Simulator>, Json(knobs): Json<Knobs>) -> Json<Knobs> {
    tracing::info!(carrier = %simulator.0.name, ?knobs, "knobs changed");
    simulator.set_knobs(knobs.clone());
    Json(knobs)
}
