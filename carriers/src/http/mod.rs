//! The HTTP carrier protocol (JSON over HTTP), spoken by the simulator and by relay
//! providers with a REST interface.
//!
//! `POST {endpoint}/v1/messages` with
//! `{"client_reference","from","to","type","subject"?,"text","images"?,"alimtalk"?}`
//! (MMS images as `{"name","data"}` with base64 JPEG data; AlimTalk content as in
//! [`rns_types::alimtalk::AlimTalk`]); the client reference is
//! the RNS message id, which the carrier uses to de-duplicate. Answers: 200
//! `{"status":"delivered","carrier_reference"}`; 4xx other than 408/429 is a permanent
//! rejection with `{"error":{"code","message"}}`; 408, 429 and 5xx are transient;
//! a refused connection is transient (the carrier was never reached); a timeout or a
//! broken connection after sending is ambiguous.
use std::time::Duration;

use reqwest::StatusCode;
use rns_types::alimtalk::AlimTalk;
use rns_types::wire::CarrierJob;
use serde::{Deserialize, Serialize};

use crate::outcome::SubmitOutcome;

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

/// A successful submit answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubmitResponse {
    pub status: String,
    pub carrier_reference: String,
    #[serde(default)]
    pub duplicate: bool,
}

#[derive(Debug, Clone)]
pub struct HttpCarrier {
    client: reqwest::Client,
    submit_url: String,
}

impl HttpCarrier {
    pub fn new(endpoint: &str, request_timeout: Duration, max_connections: usize) -> Self {
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout.min(Duration::from_secs(2)))
            .pool_max_idle_per_host(max_connections)
            .build()
            .expect("an HTTP client with these options builds");
        Self {
            client,
            submit_url: format!("{}/v1/messages", endpoint.trim_end_matches('/')),
        }
    }

    /// Submits `job` with its MMS `images` (loaded by the caller).
    pub async fn submit(&self, job: &CarrierJob, images: Vec<SubmitImage>) -> SubmitOutcome {
        let body = SubmitRequest {
            client_reference: job.message_id.to_string(),
            from: job.from.to_string(),
            to: job.to.to_string(),
            message_type: job.message_type.to_string(),
            subject: job.subject.clone(),
            text: job.text.clone(),
            images,
            alimtalk: job.alimtalk.clone(),
        };
        let response = match self.client.post(&self.submit_url).json(&body).send().await {
            Ok(response) => response,
            Err(error) if error.is_connect() => {
                return SubmitOutcome::Transient {
                    reason: format!("connection failed: {}", root_cause(&error)),
                }
            }
            Err(error) => {
                return SubmitOutcome::Ambiguous {
                    reason: format!("no answer: {}", root_cause(&error)),
                }
            }
        };
        classify(response).await
    }
}

async fn classify(response: reqwest::Response) -> SubmitOutcome {
    let status = response.status();
    if status.is_success() {
        return match response.json::<SubmitResponse>().await {
            Ok(answer) => SubmitOutcome::Delivered {
                carrier_reference: answer.carrier_reference,
            },
            Err(error) => SubmitOutcome::Ambiguous {
                reason: format!("unreadable success answer: {error}"),
            },
        };
    }
    let text = response.text().await.unwrap_or_default();
    let reason = error_reason(status, &text);
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
    {
        SubmitOutcome::Transient { reason }
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
