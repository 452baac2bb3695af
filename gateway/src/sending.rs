//! The send use case, shared by the routes that start a send: a paid publish (points
//! reserved, then the request published now or under a schedule, the points returned
//! if the publish fails), scheduled sends (their records in the `schedules` bucket),
//! a sender number's opt-out line, and a template by id. Routes call these; no route
//! calls another route's module.
use bytes::Bytes;
use rns_nats::{publish_schedule, MessageSchedule, Outbound};
use rns_points::{Reservation, ReservationRequest};
use rns_types::schedule::{Recurrence, ScheduleBook, ScheduleRecord, ScheduleState};
use rns_types::subjects::{due_subject, message_ids, schedule_subject, SCHEDULES_STREAM};
use rns_types::template::Template;
use rns_types::wire::SendRequest;
use rns_types::{CustomerId, PhoneNumber, RequestId};
use serde::Serialize;

use crate::contacts::{is_id, new_id};
use crate::error::ApiError;
use crate::gathering::PendingSend;
use crate::scheduling::first_firing;
use crate::AppState;

/// The `SCHEDULES` stream must discard old messages when full (JetStream requires it
/// of streams with schedules), so new schedules are refused (503) once it is 90% full:
/// a held send is never dropped to make room.
pub async fn ensure_schedule_room(state: &AppState, bytes: usize) -> Result<(), ApiError> {
    let mut stream = state
        .jetstream()
        .get_stream(SCHEDULES_STREAM)
        .await
        .map_err(unavailable)?;
    let info = stream.info().await.map_err(unavailable)?;
    let limit = u64::try_from(info.config.max_bytes).unwrap_or(u64::MAX) / 10 * 9;
    if info.state.bytes + bytes as u64 > limit {
        return Err(unavailable(
            "too many sends are held for later; try again later",
        ));
    }
    Ok(())
}

/// Where a paid send is published.
pub enum Publication {
    /// To `send.<customer>`: gathered with others ([`crate::gathering`]) unless it
    /// is `keyed` (sent under an `Idempotency-Key`, so its request id may be
    /// published again).
    Now { keyed: bool },
    /// Under `schedule`, to `due.<customer>`.
    Scheduled(MessageSchedule),
}

/// Reserves the request's points, then publishes it. A publish that fails returns
/// the points; a 402 reserves and publishes nothing.
pub async fn publish_paid(
    state: &AppState,
    request: &SendRequest,
    publication: Publication,
) -> Result<(), ApiError> {
    let customer = &request.customer_id;
    let needed = request.points();
    // A request id that may be sent again (an Idempotency-Key's, or a schedule's)
    // is reserved at most once: a retry after its gateway died and the request was
    // settled must not reserve anew.
    let keyed = matches!(publication, Publication::Now { keyed: true });
    let asked = ReservationRequest {
        once: !matches!(publication, Publication::Now { keyed: false }),
        ..ReservationRequest::new(customer, &request.request_id, needed)
    };
    match state
        .reservations()
        .reserve(asked)
        .await
        .map_err(|error| ApiError::unavailable("points", error))?
    {
        Reservation::Reserved => {}
        Reservation::Insufficient { balance } => {
            return Err(ApiError::InsufficientPoints { needed, balance })
        }
    }
    let payload = Bytes::from(serde_json::to_vec(request).expect("a send request serialises"));
    let published = match publication {
        Publication::Now { keyed } => state
            .sends()
            .publish(PendingSend {
                customer: customer.clone(),
                request_id: request.request_id,
                payload,
                gatherable: !keyed,
            })
            .await
            .map_err(|error| ApiError::unavailable("JetStream", error)),
        Publication::Scheduled(schedule) => {
            let outbound = Outbound {
                subject: due_subject(customer),
                message_id: message_ids::send(&request.request_id),
                payload,
            };
            match ensure_schedule_room(state, outbound.payload.len()).await {
                Ok(()) => publish_schedule(state.jetstream(), schedule, outbound)
                    .await
                    .map_err(unavailable),
                Err(error) => Err(error),
            }
        }
    };
    if let Err(error) = published {
        // A keyed send's publish may have been stored although it failed: its points
        // stay reserved for the retry under the same request id (see `routes::messages::send`), which
        // finds them and does not reserve again.
        if keyed {
            return Err(error);
        }
        if let Err(release_error) = state
            .points()
            .release(
                customer,
                &request.request_id,
                "the request was not accepted",
            )
            .await
        {
            tracing::error!(customer = %customer, request = %request.request_id, %release_error, "returning the points of a failed publish failed");
        }
        return Err(error);
    }
    Ok(())
}

/// The opt-out number of a registered sender number, allocated on first use (sender
/// numbers registered before opt-out numbers existed get theirs here).
pub async fn opt_out_number_of(
    state: &AppState,
    customer: &CustomerId,
    sender: &PhoneNumber,
) -> Result<PhoneNumber, ApiError> {
    let profile = state.profile(customer).await?;
    if let Some(line) = profile.opt_out_numbers.get(sender) {
        return Ok(line.clone());
    }
    let allocated = state.opt_outs().allocate_line(customer, sender).await?;
    let profile = state
        .directory()
        .update(customer, |profile| {
            if !profile.sender_numbers.contains(sender) {
                return Err(ApiError::NotFound("sender number"));
            }
            profile
                .opt_out_numbers
                .entry(sender.clone())
                .or_insert_with(|| allocated.clone());
            Ok(())
        })
        .await?;
    let line = match profile {
        Ok(profile) => profile.opt_out_numbers[sender].clone(),
        Err(error) => {
            state.opt_outs().free_line(&allocated).await;
            return Err(error);
        }
    };
    if line != allocated {
        state.opt_outs().free_line(&allocated).await;
    }
    Ok(line)
}

/// The caller's template `id`, if it exists.
pub async fn find_template(
    state: &AppState,
    customer: &CustomerId,
    id: &str,
) -> Result<Option<Template>, ApiError> {
    if !is_id(id) {
        return Ok(None);
    }
    let book = state
        .templates()
        .get(customer.as_str())
        .await
        .map_err(|error| ApiError::unavailable("templates", error))?;
    Ok(book.and_then(|mut book| book.templates.remove(id)))
}

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
