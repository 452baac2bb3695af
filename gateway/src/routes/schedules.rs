//! Scheduled sends: created by `POST /v1/messages` with `scheduled_at` or
//! `recurrence`; `GET /v1/schedules?state=&cursor=&limit=`, `GET /v1/schedules/{id}`
//! and `DELETE /v1/schedules/{id}` (cancel).
//!
//! A schedule is a message schedule in the `SCHEDULES` stream (`sched.<id>`), fired by
//! nats-server itself at its time into `due.<customer>`, where the dispatcher takes it
//! whenever it runs; its record (state, next firing, firings so far) is in the
//! customer's document in the `schedules` KV bucket. A one-time schedule reserves its
//! points now and returns them if cancelled; a recurring one reserves at each firing.
//! Cancelling purges the schedule and marks the record, with compare-and-set against
//! the dispatcher marking it `running`, so a cancelled schedule never fires.
use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use rns_nats::{publish_schedule, MessageSchedule, Outbound};
use rns_types::schedule::{Recurrence, ScheduleBook, ScheduleRecord, ScheduleState};
use rns_types::subjects::{due_subject, schedule_subject, SCHEDULES_STREAM};
use rns_types::wire::SendRequest;
use rns_types::CustomerId;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::contacts::{is_id, new_id};
use crate::error::ApiError;
use crate::extract::{ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::scheduling::first_firing;
use crate::AppState;

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    ApiError::Unavailable(format!("schedules: {error}"))
}

/// The API's view of a schedule.
pub fn schedule_json(record: &ScheduleRecord) -> Value {
    let time = |milliseconds: Option<u64>| milliseconds.map(rns_types::time::rfc3339);
    json!({
        "id": record.id,
        "state": record.state,
        "kind": if record.recurrence.is_some() { "recurring" } else { "once" },
        "scheduled_at": time(record.at_ms),
        "recurrence": record.recurrence.as_ref().map(|recurrence| json!({
            "cron": recurrence.cron,
            "every_seconds": recurrence.every_seconds,
            "timezone": recurrence.timezone,
            "until": time(recurrence.until_ms),
        })),
        "next_fire_at": time(record.next_fire_at_ms),
        "recipients": record.recipients,
        "points": record.points,
        "fires": record.fires,
        "failed_fires": record.failed_fires,
        "failures": record.failures.iter().map(|failure| json!({
            "at": rns_types::time::rfc3339(failure.at_ms),
            "reason": failure.reason,
        })).collect::<Vec<_>>(),
        "last_request_id": record.last_request_id,
        "created_at": rns_types::time::rfc3339(record.created_at_ms),
        "cancelled_at": time(record.cancelled_at_ms),
    })
}

async fn change_book<T>(
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
    ScheduleRecord {
        id: id.to_owned(),
        state: ScheduleState::Scheduled,
        created_at_ms: rns_types::time::now_milliseconds(),
        at_ms: None,
        recurrence: None,
        next_fire_at_ms: None,
        recipients: request.recipients.len(),
        points: request.points(),
        fires: 0,
        failed_fires: 0,
        failures: Vec::new(),
        last_request_id: None,
        last_sequence: 0,
        cancelled_at_ms: None,
    }
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
/// publishes it (see `messages::publish_paid`). Returns the schedule's view.
pub async fn create_once(
    state: &AppState,
    mut request: SendRequest,
    at_ms: u64,
) -> Result<(SendRequest, Value), ApiError> {
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
    if let Err(error) = super::messages::publish_paid(
        state,
        &request,
        super::messages::Publication::Scheduled(schedule),
    )
    .await
    {
        remove(state, &customer, &id).await;
        return Err(error);
    }
    Ok((request, schedule_json(&record)))
}

/// Schedules `request` to fire by `recurrence` (points are reserved at each firing).
pub async fn create_recurring(
    state: &AppState,
    mut request: SendRequest,
    recurrence: Recurrence,
) -> Result<Value, ApiError> {
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
        super::messages::ensure_schedule_room(state, payload.len()).await?;
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
                    ApiError::Unavailable(text)
                }
            })
    };
    if let Err(error) = published.await {
        remove(state, &customer, &id).await;
        return Err(error);
    }
    tracing::info!(customer = %customer, schedule = %id, pattern = %recurrence.header(), "recurring send scheduled");
    Ok(schedule_json(&record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulesQuery {
    #[serde(default)]
    state: Option<ScheduleState>,
    #[serde(flatten)]
    page: PageQuery,
}

pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SchedulesQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.page.limit()?;
    let cursor = query.page.cursor(is_id)?;
    let book = state
        .schedules()
        .get(customer.as_str())
        .await
        .map_err(unavailable)?
        .unwrap_or_default();
    let mut items: Vec<&ScheduleRecord> = book
        .schedules
        .values()
        .filter(|record| cursor.is_none_or(|cursor| record.id.as_str() > cursor))
        .filter(|record| query.state.is_none_or(|wanted| record.state == wanted))
        .take(limit + 1)
        .collect();
    let next_cursor = (items.len() > limit).then(|| {
        items.truncate(limit);
        items[limit - 1].id.clone()
    });
    let items: Vec<Value> = items.into_iter().map(schedule_json).collect();
    Ok(Json(json!({"items": items, "next_cursor": next_cursor})))
}

pub async fn get(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let book = state
        .schedules()
        .get(customer.as_str())
        .await
        .map_err(unavailable)?
        .unwrap_or_default();
    let record = book
        .schedules
        .get(&id)
        .ok_or(ApiError::NotFound("schedule"))?;
    Ok(Json(schedule_json(record)))
}

/// `DELETE /v1/schedules/{id}`: a cancelled schedule never fires again; a one-time
/// schedule's points come back. A one-time schedule that already fired is 409.
pub async fn cancel(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if !is_id(&id) {
        return Err(ApiError::NotFound("schedule"));
    }
    let now_ms = rns_types::time::now_milliseconds();
    let record = change_book(&state, &customer, |book| {
        let record = book
            .schedules
            .get_mut(&id)
            .ok_or(ApiError::NotFound("schedule"))?;
        let once = record.recurrence.is_none();
        match record.state {
            ScheduleState::Scheduled => {}
            ScheduleState::Running if !once => {}
            ScheduleState::Cancelled => return Ok(record.clone()),
            _ => {
                return Err(ApiError::Conflict(format!(
                    "schedule {id} already fired; it can no longer be cancelled"
                )))
            }
        }
        record.state = ScheduleState::Cancelled;
        record.cancelled_at_ms = Some(now_ms);
        record.next_fire_at_ms = None;
        Ok(record.clone())
    })
    .await?;
    // The record says cancelled, so a firing that slips through is dropped by the
    // dispatcher; purging stops the server from firing at all.
    let stream = state
        .jetstream()
        .get_stream(SCHEDULES_STREAM)
        .await
        .map_err(unavailable)?;
    stream
        .purge()
        .filter(schedule_subject(&id))
        .await
        .map_err(unavailable)?;
    if record.recurrence.is_none() {
        if let Some(request) = record.last_request_id {
            state
                .points()
                .release(&customer, &request, "scheduled send cancelled")
                .await?;
        }
    }
    tracing::info!(customer = %customer, schedule = %id, "schedule cancelled");
    Ok(Json(schedule_json(&record)))
}
