//! What a send answers: the 202 body, and the group members it could not text.
use rns_types::schedule::ScheduleState;
use rns_types::wire::SendRequest;
use rns_types::{Channel, MessageType, PhoneNumber, RequestId};
use serde::Serialize;

use super::ScheduleView;

/// A group member that cannot be texted, reported instead of sent to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Skipped {
    pub(super) contact_id: String,
    pub(super) number: String,
    pub(super) reason: String,
}

/// The 202 body of a send.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum SendAnswer {
    /// Sent as it is: now, or once later.
    Sent(Sent),
    /// A recurring schedule: its view, and its id again as `schedule_id`.
    Recurring {
        #[serde(flatten)]
        schedule: ScheduleView,
        schedule_id: String,
    },
}

/// A request sent as it is, and its messages.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Sent {
    request_id: RequestId,
    channel: Channel,
    #[serde(rename = "type")]
    message_type: MessageType,
    recipients: usize,
    points: u64,
    message_ids: Vec<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    scheduled: Option<Scheduled>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    blocked: Vec<PhoneNumber>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    skipped: Vec<Skipped>,
}

/// A request sent once later: its schedule.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Scheduled {
    pub(super) schedule_id: String,
    pub(super) state: ScheduleState,
    pub(super) scheduled_at: Option<String>,
    pub(super) next_fire_at: Option<String>,
    /// An advertisement held until 08:00 KST: when it goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) held_until: Option<String>,
}

pub(super) fn sent(
    scheduled: Option<Scheduled>,
    request: &SendRequest,
    skipped: Vec<Skipped>,
) -> Sent {
    Sent {
        request_id: request.request_id,
        channel: request.channel,
        message_type: request.message_type,
        recipients: request.recipients.len(),
        points: request.points(),
        message_ids: (0..request.message_count() as u32)
            .map(|index| request.request_id.message_id(index).to_string())
            .collect(),
        scheduled,
        blocked: request.blocked.clone(),
        skipped,
    }
}
