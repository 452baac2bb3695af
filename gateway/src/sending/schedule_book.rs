//! Scheduled sends: their records in the `schedules` bucket (the API's view of one,
//! the book's changes) and their creation, once or recurring, with its paid publish.
use bytes::Bytes;
use rns_nats::{publish_schedule, MessageSchedule, Outbound};
use rns_types::schedule::{Recurrence, ScheduleBook, ScheduleRecord, ScheduleState};
use rns_types::subjects::{due_subject, schedule_subject};
use rns_types::wire::SendRequest;
use rns_types::{CustomerId, RequestId};
use serde::Serialize;

use super::publish::{ensure_schedule_room, publish_paid, Publication};
use crate::contacts::new_id;
use crate::error::ApiError;
use crate::scheduling::first_firing;
use crate::AppState;

pub fn unavailable(error: impl Into<crate::error::BoxError>) -> ApiError {
    ApiError::unavailable("schedules", error)
}

/// The API's view of a schedule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    pub id: String,
    pub state: ScheduleState,
    /// `once` or `recurring`.
    pub kind: &'static str,
    pub scheduled_at: Option<String>,
    pub recurrence: Option<RecurrenceView>,
    pub next_fire_at: Option<String>,
    pub recipients: usize,
    /// Points one firing costs.
    pub points: u64,
    pub fires: u64,
    pub failed_fires: u64,
    pub failures: Vec<FailureView>,
    pub last_request_id: Option<RequestId>,
    pub created_at: String,
    pub cancelled_at: Option<String>,
}

/// How a recurring schedule fires.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecurrenceView {
    pub cron: Option<String>,
    pub every_seconds: Option<u64>,
    pub timezone: String,
    pub until: Option<String>,
    /// How many times it fires at most (sent or failed).
    pub count: Option<u32>,
}

/// A firing that could not be sent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FailureView {
    pub at: String,
    pub reason: String,
}

impl ScheduleView {
    pub fn of(record: &ScheduleRecord) -> Self {
        let time = |milliseconds: Option<u64>| milliseconds.map(rns_types::time::rfc3339);
        Self {
            id: record.id.clone(),
            state: record.state,
            kind: if record.recurrence.is_some() {
                "recurring"
            } else {
                "once"
            },
            scheduled_at: time(record.at_ms),
            recurrence: record.recurrence.as_ref().map(|recurrence| RecurrenceView {
                cron: recurrence.cron.clone(),
                every_seconds: recurrence.every_seconds,
                timezone: recurrence.timezone.clone(),
                until: time(recurrence.until_ms),
                count: recurrence.count,
            }),
            next_fire_at: time(record.next_fire_at_ms),
            recipients: record.recipients,
            points: record.points,
            fires: record.fires,
            failed_fires: record.failed_fires,
            failures: record
                .failures
                .iter()
                .map(|failure| FailureView {
                    at: rns_types::time::rfc3339(failure.at_ms),
                    reason: failure.reason.clone(),
                })
                .collect(),
            last_request_id: record.last_request_id,
            created_at: rns_types::time::rfc3339(record.created_at_ms),
            cancelled_at: time(record.cancelled_at_ms),
        }
    }
}

pub async fn change_book<T>(
    state: &AppState,
    customer: &CustomerId,
    mut change: impl FnMut(&mut ScheduleBook) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let mut outcome = None;
    state
        .schedules()
        .update(customer.as_str(), Some(ScheduleBook::default), |book| {
            outcome = Some(change(book)?);
            Ok::<(), ApiError>(())
        })
        .await
        .map_err(unavailable)??;
    Ok(outcome.expect("a successful change ran"))
}

/// A new record, before its schedule is published.
fn new_record(request: &SendRequest, id: &str) -> ScheduleRecord {
    ScheduleRecord::new(
        id.to_owned(),
        rns_types::time::now_milliseconds(),
        request.recipients.len(),
        request.points(),
    )
}

async fn insert(
    state: &AppState,
    customer: &CustomerId,
    record: ScheduleRecord,
) -> Result<(), ApiError> {
    change_book(state, customer, |book| {
        if !book.make_room() {
            return Err(ApiError::invalid(
                "too_many_schedules",
                format!(
                    "a customer may have at most {} live schedules",
                    rns_types::schedule::MAX_SCHEDULES
                ),
            ));
        }
        book.schedules.insert(record.id.clone(), record.clone());
        Ok(())
    })
    .await
}

async fn remove(state: &AppState, customer: &CustomerId, id: &str) {
    let removed = change_book(state, customer, |book| {
        book.schedules.remove(id);
        Ok(())
    })
    .await;
    if let Err(error) = removed {
        tracing::error!(customer = %customer, schedule = id, %error, "removing an unpublished schedule failed");
    }
}

/// Schedules `request` once at `at_ms`: records it, then reserves its points and
/// publishes it (see [`publish_paid`]). Returns the schedule's view.
pub async fn create_once(
    state: &AppState,
    mut request: SendRequest,
    at_ms: u64,
) -> Result<(SendRequest, ScheduleView), ApiError> {
    let id = new_id();
    request.schedule_id = Some(id.clone());
    let customer = request.customer_id.clone();
    let record = ScheduleRecord {
        at_ms: Some(at_ms),
        next_fire_at_ms: Some(at_ms),
        last_request_id: Some(request.request_id),
        ..new_record(&request, &id)
    };
    insert(state, &customer, record.clone()).await?;
    let schedule = MessageSchedule {
        subject: schedule_subject(&id),
        pattern: format!("@at {}", rns_types::time::rfc3339_seconds(at_ms)),
        time_zone: None,
    };
    if let Err(error) = publish_paid(state, &request, Publication::Scheduled(schedule)).await {
        remove(state, &customer, &id).await;
        return Err(error);
    }
    Ok((request, ScheduleView::of(&record)))
}

/// Schedules `request` to fire by `recurrence` (points are reserved at each firing).
pub async fn create_recurring(
    state: &AppState,
    mut request: SendRequest,
    recurrence: Recurrence,
) -> Result<ScheduleView, ApiError> {
    let id = new_id();
    request.schedule_id = Some(id.clone());
    let customer = request.customer_id.clone();
    let record = ScheduleRecord {
        next_fire_at_ms: first_firing(&recurrence, rns_types::time::now_milliseconds()),
        recurrence: Some(recurrence.clone()),
        ..new_record(&request, &id)
    };
    insert(state, &customer, record.clone()).await?;
    let payload = Bytes::from(serde_json::to_vec(&request).expect("a send request serialises"));
    let published = async {
        ensure_schedule_room(state, payload.len()).await?;
        let schedule = MessageSchedule {
            subject: schedule_subject(&id),
            pattern: recurrence.header(),
            time_zone: recurrence
                .cron
                .as_ref()
                .map(|_| recurrence.timezone.clone()),
        };
        // No Nats-Msg-Id: every firing must reach the dispatcher.
        let target = Outbound {
            subject: due_subject(&customer),
            message_id: String::new(),
            payload,
        };
        publish_schedule(state.jetstream(), schedule, target)
            .await
            .map_err(|error| {
                let text = error.to_string();
                if text.contains("pattern is invalid") || text.contains("time zone is invalid") {
                    ApiError::invalid(
                        "invalid_schedule",
                        format!("nats-server refused the recurrence: {text}"),
                    )
                } else {
                    unavailable(error)
                }
            })
    };
    if let Err(error) = published.await {
        remove(state, &customer, &id).await;
        return Err(error);
    }
    tracing::info!(customer = %customer, schedule = %id, pattern = %recurrence.header(), "recurring send scheduled");
    Ok(ScheduleView::of(&record))
}
