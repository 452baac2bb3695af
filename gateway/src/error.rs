//! The gateway's one error type and its single mapping to HTTP.
//!
//! Every failure a client can see is an [`ApiError`], answered as
//! `{"error":{"code","message"}}` with the status chosen here and nowhere else.
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Signing in with an unknown email or a wrong password (401; which of the two
    /// is not told).
    #[error("the email or the password is wrong")]
    WrongCredentials,
    /// The key is valid but may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The operator suspended the customer: it may read, nothing else (403).
    #[error("this customer is suspended by the operator: it may read its records but not change or send anything; contact the operator")]
    Suspended,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this route does not take that method")]
    MethodNotAllowed,
    #[error("{what} not found: {id}")]
    NotFoundNamed { what: &'static str, id: String },
    #[error("{0}")]
    MalformedBody(String),
    #[error("request body is larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("this send needs {needed} points and the balance is {balance}; top up and send again")]
    InsufficientPoints { needed: u64, balance: i64 },
    #[error("{0}")]
    Conflict(String),
    /// Over a rate limit (429 with `Retry-After`).
    #[error("too many requests for {what}; try again in {retry_after_seconds} s")]
    TooManyRequests {
        what: &'static str,
        retry_after_seconds: u64,
    },
    /// The customer's daily cap of messages would be passed (429 until the day ends).
    #[error("this send would pass the daily cap of {cap} messages ({sent} sent today, Korean time); it resets at midnight KST")]
    DailyCapReached {
        cap: u64,
        sent: u64,
        retry_after_seconds: u64,
    },
    /// A store or service the request needs did not answer (503); the cause is
    /// kept as its source.
    #[error("{what} is unavailable: {source}")]
    Unavailable {
        what: &'static str,
        #[source]
        source: BoxError,
    },
}

/// Every error answer: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable (`not_found`, `invalid_number`, `unavailable`…).
    pub code: &'static str,
    /// For people; may change.
    pub message: String,
}

/// Any error, as the cause of [`ApiError::Unavailable`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ApiError {
    /// `what` did not answer, because of `source` (an error, or words saying why).
    pub fn unavailable(what: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Unavailable {
            what,
            source: source.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::WrongCredentials => (StatusCode::UNAUTHORIZED, "wrong_credentials"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Suspended => (StatusCode::FORBIDDEN, "customer_suspended"),
            ApiError::NotFound(_) | ApiError::NotFoundNamed { .. } => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::MalformedBody(_) => (StatusCode::BAD_REQUEST, "malformed_body"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
            }
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::Invalid { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            ApiError::InsufficientPoints { .. } => {
                (StatusCode::PAYMENT_REQUIRED, "insufficient_points")
            }
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::DailyCapReached { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "daily_cap_reached")
            }
            ApiError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(code, error = %self, "request failed");
        }
        let body = Json(ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
            },
        });
        let retry_after = match &self {
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            }
            | ApiError::DailyCapReached {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            _ => (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
        };
        let mut response = (status, body).into_response();
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(error) => {
                ApiError::invalid("invalid_body", error.body_text())
            }
            JsonRejection::JsonSyntaxError(error) => ApiError::MalformedBody(error.body_text()),
            JsonRejection::MissingJsonContentType(error) => {
                ApiError::UnsupportedMediaType(error.body_text())
            }
            JsonRejection::BytesRejection(error)
                if error.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::PayloadTooLarge {
                    limit_bytes: crate::MAX_BODY_BYTES,
                }
            }
            other => ApiError::MalformedBody(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(_: PathRejection) -> Self {
        ApiError::NotFound("resource")
    }
}

impl From<rns_nats::DirectoryError> for ApiError {
    fn from(error: rns_nats::DirectoryError) -> Self {
        match error {
            rns_nats::DirectoryError::AlreadyExists(customer) => {
                ApiError::Conflict(format!("customer {customer} already exists"))
            }
            rns_nats::DirectoryError::NotFound(_) => ApiError::NotFound("customer"),
            other => ApiError::unavailable("the customer directory", other),
        }
    }
}

impl From<rns_nats::TopologyError> for ApiError {
    fn from(error: rns_nats::TopologyError) -> Self {
        ApiError::unavailable("the NATS topology", error)
    }
}

/// Only at start-up (binding the listener) or shutdown, never from a handler.
impl From<std::io::Error> for ApiError {
    fn from(error: std::io::Error) -> Self {
        ApiError::unavailable("i/o", error)
    }
}

impl From<rns_results::ResultsError> for ApiError {
    fn from(error: rns_results::ResultsError) -> Self {
        ApiError::unavailable("the results store", error)
    }
}

impl From<rns_points::PointsError> for ApiError {
    fn from(error: rns_points::PointsError) -> Self {
        ApiError::unavailable("points", error)
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        ApiError::unavailable("redis", error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unavailable_store_answers_503_with_its_cause_kept_as_the_source() {
        let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in 2s");
        let error = ApiError::unavailable("points", cause);
        assert_eq!(error.to_string(), "points is unavailable: no answer in 2s");
        let source = std::error::Error::source(&error).expect("the cause is kept");
        assert_eq!(source.to_string(), "no answer in 2s");
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
        let words = ApiError::unavailable("schedules", "too many held");
        assert_eq!(words.status_and_code().1, "unavailable");
    }
}
