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
use rns_types::schedule::{ScheduleRecord, ScheduleState};
use rns_types::subjects::{schedule_subject, SCHEDULES_STREAM};
use serde::{Deserialize, Serialize};

use crate::contacts::is_id;
use crate::error::ApiError;
use crate::extract::{ApiQuery, Customer};
use crate::pagination::PageQuery;
use crate::sending::{change_book, unavailable, ScheduleView};
use crate::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SchedulesQuery {
    #[serde(default)]
    state: Option<ScheduleState>,
    #[serde(flatten)]
    #[param(ignore)]
    page: PageQuery,
}

/// A page of schedules, in id (creation) order.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SchedulePage {
    items: Vec<ScheduleView>,
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/schedules",
    tag = "schedules",
    params(SchedulesQuery, PageQuery),
    responses((status = 200, description = "OK", body = SchedulePage), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn list(
    Customer(customer): Customer,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<SchedulesQuery>,
) -> Result<Json<SchedulePage>, ApiError> {
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
    let items = items.into_iter().map(ScheduleView::of).collect();
    Ok(Json(SchedulePage { items, next_cursor }))
}

#[utoipa::path(
    get,
    path = "/v1/schedules/{id}",
    tag = "schedules",
    params(("id" = String, Path, description = "the schedule")),
    responses((status = 200, description = "OK", body = ScheduleView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn get(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
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
    Ok(Json(ScheduleView::of(record)))
}

/// `DELETE /v1/schedules/{id}`: a cancelled schedule never fires again; a one-time
/// schedule's points come back. A one-time schedule that already fired is 409.
#[utoipa::path(
    delete,
    path = "/v1/schedules/{id}",
    tag = "schedules",
    params(("id" = String, Path, description = "the schedule")),
    responses((status = 200, description = "OK", body = ScheduleView), crate::openapi::Errors),
    security(("api_key" = [])),
)]
pub async fn cancel(
    Customer(customer): Customer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
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
    Ok(Json(ScheduleView::of(&record)))
}
