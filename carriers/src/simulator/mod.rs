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
//! tests compare RNS's records against. `GET /v1/texts?to=<number>` lists what it took
//! for a handset among the last [`TEXTS_KEPT`] texts it took (what a person reads on
//! their phone: tests read verification codes there, since RNS records none).
//!
//! With the `receipts` knob set it works asynchronously, as most real carriers do: it
//! answers a submit it takes with `{"status":"accepted","carrier_reference"}`, decides
//! then what becomes of the message (`undeliverable_rate` of them never reach the
//! handset), and posts the receipt to `receipts.url` with `receipts.token` after
//! `delay_milliseconds` — gathered with other due receipts into one post, and posted
//! again until RNS answers 200. `loss_rate` of the receipts are never sent,
//! `duplicate_rate` are sent twice, and `early_rate` are posted before the submit is
//! answered. `GET /v1/receipts` lists what it decided and reported for each message.
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
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
use rns_types::receipt::{CarrierReceipt, ReceiptState};
use rns_types::PhoneNumber;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use base64::Engine;

use crate::http::{
    BatchSubmitAnswer, BatchSubmitRequest, BatchSubmitResponse, SubmitRequest, SubmitResponse,
    BATCH_SUBMIT_LIMIT, SUBMIT_ACCEPTED, SUBMIT_DELIVERED,
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
    /// Receipts posted later instead of final answers; none: answers `delivered`.
    pub receipts: Option<ReceiptKnobs>,
}

/// How the simulator reports delivery when it works asynchronously.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiptKnobs {
    /// Where receipts are posted: RNS's `…/v1/receipts/<carrier>`.
    pub url: String,
    /// The bearer token presented.
    pub token: String,
    pub delay_milliseconds: u64,
    pub loss_rate: f64,
    pub duplicate_rate: f64,
    pub early_rate: f64,
    pub undeliverable_rate: f64,
}

/// What the simulator decided for one message it accepted, and whether it reported
/// it: the ground truth of the receipts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptFate {
    pub client_reference: String,
    pub carrier_reference: String,
    pub state: ReceiptState,
    /// The receipt was never sent.
    pub lost: bool,
    /// When it accepted the message (ms since the epoch).
    pub accepted_at_ms: u64,
    /// When RNS first answered 200 to a post of its receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub posted_at_ms: Option<u64>,
}

/// Fates by client reference, shared with the receipt poster.
type Fates = Arc<Mutex<HashMap<String, ReceiptFate>>>;

/// Notes when RNS took the receipts of `client_references`.
fn mark_posted<'a>(fates: &Fates, client_references: impl IntoIterator<Item = &'a str>) {
    let now_ms = rns_types::time::now_milliseconds();
    let mut fates = fates.lock().expect("fates lock is never poisoned");
    for reference in client_references {
        if let Some(fate) = fates.get_mut(reference) {
            fate.posted_at_ms.get_or_insert(now_ms);
        }
    }
}

/// Receipts waiting to be posted, at most.
const RECEIPTS_WAITING: usize = 100_000;
/// Receipts in one post at most.
const RECEIPTS_PER_POST: usize = 500;

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
    /// Submits answered `accepted` (asynchronous mode).
    #[serde(default)]
    pub accepted: u64,
    /// Accepted messages that never reached the handset.
    #[serde(default)]
    pub undeliverable: u64,
    /// Receipts posted and answered 200 (each copy of a duplicate counts).
    #[serde(default)]
    pub receipts_posted: u64,
    #[serde(default)]
    pub receipts_lost: u64,
    #[serde(default)]
    pub receipts_duplicated: u64,
    #[serde(default)]
    pub receipts_early: u64,
    /// Receipt posts that failed (not answered, or not 200) and were made again.
    #[serde(default)]
    pub receipt_post_failures: u64,
    /// Receipts RNS refused (4xx): dropped, as a carrier would after a 4xx.
    #[serde(default)]
    pub receipts_refused: u64,
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
    accepted: AtomicU64,
    undeliverable: AtomicU64,
    receipts_posted: AtomicU64,
    receipts_lost: AtomicU64,
    receipts_duplicated: AtomicU64,
    receipts_early: AtomicU64,
    receipt_post_failures: AtomicU64,
    receipts_refused: AtomicU64,
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
            accepted: read(&self.accepted),
            undeliverable: read(&self.undeliverable),
            receipts_posted: read(&self.receipts_posted),
            receipts_lost: read(&self.receipts_lost),
            receipts_duplicated: read(&self.receipts_duplicated),
            receipts_early: read(&self.receipts_early),
            receipt_post_failures: read(&self.receipt_post_failures),
            receipts_refused: read(&self.receipts_refused),
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
    counters: Arc<Counters>,
    /// What it decided for each message it accepted, by client reference.
    fates: Fates,
    /// Receipts waiting for their time, read by the posting task.
    outbox: mpsc::Sender<PendingReceipt>,
    http: reqwest::Client,
    /// Delivered client references (RNS message ids), for de-duplication and for
    /// `GET /v1/delivered`, the ground truth of who delivered what.
    delivered: Mutex<HashSet<String>>,
    /// The last [`TEXTS_KEPT`] texts it took for delivery: (recipient, text).
    texts: Mutex<VecDeque<(String, String)>>,
    rate_window: Mutex<RateWindow>,
}

/// How many of the latest texts `GET /v1/texts` can show.
pub const TEXTS_KEPT: usize = 1_000;

impl Simulator {
    /// A simulator; its receipt poster runs on the current Tokio runtime until the
    /// simulator is dropped.
    pub fn new(name: &str, knobs: Knobs) -> Self {
        let counters = Arc::new(Counters::default());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client with these options builds");
        let (outbox, waiting) = mpsc::channel(RECEIPTS_WAITING);
        let fates = Fates::default();
        tokio::spawn(post_receipts(
            waiting,
            http.clone(),
            counters.clone(),
            fates.clone(),
        ));
        Self(Arc::new(Inner {
            name: name.to_owned(),
            knobs: RwLock::new(knobs),
            counters,
            fates,
            outbox,
            http,
            delivered: Mutex::new(HashSet::new()),
            texts: Mutex::new(VecDeque::with_capacity(TEXTS_KEPT)),
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
        .route("/v1/texts", get(texts))
        .route("/v1/receipts", get(receipts))
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
    let answer = simulator.answer(&request, &knobs);
    simulator
        .report_detached(answer.posting.into_iter().collect())
        .await;
    (answer.status, Json(answer.body)).into_response()
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
    let mut postings = Vec::new();
    let results = batch
        .messages
        .iter()
        .map(|request| {
            let answer = simulator.answer(request, &knobs);
            postings.extend(answer.posting);
            BatchSubmitAnswer {
                http_status: answer.status.as_u16(),
                body: serde_json::value::to_raw_value(&answer.body)
                    .expect("a JSON value serialises"),
            }
        })
        .collect();
    simulator.report_detached(postings).await;
    Json(BatchSubmitResponse { results }).into_response()
}

fn failure(status: StatusCode, code: &str, message: &str) -> (StatusCode, serde_json::Value) {
    (status, json!({"error": {"code": code, "message": message}}))
}

/// A submit's answer: its HTTP status and JSON body, and the receipt it leads to
/// in asynchronous mode.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    posting: Option<Posting>,
}

impl From<(StatusCode, serde_json::Value)> for Answer {
    fn from((status, body): (StatusCode, serde_json::Value)) -> Self {
        Self {
            status,
            body,
            posting: None,
        }
    }
}

/// A receipt to post, and how.
struct Posting {
    client_reference: String,
    knobs: ReceiptKnobs,
    receipt: CarrierReceipt,
    /// Posted before the submit is answered.
    early: bool,
    /// Posted twice.
    duplicate: bool,
}

/// A receipt waiting for its time.
struct PendingReceipt {
    client_reference: String,
    due: tokio::time::Instant,
    url: String,
    token: String,
    receipt: CarrierReceipt,
}

fn taken(status: &str, carrier_reference: String, duplicate: bool) -> Answer {
    let answer = SubmitResponse {
        status: status.to_owned(),
        carrier_reference,
        duplicate,
    };
    Answer::from((
        StatusCode::OK,
        serde_json::to_value(answer).expect("an answer serialises"),
    ))
}

impl Simulator {
    /// The answer to one submit (already counted as received).
    fn answer(&self, request: &SubmitRequest, knobs: &Knobs) -> Answer {
        let counters = &self.0.counters;
        if knobs.outage {
            counters.outage_rejections.fetch_add(1, Ordering::Relaxed);
            return failure(StatusCode::SERVICE_UNAVAILABLE, "outage", "carrier is down").into();
        }
        if knobs.tps_cap.is_some_and(|cap| self.over_rate(cap)) {
            counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return failure(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "submit rate over the contracted TPS",
            )
            .into();
        }
        let reference = {
            let mut hasher = DefaultHasher::new();
            request.client_reference.hash(&mut hasher);
            format!("{}-{:016x}", self.0.name, hasher.finish())
        };
        // A repeat of a message it accepted earlier: the same answer, nothing new.
        if self.lock_fates().contains_key(&request.client_reference) {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return taken(SUBMIT_ACCEPTED, reference, true);
        }
        let already_delivered = self
            .0
            .delivered
            .lock()
            .expect("delivered lock is never poisoned")
            .contains(&request.client_reference);
        if already_delivered {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            return taken(SUBMIT_DELIVERED, reference, true);
        }
        if let Err(reason) = check_content(request) {
            counters.permanent_failures.fetch_add(1, Ordering::Relaxed);
            return failure(StatusCode::BAD_REQUEST, "invalid_content", reason).into();
        }
        if PhoneNumber::parse_mobile(&request.to).is_err() {
            counters.permanent_failures.fetch_add(1, Ordering::Relaxed);
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_number",
                "not a mobile subscriber",
            )
            .into();
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
            )
            .into();
        }
        if permanent {
            counters.permanent_failures.fetch_add(1, Ordering::Relaxed);
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_number",
                "subscriber unknown",
            )
            .into();
        }
        self.keep_text(request);
        match &knobs.receipts {
            Some(receipts) => self.accept(request, reference, receipts),
            None => {
                let first = self.hand_over(request);
                taken(SUBMIT_DELIVERED, reference, !first)
            }
        }
    }

    /// Keeps the text it took for `request.to`, forgetting the oldest beyond
    /// [`TEXTS_KEPT`].
    fn keep_text(&self, request: &SubmitRequest) {
        let mut texts = self.0.texts.lock().expect("texts lock is never poisoned");
        if texts.len() == TEXTS_KEPT {
            texts.pop_front();
        }
        texts.push_back((request.to.clone(), request.text.clone()));
    }

    /// The texts it took for `to`, oldest first, among the last [`TEXTS_KEPT`].
    pub fn texts_to(&self, to: &str) -> Vec<String> {
        let texts = self.0.texts.lock().expect("texts lock is never poisoned");
        texts
            .iter()
            .filter(|(recipient, _)| recipient == to)
            .map(|(_, text)| text.clone())
            .collect()
    }

    /// Puts the message on the handset; false if it was already there.
    fn hand_over(&self, request: &SubmitRequest) -> bool {
        let counters = &self.0.counters;
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
        first_delivery
    }

    /// Asynchronous mode: takes the message, decides its fate and its receipt, and
    /// answers `accepted`.
    fn accept(&self, request: &SubmitRequest, reference: String, knobs: &ReceiptKnobs) -> Answer {
        let counters = &self.0.counters;
        let chance = |rate: f64| rand::rng().random_bool(rate.clamp(0.0, 1.0));
        let state = if chance(knobs.undeliverable_rate) {
            counters.undeliverable.fetch_add(1, Ordering::Relaxed);
            ReceiptState::Undeliverable
        } else {
            self.hand_over(request);
            ReceiptState::Delivered
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let lost = chance(knobs.loss_rate);
        self.lock_fates().insert(
            request.client_reference.clone(),
            ReceiptFate {
                client_reference: request.client_reference.clone(),
                carrier_reference: reference.clone(),
                state,
                lost,
                accepted_at_ms: rns_types::time::now_milliseconds(),
                posted_at_ms: None,
            },
        );
        let mut answer = taken(SUBMIT_ACCEPTED, reference.clone(), false);
        if lost {
            counters.receipts_lost.fetch_add(1, Ordering::Relaxed);
            return answer;
        }
        answer.posting = Some(Posting {
            client_reference: request.client_reference.clone(),
            knobs: knobs.clone(),
            receipt: CarrierReceipt {
                carrier_reference: reference,
                state,
                detail: (state == ReceiptState::Undeliverable).then(|| "UNDELIV 001".to_owned()),
                handset: Some(request.to.clone()),
            },
            early: chance(knobs.early_rate),
            duplicate: chance(knobs.duplicate_rate),
        });
        answer
    }

    fn lock_fates(&self) -> std::sync::MutexGuard<'_, HashMap<String, ReceiptFate>> {
        self.0.fates.lock().expect("fates lock is never poisoned")
    }

    /// [`Self::report`] in a task of its own, awaited: a client that hangs up before
    /// the answer (a carriers process killed mid-submit) does not take the receipts
    /// of what was accepted with it, as it would not at a real carrier.
    async fn report_detached(&self, postings: Vec<Posting>) {
        if postings.is_empty() {
            return;
        }
        let simulator = self.clone();
        let reported = tokio::spawn(async move { simulator.report(postings).await });
        if let Err(error) = reported.await {
            tracing::warn!(carrier = %self.0.name, %error, "reporting receipts failed");
        }
    }

    /// Sends the receipts of answered submits on their way: early ones now, before
    /// the submits are answered (queued like the others if that post fails), the
    /// rest after their delay; duplicates twice.
    async fn report(&self, postings: Vec<Posting>) {
        let counters = &self.0.counters;
        for posting in postings {
            let Posting {
                client_reference,
                knobs,
                receipt,
                early,
                duplicate,
            } = posting;
            let copies = if duplicate {
                counters.receipts_duplicated.fetch_add(1, Ordering::Relaxed);
                2
            } else {
                1
            };
            let mut queued = copies;
            if early {
                let posted = post_receipts_once(
                    &self.0.http,
                    &knobs.url,
                    &knobs.token,
                    std::slice::from_ref(&receipt),
                )
                .await;
                if posted.is_ok_and(|status| status.is_success()) {
                    mark_posted(&self.0.fates, [client_reference.as_str()]);
                    counters.receipts_early.fetch_add(1, Ordering::Relaxed);
                    counters.receipts_posted.fetch_add(1, Ordering::Relaxed);
                    queued -= 1;
                } else {
                    counters
                        .receipt_post_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            let due = tokio::time::Instant::now() + Duration::from_millis(knobs.delay_milliseconds);
            for _ in 0..queued {
                let pending = PendingReceipt {
                    client_reference: client_reference.clone(),
                    due,
                    url: knobs.url.clone(),
                    token: knobs.token.clone(),
                    receipt: receipt.clone(),
                };
                // Bounded: a full outbox holds the submit's answer back.
                if self.0.outbox.send(pending).await.is_err() {
                    tracing::warn!(carrier = %self.0.name, "the receipt poster stopped");
                }
            }
        }
    }
}

/// Posts receipts as they fall due, those due together in one post, until every
/// sender is gone: again after any failure but a refusal (4xx), as a carrier does.
async fn post_receipts(
    mut waiting: mpsc::Receiver<PendingReceipt>,
    http: reqwest::Client,
    counters: Arc<Counters>,
    fates: Fates,
) {
    let mut next: Option<PendingReceipt> = None;
    loop {
        let first = match next.take() {
            Some(pending) => pending,
            None => match waiting.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        tokio::time::sleep_until(first.due).await;
        let (url, token) = (first.url.clone(), first.token.clone());
        let mut references = vec![first.client_reference];
        let mut receipts = vec![first.receipt];
        while receipts.len() < RECEIPTS_PER_POST {
            match waiting.try_recv() {
                Ok(pending)
                    if pending.due <= tokio::time::Instant::now()
                        && pending.url == url
                        && pending.token == token =>
                {
                    references.push(pending.client_reference);
                    receipts.push(pending.receipt);
                }
                Ok(pending) => {
                    next = Some(pending);
                    break;
                }
                Err(_) => break,
            }
        }
        let mut backoff = Duration::from_millis(100);
        loop {
            match post_receipts_once(&http, &url, &token, &receipts).await {
                Ok(status) if status.is_success() => {
                    mark_posted(&fates, references.iter().map(String::as_str));
                    counters
                        .receipts_posted
                        .fetch_add(receipts.len() as u64, Ordering::Relaxed);
                    break;
                }
                Ok(status) if status.is_client_error() => {
                    tracing::warn!(%url, %status, receipts = receipts.len(), "receipts refused; dropping them");
                    counters
                        .receipts_refused
                        .fetch_add(receipts.len() as u64, Ordering::Relaxed);
                    break;
                }
                _ => {
                    counters
                        .receipt_post_failures
                        .fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

async fn post_receipts_once(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    receipts: &[CarrierReceipt],
) -> Result<StatusCode, reqwest::Error> {
    #[derive(Serialize)]
    struct Post<'a> {
        receipts: &'a [CarrierReceipt],
    }
    let response = http
        .post(url)
        .bearer_auth(token)
        .json(&Post { receipts })
        .send()
        .await?;
    Ok(StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY))
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

/// `GET /v1/texts?to=`: the query of [`texts`].
#[derive(Debug, Deserialize)]
struct TextsQuery {
    to: String,
}

/// `GET /v1/texts?to=<number>`: what it took for that handset, oldest first, among
/// the last [`TEXTS_KEPT`] texts.
async fn texts(
    State(simulator): State<Simulator>,
    axum::extract::Query(query): axum::extract::Query<TextsQuery>,
) -> Json<Vec<String>> {
    Json(simulator.texts_to(&query.to))
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

/// What it decided and reported for every message it accepted (asynchronous mode).
async fn receipts(State(simulator): State<Simulator>) -> Json<Vec<ReceiptFate>> {
    Json(simulator.lock_fates().values().cloned().collect())
}

async fn get_knobs(State(simulator): State<Simulator>) -> Json<Knobs> {
    Json(simulator.knobs())
}

async fn put_knobs(State(simulator): State<Simulator>, Json(knobs): Json<Knobs>) -> Json<Knobs> {
    tracing::info!(carrier = %simulator.0.name, ?knobs, "knobs changed");
    simulator.set_knobs(knobs.clone());
    Json(knobs)
}
