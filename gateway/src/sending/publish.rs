//! A paid publish: the request's points reserved, then the request published now
//! (to `send.<customer>`) or under a schedule (to `due.<customer>`), then the
//! publish confirmed to the points store; the points returned if the publish fails.
use bytes::Bytes;
use rns_nats::{publish_schedule, MessageSchedule, Outbound};
use rns_points::{Reservation, ReservationRequest};
use rns_types::subjects::{due_subject, message_ids, SCHEDULES_STREAM};
use rns_types::wire::SendRequest;

use super::schedule_book::unavailable;
use crate::error::ApiError;
use crate::gathering::PendingSend;
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
    // A reservation made before its publish: if this gateway dies before the
    // publish is confirmed, the points come back after a while (rns_points::unpublished).
    let asked = ReservationRequest {
        once: !matches!(publication, Publication::Now { keyed: false }),
        awaits_publish: true,
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
    state
        .reservations()
        .confirm_published(customer, &request.request_id)
        .await;
    Ok(())
}
