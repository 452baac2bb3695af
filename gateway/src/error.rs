//! The gateway's one error type and its single mapping to HTTP.
//!
//! Every failure a client can see is an [`ApiError`], answered as
//! `{"error":{"code","message"}}` with the status chosen here and nowhere else.
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(&'static str),
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
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
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
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if status.is_server_error() {
            tracing::warn!(code, error = %self, "request failed");
        }
        let body = Json(json!({"error": {"code": code, "message": self.to_string()}}));
        let mut response = (status, body).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
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
            other => ApiError::Unavailable(other.to_string()),
        }
    }
}

impl From<rns_nats::TopologyError> for ApiError {
    fn from(error: rns_nats::TopologyError) -> Self {
        ApiError::Unavailable(error.to_string())
    }
}

/// Only at start-up (binding the listener) or shutdown, never from a handler.
impl From<std::io::Error> for ApiError {
    fn from(error: std::io::Error) -> Self {
        ApiError::Unavailable(format!("i/o: {error}"))
    }
}

impl From<rns_analytics::AnalyticsError> for ApiError {
    fn from(error: rns_analytics::AnalyticsError) -> Self {
        ApiError::Unavailable(format!("results store: {error}"))
    }
}

impl From<rns_points::PointsError> for ApiError {
    fn from(error: rns_points::PointsError) -> Self {
        ApiError::Unavailable(format!("points: {error}"))
    }
}

impl From<redis::RedisError> for ApiError {
    fn from(error: redis::RedisError) -> Self {
        ApiError::Unavailable(format!("redis: {error}"))
    }
}
