//! What a send asks for: the body of `POST /v1/messages`, as it arrives.
use std::collections::BTreeMap;

use rns_types::alimtalk::AlimTalk;
use rns_types::{Channel, Priority};
use serde::{Deserialize, Serialize};

use crate::scheduling::RecurrenceInput;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessages {
    #[serde(default)]
    pub(super) channel: Option<Channel>,
    pub(super) from: String,
    #[serde(default)]
    pub(super) to: Vec<String>,
    /// Recipients with their own variables.
    #[serde(default)]
    pub(super) recipients: Vec<RecipientInput>,
    /// Contact groups whose members receive the message.
    #[serde(default)]
    pub(super) groups: Vec<String>,
    #[serde(default)]
    pub(super) text: Option<String>,
    #[serde(default)]
    pub(super) subject: Option<String>,
    #[serde(default)]
    pub(super) template_id: Option<String>,
    /// Variables for every recipient.
    #[serde(default)]
    pub(super) variables: BTreeMap<String, String>,
    /// MMS images: base64 JPEGs.
    #[serde(default)]
    pub(super) images: Vec<ImageInput>,
    #[serde(default)]
    pub(super) alimtalk: Option<AlimTalk>,
    /// For AlimTalk: the SMS/LMS to send if AlimTalk finally fails.
    #[serde(default)]
    pub(super) fallback: Option<FallbackInput>,
    #[serde(default)]
    pub(super) advertisement: bool,
    /// The recipients consented to advertisements at night (21:00–08:00 KST).
    #[serde(default)]
    pub(super) night_consent: bool,
    /// Send once at this time (RFC 3339) instead of now.
    #[serde(default)]
    pub(super) scheduled_at: Option<String>,
    /// Send repeatedly: `{"cron","timezone","until"}` or `{"every","until"}`.
    #[serde(default)]
    pub(super) recurrence: Option<RecurrenceInput>,
    /// `high`, `normal` or `bulk`: the lane at the carrier. Normal by default, bulk
    /// for advertisements.
    #[serde(default)]
    pub(super) priority: Option<Priority>,
    /// Seconds after the send (or each firing) its messages may still be
    /// submitted; later they end `expired`, refunded.
    #[serde(default)]
    pub(super) valid_for: Option<u64>,
    /// The time after which its messages are no longer submitted (RFC 3339).
    #[serde(default)]
    pub(super) expires_at: Option<String>,
    /// Deliver the texts but never record them: the message records (lists, the
    /// message view, text search, ClickHouse) show `[withheld]` in their place.
    /// For one-time codes and anything else no one should read back.
    #[serde(default)]
    pub(super) confidential: bool,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientInput {
    pub(super) to: String,
    #[serde(default)]
    pub(super) variables: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// The JPEG, base64-encoded.
    pub(super) data: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackInput {
    pub(super) text: String,
    #[serde(default)]
    pub(super) subject: Option<String>,
}
