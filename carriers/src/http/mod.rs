//! The HTTP carrier protocol (JSON over HTTP), spoken by the simulator and by relay
//! providers with a REST interface.
//!
//! `POST {endpoint}/v1/messages` with
//! `{"client_reference","from","to","type","subject"?,"text","images"?,"alimtalk"?}`
//! (MMS images as `{"name","data"}` with base64 JPEG data; AlimTalk content as in
//! [`rns_types::alimtalk::AlimTalk`]); the client reference is
//! the RNS message id, which the carrier uses to de-duplicate. Answers: 200
//! `{"status":"delivered","carrier_reference"}` from a carrier that answers with the
//! final state; 200 `{"status":"accepted","carrier_reference"}` from one that reports
//! delivery later, in a receipt posted to RNS ([`crate::receipts::intake`]); 4xx other than 408/429 is a permanent
//! rejection with `{"error":{"code","message"}}`; 429 is throttling (with the
//! `Retry-After` seconds when the carrier sends them); 408 and 5xx are transient;
//! a refused connection is transient (the carrier was never reached); a timeout or a
//! broken connection after sending is ambiguous.
//!
//! Carriers that offer it take batches: `POST {endpoint}/v1/messages/batch` with
//! `{"messages":[<submit>...]}` (at most [`BATCH_SUBMIT_LIMIT`]) answers 200
//! `{"results":[{"http_status","body"}...]}`, one per submit in order, each the
//! status and body its single submit would have had. A batch refused as a whole
//! (503, 429) or lost in transit comes to the same outcome for each of its messages.
//! [`Submitter`] gathers concurrent submits into such batches when a carrier's
//! `batch_size` is above one.
//!
//! Health: `GET {endpoint}/healthz` (or the carrier's own `health_url`) answering 2xx
//! within the request timeout means the carrier takes submits again; the circuit
//! breaker's recovery probe asks it while the circuit is open ([`HttpCarrier::probe`]).
use std::time::Duration;

use reqwest::StatusCode;
use rns_types::alimtalk::AlimTalk;
use rns_types::wire::CarrierJob;
use serde::{Deserialize, Serialize};

use crate::outcome::SubmitOutcome;
use rns_service::gather::{GatherPolicy, Gatherer};

/// The submit body of the HTTP carrier protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitRequest {
    pub client_reference: String,
    pub from: String,
    pub to: String,
    #[serde(rename = "type")]
    pub message_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<SubmitImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alimtalk: Option<AlimTalk>,
}

/// An MMS image in a submit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitImage {
    pub name: String,
    /// The JPEG, base64-encoded.
    pub data: String,
}

/// The status word of a submit answer from a carrier that answers with the final
/// state.
pub const SUBMIT_DELIVERED: &str = "delivered";
/// The status word of a submit answer from a carrier that reports delivery later.
pub const SUBMIT_ACCEPTED: &str = "accepted";

/// A successful submit answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitResponse {
    pub status: String,
    pub carrier_reference: String,
    #[serde(default)]
    pub duplicate: bool,
}

/// Messages in one batch submit at most.
pub const BATCH_SUBMIT_LIMIT: usize = 1_000;

/// The body of a batch submit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSubmitRequest {
    pub messages: Vec<SubmitRequest>,
}

/// The answer to a batch submit: one per message, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSubmitResponse {
    pub results: Vec<BatchSubmitAnswer>,
}

/// How one message of a batch fared: what its single submit would have answered.
/// The body is kept as its text until its status says what it holds (a
/// [`SubmitResponse`], or an error whose text becomes the reason).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSubmitAnswer {
    pub http_status: u16,
    pub body: Box<serde_json::value::RawValue>,
}

#[derive(Debug, Clone)]
pub struct HttpCarrier {
    client: reqwest::Client,
    submit_url: String,
    batch_url: String,
    health_url: String,
}

impl HttpCarrier {
    pub fn new(endpoint: &str, request_timeout: Duration, max_connections: usize) -> Self {
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout.min(Duration::from_secs(2)))
            .pool_max_idle_per_host(max_connections)
            .build()
            .expect("an HTTP client with these options builds");
        let endpoint = endpoint.trim_end_matches('/');
        Self {
            client,
            submit_url: format!("{endpoint}/v1/messages"),
            batch_url: format!("{endpoint}/v1/messages/batch"),
            health_url: format!("{endpoint}/healthz"),
        }
    }

    /// Probes `url` for health instead of `{endpoint}/healthz`.
    pub fn with_health_url(self, url: &str) -> Self {
        Self {
            health_url: url.to_owned(),
            ..self
        }
    }

    /// Asks the carrier whether it takes submits: its health URL answering 2xx within
    /// the request timeout. The reason it does not, otherwise.
    pub async fn probe(&self) -> Result<(), String> {
        match self.client.get(&self.health_url).send().await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(format!("health check answered {}", response.status())),
            Err(error) => Err(format!("health check failed: {}", root_cause(&error))),
        }
    }

    /// The submit of `job` with its MMS `images` (loaded by the caller).
    pub fn request(job: &CarrierJob, images: Vec<SubmitImage>) -> SubmitRequest {
        SubmitRequest {
            client_reference: job.message_id.to_string(),
            from: job.from.to_string(),
            to: job.to.to_string(),
            message_type: job.message_type.to_string(),
            subject: job.subject.clone(),
            text: job.text.clone(),
            images,
            alimtalk: job.alimtalk.clone(),
        }
    }

    /// Submits one message.
    pub async fn submit(&self, request: &SubmitRequest) -> SubmitOutcome {
        let response = match self
            .client
            .post(&self.submit_url)
            .json(request)
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => return unanswered(&error),
        };
        let status = response.status();
        if status.is_success() {
            return match response.json::<SubmitResponse>().await {
                Ok(answer) => taken(answer),
                Err(error) => unreadable(&error),
            };
        }
        let retry_after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        match refused(status, &text) {
            SubmitOutcome::Throttled { reason, .. } => SubmitOutcome::Throttled {
                reason,
                retry_after,
            },
            outcome => outcome,
        }
    }

    /// Submits `requests` in one batch request; an outcome per request, in order.
    pub async fn submit_batch(&self, requests: Vec<SubmitRequest>) -> Vec<SubmitOutcome> {
        let count = requests.len();
        let body = BatchSubmitRequest { messages: requests };
        let each = |outcome: SubmitOutcome| vec![outcome; count];
        let response = match self.client.post(&self.batch_url).json(&body).send().await {
            Ok(response) => response,
            Err(error) => return each(unanswered(&error)),
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return each(refused(status, &text));
        }
        let answer = match response.json::<BatchSubmitResponse>().await {
            Ok(answer) if answer.results.len() == count => answer,
            Ok(answer) => {
                return each(SubmitOutcome::Ambiguous {
                    reason: format!(
                        "batch answer holds {} results for {count} messages",
                        answer.results.len()
                    ),
                })
            }
            Err(error) => return each(unreadable(&error)),
        };
        answer.results.into_iter().map(answer_outcome).collect()
    }
}

/// How a worker submits: a request per message, or concurrent submits gathered into
/// batch requests (for carriers with a batch endpoint).
#[derive(Clone)]
pub enum Submitter {
    Single(HttpCarrier),
    Batched {
        carrier: HttpCarrier,
        gatherer: Gatherer<SubmitRequest, SubmitOutcome>,
    },
    /// An SMPP carrier ([`crate::smpp`]), whose submits are windowed per session.
    Smpp(crate::smpp::SmppCarrier),
}

impl Submitter {
    /// Batches of up to `batch_size` submits (single submits when it is one or less),
    /// `batches_in_flight` at once, at most `capacity` submits waiting.
    pub fn new(
        carrier: HttpCarrier,
        batch_size: usize,
        batches_in_flight: usize,
        capacity: usize,
    ) -> Self {
        if batch_size <= 1 {
            return Self::Single(carrier);
        }
        let policy = GatherPolicy {
            capacity,
            round_size: batch_size.min(BATCH_SUBMIT_LIMIT),
            parallel_rounds: batches_in_flight,
            round_interval: std::time::Duration::ZERO,
        };
        let submitting = carrier.clone();
        // The drain task ends by itself once the last clone of the gatherer is gone.
        let (gatherer, _drain) = Gatherer::start(policy, move |requests| {
            let carrier = submitting.clone();
            async move { carrier.submit_batch(requests).await }
        });
        Self::Batched { carrier, gatherer }
    }

    /// Whether the carrier recognises a repeated submit of a message (and does not
    /// deliver it twice): HTTP carriers do, by its client reference; SMPP has no such
    /// reference, so an SMPP submit that may have arrived is never made again.
    pub fn recognises_repeats(&self) -> bool {
        !matches!(self, Self::Smpp(_))
    }

    /// The carrier's health ([`HttpCarrier::probe`]).
    pub async fn probe(&self) -> Result<(), String> {
        match self {
            Self::Single(carrier) | Self::Batched { carrier, .. } => carrier.probe().await,
            Self::Smpp(carrier) => carrier.probe().await,
        }
    }

    pub async fn submit(&self, request: SubmitRequest) -> SubmitOutcome {
        match self {
            Self::Single(carrier) => carrier.submit(&request).await,
            Self::Smpp(carrier) => carrier.submit(&request).await,
            Self::Batched { gatherer, .. } => {
                gatherer
                    .call(request)
                    .await
                    .unwrap_or_else(|| SubmitOutcome::Ambiguous {
                        reason: "the batch submitter stopped before answering".to_owned(),
                    })
            }
        }
    }
}

/// The outcome of one message of a batch.
fn answer_outcome(answer: BatchSubmitAnswer) -> SubmitOutcome {
    let status = StatusCode::from_u16(answer.http_status).unwrap_or(StatusCode::BAD_GATEWAY);
    if status.is_success() {
        return match serde_json::from_str::<SubmitResponse>(answer.body.get()) {
            Ok(answer) => taken(answer),
            Err(error) => unreadable(&error),
        };
    }
    refused(status, answer.body.get())
}

/// A 2xx answer: delivered, or accepted with delivery reported later. Any other
/// status word may mean the carrier took it, so it is ambiguous.
fn taken(answer: SubmitResponse) -> SubmitOutcome {
    match answer.status.as_str() {
        SUBMIT_DELIVERED => SubmitOutcome::Delivered {
            carrier_reference: answer.carrier_reference,
        },
        SUBMIT_ACCEPTED => SubmitOutcome::Accepted {
            carrier_reference: answer.carrier_reference,
            earlier_parts: Vec::new(),
        },
        other => SubmitOutcome::Ambiguous {
            reason: format!("success answer with an unknown status {other:?}"),
        },
    }
}

/// A success whose body cannot be read: it may have been taken.
fn unreadable(error: &dyn std::fmt::Display) -> SubmitOutcome {
    SubmitOutcome::Ambiguous {
        reason: format!("unreadable success answer: {error}"),
    }
}

/// A request without an answer: never sent if the connection failed, else unknown.
fn unanswered(error: &reqwest::Error) -> SubmitOutcome {
    if error.is_connect() {
        SubmitOutcome::unreachable(format!("connection failed: {}", root_cause(error)))
    } else {
        SubmitOutcome::Ambiguous {
            reason: format!("no answer: {}", root_cause(error)),
        }
    }
}

/// The seconds of a `Retry-After` header (its date form is not used by carriers).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// An error answer: throttling for 429, retryable for 408 and 5xx, permanent
/// otherwise.
fn refused(status: StatusCode, body: &str) -> SubmitOutcome {
    let reason = error_reason(status, body);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return SubmitOutcome::Throttled {
            reason,
            retry_after: None,
        };
    }
    if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
        SubmitOutcome::failed_for_now(reason)
    } else {
        SubmitOutcome::Rejected { reason }
    }
}

/// `"<status> <code>: <message>"` from an error answer, or the status alone.
fn error_reason(status: StatusCode, body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody { error }) if error.message.is_empty() => {
            format!("{} {}", status.as_u16(), error.code)
        }
        Ok(ErrorBody { error }) => format!("{} {}: {}", status.as_u16(), error.code, error.message),
        Err(_) => format!("{}", status),
    }
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_reasons_name_status_code_and_message() {
        let body = r#"{"error":{"code":"invalid_number","message":"no such subscriber"}}"#;
        assert_eq!(
            error_reason(StatusCode::BAD_REQUEST, body),
            "400 invalid_number: no such subscriber"
        );
        assert_eq!(
            error_reason(StatusCode::BAD_GATEWAY, "<html>"),
            "502 Bad Gateway"
        );
    }
}
