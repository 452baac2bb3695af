//! A valid send accepted: its images stored, its points reserved and its request
//! published now (gathered, [`crate::gathering`]) or under a schedule; the 202 body
//! once JetStream acknowledged it.
use rns_types::trace::TraceContext;
use rns_types::wire::SendRequest;
use rns_types::{CustomerId, RequestId};
use sha2::{Digest, Sha256};

use super::answer::{sent, Scheduled, SendAnswer};
use super::publish::{publish_paid, Publication};
use super::schedule_book::{create_once, create_recurring};
use super::validate::ValidSend;
use crate::error::ApiError;
use crate::scheduling::When;
use crate::AppState;

/// Stores each image once per customer and content; returns their names.
async fn store_images(
    state: &AppState,
    customer: &CustomerId,
    images: &[Vec<u8>],
) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::with_capacity(images.len());
    for image in images {
        let name = format!("{customer}/{}", hex::encode(Sha256::digest(image)));
        if state.images().info(&name).await.is_err() {
            state
                .images()
                .put(name.as_str(), &mut image.as_slice())
                .await
                .map_err(|error| ApiError::unavailable("the image store", error))?;
        }
        names.push(name);
    }
    Ok(names)
}

/// Publishes the send under `request_id` and returns the 202 body once JetStream
/// acknowledged it. A `keyed` send (under an `Idempotency-Key`) may be published
/// again under the same request id, so it is never gathered ([`crate::gathering`]).
pub async fn accept(
    state: &AppState,
    customer: &CustomerId,
    valid: ValidSend,
    request_id: RequestId,
    keyed: bool,
    trace: TraceContext,
) -> Result<SendAnswer, ApiError> {
    let images = store_images(state, customer, &valid.images).await?;
    let composed = valid.composed;
    // The id's time is the acceptance time, so lists filter and order by either.
    let request = SendRequest {
        accepted_at_ms: request_id.made_at_ms(),
        request_id,
        customer_id: customer.clone(),
        channel: valid.channel,
        message_type: composed.message_type,
        from: valid.from,
        subject: composed.subject,
        text: composed.text,
        recipients: composed.recipients,
        blocked: valid.blocked,
        prices: *state.prices(),
        images,
        alimtalk: valid.alimtalk,
        fallback: composed.fallback,
        advertisement: valid.advertisement,
        night_consent: valid.night_consent,
        schedule_id: None,
        // Held and scheduled sends route by the weights of their time.
        weights: matches!(valid.when, When::Now)
            .then_some(valid.weights)
            .flatten(),
        priority: valid.priority,
        valid_for_ms: valid.valid_for_ms,
        trace: Some(trace),
        confidential: valid.confidential,
    };
    // A daily cap counts what is sent now or once later, when it is accepted.
    if let (Some(cap), false) = (valid.daily_cap, matches!(valid.when, When::Recurring(_))) {
        state
            .rate_limits()
            .count_day(customer, request.message_count() as u64, cap)
            .await?;
    }
    let request = match valid.when {
        When::Now => {
            publish_paid(state, &request, Publication::Now { keyed }).await?;
            request
        }
        When::Once { at_ms } => {
            let (request, schedule) = create_once(state, request, at_ms).await?;
            let scheduled = Scheduled {
                held_until: valid.held.then(|| schedule.scheduled_at.clone()).flatten(),
                schedule_id: schedule.id,
                state: schedule.state,
                scheduled_at: schedule.scheduled_at,
                next_fire_at: schedule.next_fire_at,
            };
            return Ok(SendAnswer::Sent(sent(
                Some(scheduled),
                &request,
                valid.skipped,
            )));
        }
        When::Recurring(recurrence) => {
            let schedule = create_recurring(state, request, recurrence).await?;
            return Ok(SendAnswer::Recurring {
                schedule_id: schedule.id.clone(),
                schedule,
            });
        }
    };
    metrics::counter!(crate::metric_names::GATEWAY_MESSAGES_ACCEPTED_TOTAL, "channel" => request.channel.to_string())
        .increment(request.recipients.len() as u64);
    tracing::debug!(trace_id = %trace.trace_id(), customer = %customer, request = %request.request_id, recipients = request.recipients.len(), "send accepted");
    Ok(SendAnswer::Sent(sent(None, &request, valid.skipped)))
}
