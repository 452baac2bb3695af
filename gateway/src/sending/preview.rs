//! What a send would do, without doing it: `POST /v1/messages/preview` answers the
//! same checks a send passes ([`super::validate`]) with what they found — the type
//! and length of the text in EUC-KR bytes as carriers count them, each of the first
//! recipients' filled message, the de-duplicated recipient count, the price against
//! the balance, and when it would go (a recurring send's next firings). The console
//! shows it while a send is written, so no rule is copied into the browser.
use rns_types::content::{euc_kr_length, LMS_MAX_BYTES, SMS_MAX_BYTES};
use rns_types::time::rfc3339;
use rns_types::{Channel, CustomerId, MessageType, PhoneNumber, Priority};
use serde::Serialize;

use super::answer::Skipped;
use super::validate::ValidSend;
use crate::error::ApiError;
use crate::scheduling::{next_firings, When};
use crate::AppState;

/// How many recipients' messages a preview shows.
pub const PREVIEWED_RECIPIENTS: usize = 5;

/// How many of a recurring send's next firings a preview shows.
pub const PREVIEWED_FIRINGS: usize = 5;

/// What a send would do.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SendPreview {
    channel: Channel,
    /// The request's type; with variables, the first recipient's.
    #[serde(rename = "type")]
    message_type: MessageType,
    /// The text's length in EUC-KR bytes (with variables, the first recipient's filled
    /// text; the unfilled text without recipients).
    bytes: usize,
    /// The longest SMS and LMS/MMS text, in EUC-KR bytes.
    sms_max_bytes: usize,
    lms_max_bytes: usize,
    /// Recipients it would be sent to: de-duplicated, the blocked ones left out.
    recipients: usize,
    /// Recipients who opted out or are on the blocklist: recorded, not sent to, free.
    blocked: Vec<PhoneNumber>,
    /// Group members who cannot be texted.
    skipped: Vec<Skipped>,
    /// Points the send reserves (per firing, for a recurring send).
    points: u64,
    /// Points available now.
    balance: i64,
    /// Whether the balance covers `points` now.
    enough_points: bool,
    /// The first recipients' messages as they would read.
    first: Vec<PreviewedMessage>,
    priority: Priority,
    /// `now`, `once` or `recurring`.
    when: &'static str,
    /// When a once-later send goes (an advertisement's held to 08:00 KST).
    scheduled_at: Option<String>,
    /// An advertisement held until 08:00 KST: when it goes.
    held_until: Option<String>,
    /// A recurring send's next firings.
    next_firings: Vec<String>,
}

/// One recipient's message as it would read.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewedMessage {
    to: PhoneNumber,
    #[serde(rename = "type")]
    message_type: MessageType,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    text: String,
    bytes: usize,
    points: u32,
}

/// What `valid` would do for `customer`, now.
pub async fn preview(
    state: &AppState,
    customer: &CustomerId,
    valid: ValidSend,
) -> Result<SendPreview, ApiError> {
    let composed = valid.composed;
    let length = |text: &str| euc_kr_length(text).unwrap_or(0);
    let first: Vec<PreviewedMessage> = composed
        .recipients
        .iter()
        .take(PREVIEWED_RECIPIENTS)
        .map(|recipient| {
            let text = recipient
                .text
                .clone()
                .unwrap_or_else(|| composed.text.clone());
            PreviewedMessage {
                to: recipient.to.clone(),
                message_type: recipient.message_type.unwrap_or(composed.message_type),
                subject: composed.subject.clone(),
                bytes: length(&text),
                text,
                points: recipient.points,
            }
        })
        .collect();
    let bytes = first
        .first()
        .map_or_else(|| length(&composed.text), |message| message.bytes);
    let points: u64 = composed
        .recipients
        .iter()
        .map(|recipient| u64::from(recipient.points))
        .sum();
    let balance = state.points().account(customer).await?.balance;
    let now_ms = rns_types::time::now_milliseconds();
    let (when, scheduled_at, next) = match &valid.when {
        When::Now => ("now", None, Vec::new()),
        When::Once { at_ms } => ("once", Some(rfc3339(*at_ms)), Vec::new()),
        When::Recurring(recurrence) => (
            "recurring",
            None,
            next_firings(recurrence, now_ms)
                .into_iter()
                .take(PREVIEWED_FIRINGS)
                .map(rfc3339)
                .collect(),
        ),
    };
    Ok(SendPreview {
        channel: valid.channel,
        message_type: composed.message_type,
        bytes,
        sms_max_bytes: SMS_MAX_BYTES,
        lms_max_bytes: LMS_MAX_BYTES,
        recipients: composed.recipients.len(),
        blocked: valid.blocked,
        skipped: valid.skipped,
        enough_points: i64::try_from(points).is_ok_and(|points| points <= balance),
        points,
        balance,
        first,
        priority: valid.priority,
        when,
        held_until: valid.held.then(|| scheduled_at.clone()).flatten(),
        scheduled_at,
        next_firings: next,
    })
}
