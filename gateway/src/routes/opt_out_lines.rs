//! The 080 lines' own callbacks: `POST /v1/opt-out-lines/{line}/opt-outs`, as the
//! line's provider calls it when a recipient dials the 080 number, with that line's
//! key (`Authorization: Bearer <line key>`); and the operator's
//! `POST /v1/admin/opt-out-lines/{line}/key`, which issues (or reissues) the key for
//! the provider's configuration, shown once.
//!
//! Each line is rate limited (before its key is checked, so guessing is slow too);
//! a wrong or missing key is 401, a line nobody holds 404.
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use rns_types::PhoneNumber;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{bearer_token, Admin, ApiJson};
use crate::rate_limit::Rate;
use crate::AppState;

/// One 080 line's calls, over every gateway replica.
pub const LINE_RATE: Rate = Rate {
    per_second: 5.0,
    burst: 20.0,
};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineOptOut {
    /// The number that dialled the line.
    recipient: String,
}

/// An opt-out the line recorded.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LineOptOutRecorded {
    opt_out_number: PhoneNumber,
    sender_number: PhoneNumber,
    recipient: PhoneNumber,
}

/// A line's new key, shown only now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LineKey {
    opt_out_number: PhoneNumber,
    /// Give it to the line's provider; RNS keeps only its hash.
    key: String,
}

/// The line named by the path, or 404.
fn line_of(raw: &str) -> Result<PhoneNumber, ApiError> {
    PhoneNumber::parse(raw).map_err(|_| ApiError::NotFound("opt-out number"))
}

#[utoipa::path(
    post,
    path = "/v1/opt-out-lines/{line}/opt-outs",
    tag = "opt-outs",
    params(("line" = String, Path, description = "the 080 number that was dialled")),
    request_body = LineOptOut,
    responses((status = 201, description = "Created", body = LineOptOutRecorded), crate::openapi::Errors),
    security(("line_key" = [])),
)]
pub async fn record(
    State(state): State<AppState>,
    Path(line): Path<String>,
    parts: Parts,
    ApiJson(body): ApiJson<LineOptOut>,
) -> Result<(StatusCode, Json<LineOptOutRecorded>), ApiError> {
    let line = line_of(&line)?;
    state
        .rate_limits()
        .take(
            &format!("rns:rate:opt-out-line:{line}"),
            LINE_RATE,
            "this opt-out line",
        )
        .await?;
    let key = bearer_token(&parts)?;
    if !state.opt_outs().line_key_matches(&line, key).await? {
        return Err(ApiError::Unauthorized(
            "wrong key for this opt-out line (the operator issues each line's key)",
        ));
    }
    let (customer, sender) = state
        .opt_outs()
        .line(&line)
        .await?
        .ok_or(ApiError::NotFound("opt-out number"))?;
    let recipient = PhoneNumber::parse_mobile(&body.recipient)
        .map_err(|error| ApiError::invalid("invalid_recipient", error.to_string()))?;
    state
        .opt_outs()
        .record(&customer, &sender, &recipient)
        .await?;
    tracing::info!(customer = %customer, sender = %sender, line = %line, "opt-out recorded by its line");
    Ok((
        StatusCode::CREATED,
        Json(LineOptOutRecorded {
            opt_out_number: line,
            sender_number: sender,
            recipient,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/admin/opt-out-lines/{line}/key",
    tag = "admin",
    params(("line" = String, Path, description = "an allocated 080 number")),
    responses((status = 201, description = "Issued; any earlier key stops working", body = LineKey), crate::openapi::Errors),
    security(("admin_key" = [])),
)]
pub async fn issue_key(
    _admin: Admin,
    State(state): State<AppState>,
    Path(line): Path<String>,
) -> Result<(StatusCode, Json<LineKey>), ApiError> {
    let line = line_of(&line)?;
    if state.opt_outs().line(&line).await?.is_none() {
        return Err(ApiError::NotFound("opt-out number"));
    }
    let key = state.opt_outs().issue_line_key(&line).await?;
    tracing::info!(line = %line, "opt-out line key issued");
    Ok((
        StatusCode::CREATED,
        Json(LineKey {
            opt_out_number: line,
            key,
        }),
    ))
}
