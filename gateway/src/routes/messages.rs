//! Sending and reading messages.
//!
//! `POST /v1/messages` validates everything before anything is published or charged:
//! the body's shape; the content (its own text, or a template's, SMS or AlimTalk);
//! every recipient from `to`, `recipients` (with their own variables) and `groups`
//! (expanded to their members; duplicates removed keeping the first occurrence;
//! members who cannot be texted reported as `skipped`); the sender (registered by
//! this customer); each recipient's filled text (SMS/LMS/MMS by EUC-KR length and
//! images, see [`crate::compose`]); the advertising rules. Recipients who opted out of
//! the sender are `blocked`: recorded, never sent, never charged. Then it reserves
//! the points of the whole request (402 if short), publishes one [`SendRequest`] to
//! `send.<customer>` (or, for an advertisement at night, schedules it for 08:00 KST)
//! and answers 202 only after JetStream acknowledged it, so a 202 means durable.
//!
//! With an `Idempotency-Key` header, a repeated request returns the first one's
//! answer and sends nothing (see [`crate::idempotency`]).
//!
//! Reading what was sent is [`super::results`].
use std::collections::{BTreeMap, HashMap, HashSet};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use rns_types::alimtalk::AlimTalk;
use rns_types::routing::Weights;
use rns_types::schedule::ScheduleState;
use rns_types::trace::{TraceContext, TRACEPARENT};
use rns_types::wire::SendRequest;
use rns_types::{Channel, CustomerId, MessageType, PhoneNumber, Priority, RequestId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compose::{check_advertisement, Composed, Draft, Target};
use crate::contacts::{is_id, ContactRecord};
use crate::error::ApiError;
use crate::extract::{ApiJson, Customer};
use crate::idempotency::{self, Claim};
use crate::scheduling::{self, RecurrenceInput, When};
use crate::sending::{self, publish_paid, Publication, ScheduleView};
use crate::AppState;
use rns_types::advertising::advertisement_hold_until;

/// Most groups one send may name.
pub const MAX_GROUPS_PER_SEND: usize = 20;
/// Most images of one MMS.
pub const MAX_IMAGES: usize = 3;
/// The largest image carriers take in an MMS.
pub const MAX_IMAGE_BYTES: usize = 300 * 1024;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessages {
    #[serde(default)]
    channel: Option<Channel>,
    from: String,
    #[serde(default)]
    to: Vec<String>,
    /// Recipients with their own variables.
    #[serde(default)]
    recipients: Vec<RecipientInput>,
    /// Contact groups whose members receive the message.
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    template_id: Option<String>,
    /// Variables for every recipient.
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// MMS images: base64 JPEGs.
    #[serde(default)]
    images: Vec<ImageInput>,
    #[serde(default)]
    alimtalk: Option<AlimTalk>,
    /// For AlimTalk: the SMS/LMS to send if AlimTalk finally fails.
    #[serde(default)]
    fallback: Option<FallbackInput>,
    #[serde(default)]
    advertisement: bool,
    /// The recipients consented to advertisements at night (21:00–08:00 KST).
    #[serde(default)]
    night_consent: bool,
    /// Send once at this time (RFC 3339) instead of now.
    #[serde(default)]
    scheduled_at: Option<String>,
    /// Send repeatedly: `{"cron","timezone","until"}` or `{"every","until"}`.
    #[serde(default)]
    recurrence: Option<RecurrenceInput>,
    /// `high`, `normal` or `bulk`: the lane at the carrier. Normal by default, bulk
    /// for advertisements.
    #[serde(default)]
    priority: Option<Priority>,
    /// Seconds after the send (or each firing) its messages may still be
    /// submitted; later they end `expired`, refunded.
    #[serde(default)]
    valid_for: Option<u64>,
    /// The time after which its messages are no longer submitted (RFC 3339).
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecipientInput {
    to: String,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// The JPEG, base64-encoded.
    data: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FallbackInput {
    text: String,
    #[serde(default)]
    subject: Option<String>,
}

/// A group member that cannot be texted, reported instead of sent to.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
struct Skipped {
    contact_id: String,
    number: String,
    reason: String,
}

/// A send that passed every check, waiting for its request id.
struct ValidSend {
    from: PhoneNumber,
    channel: Channel,
    composed: Composed,
    blocked: Vec<PhoneNumber>,
    skipped: Vec<Skipped>,
    images: Vec<Vec<u8>>,
    alimtalk: Option<AlimTalk>,
    advertisement: bool,
    night_consent: bool,
    priority: Priority,
    valid_for_ms: Option<u64>,
    when: When,
    /// An advertisement moved to 08:00 KST.
    held: bool,
    /// The customer's weights for the channel now, for a send dispatched now.
    weights: Option<Weights>,
}

#[utoipa::path(
    post,
    path = "/v1/messages",
    tag = "messages",
    params(
        ("traceparent" = Option<String>, Header, description = "A W3C trace context to continue: the send's messages are logged under its trace id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Repeating a send with the same key and body answers the first answer, sending nothing again"),
    ),
    request_body = SendMessages,
    responses(
        (status = 202, description = "Accepted: JetStream holds the send", body = SendAnswer, headers(
            ("traceparent" = String, description = "The send's trace context (the caller's trace under a new span, or a new trace): grep its trace id in the services' logs"),
            ("idempotent-replayed" = String, description = "`true` when this is the first answer to the same key, replayed"),
        )),
        crate::openapi::Errors,
    ),
    security(("api_key" = [])),
)]
pub async fn send(
    Customer(customer): Customer,
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SendMessages>,
) -> Result<Response, ApiError> {
    // Only a keyed send is compared with an earlier body.
    let keyed = idempotency::key_from(&headers)?.map(|key| {
        let body = serde_json::to_vec(&body).expect("a send body serialises");
        (key, idempotency::body_hash(&body))
    });
    let valid = validate(&state, &customer, body).await?;
    // The caller's trace goes on under a span of ours; without one, a trace starts.
    let trace = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceContext::parse)
        .map_or_else(TraceContext::generate, |context| context.child());
    let traced = [(TRACEPARENT, trace.to_string())];
    let Some((key, body_hash)) = keyed else {
        // A fresh id is never published again: the send may share a SEND message.
        let response = accept(
            &state,
            &customer,
            valid,
            RequestId::generate(),
            false,
            trace,
        )
        .await?;
        return Ok((StatusCode::ACCEPTED, traced, Json(response)).into_response());
    };
    let store = state.idempotency();
    match store.claim(&customer, &key, &body_hash).await? {
        Claim::Replay(response) => Ok((
            StatusCode::ACCEPTED,
            [("idempotent-replayed", "true")],
            Json(response),
        )
            .into_response()),
        Claim::Conflict => Err(ApiError::invalid(
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body",
        )),
        Claim::Send(request_id) => {
            match accept(&state, &customer, valid, request_id, true, trace).await {
                Ok(response) => {
                    store
                        .complete(&customer, &key, &body_hash, request_id, &response)
                        .await?;
                    Ok((StatusCode::ACCEPTED, traced, Json(response)).into_response())
                }
                // After an outage the send may have been stored before it failed, so
                // the claim stays: a retry goes out under the same request id, which
                // JetStream drops if the first arrived. A refusal stored nothing.
                Err(error @ ApiError::Unavailable { .. }) => Err(error),
                Err(error) => {
                    store.release(&customer, &key).await;
                    Err(error)
                }
            }
        }
    }
}

/// The content a send asks for: its own text, or a template's.
async fn draft(
    state: &AppState,
    customer: &CustomerId,
    body: &mut SendMessages,
) -> Result<(Draft, Option<AlimTalk>), ApiError> {
    let (channel, text, subject, alimtalk) = match body.template_id.take() {
        Some(id) => {
            if body.text.is_some() || body.alimtalk.is_some() {
                return Err(ApiError::invalid(
                    "invalid_body",
                    "give either template_id or text (and alimtalk), not both",
                ));
            }
            let template = sending::find_template(state, customer, &id).await?.ok_or(
                ApiError::NotFoundNamed {
                    what: "template",
                    id,
                },
            )?;
            if body
                .channel
                .is_some_and(|channel| channel != template.channel)
            {
                return Err(ApiError::invalid(
                    "invalid_body",
                    format!("the template is for the {} channel", template.channel),
                ));
            }
            let subject = body.subject.take().or(template.subject);
            (template.channel, template.text, subject, template.alimtalk)
        }
        None => {
            let Some(text) = body.text.take() else {
                return Err(ApiError::invalid(
                    "invalid_body",
                    "a send needs 'text' or 'template_id'",
                ));
            };
            let channel = body.channel.unwrap_or_default();
            (channel, text, body.subject.take(), body.alimtalk.take())
        }
    };
    match channel {
        Channel::Sms if alimtalk.is_some() || body.fallback.is_some() => {
            return Err(ApiError::invalid(
                "invalid_body",
                "alimtalk and fallback belong to \"channel\":\"alimtalk\" sends",
            ))
        }
        Channel::Alimtalk if alimtalk.is_none() => {
            return Err(ApiError::invalid(
                "invalid_body",
                "an alimtalk send needs 'alimtalk' content (at least template_code) or an alimtalk template",
            ))
        }
        Channel::Alimtalk if !body.images.is_empty() => {
            return Err(ApiError::invalid("invalid_body", "images are for SMS-channel (MMS) sends"))
        }
        Channel::Alimtalk if body.advertisement => {
            return Err(ApiError::invalid(
                "advertisement_rules",
                "AlimTalk may not carry advertisements; send them by SMS/LMS/MMS",
            ))
        }
        _ => {}
    }
    for (name, value) in &body.variables {
        crate::contacts::check_field(name, value).map_err(|message| {
            ApiError::invalid("invalid_variables", format!("variables: {message}"))
        })?;
    }
    let fallback = body.fallback.take();
    Ok((
        Draft {
            channel,
            text,
            subject,
            alimtalk: alimtalk.clone(),
            fallback_subject: fallback
                .as_ref()
                .and_then(|fallback| fallback.subject.clone()),
            fallback_text: fallback.map(|fallback| fallback.text),
            images: body.images.len(),
            variables: std::mem::take(&mut body.variables),
        },
        alimtalk,
    ))
}

/// Decodes and checks the MMS images.
fn images(inputs: &[ImageInput]) -> Result<Vec<Vec<u8>>, ApiError> {
    if inputs.len() > MAX_IMAGES {
        return Err(ApiError::invalid(
            "invalid_images",
            format!("an MMS carries at most {MAX_IMAGES} images"),
        ));
    }
    inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let invalid = |message: String| {
                ApiError::invalid("invalid_images", format!("images[{index}]: {message}"))
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(input.data.trim())
                .map_err(|error| invalid(format!("not base64: {error}")))?;
            if !bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
                return Err(invalid("is not a JPEG".to_owned()));
            }
            if bytes.len() > MAX_IMAGE_BYTES {
                return Err(invalid(format!(
                    "is {} bytes, {} over the limit of {MAX_IMAGE_BYTES}",
                    bytes.len(),
                    bytes.len() - MAX_IMAGE_BYTES
                )));
            }
            Ok(bytes)
        })
        .collect()
}

/// One recipient of a send with what is known of them.
struct Addressee {
    number: PhoneNumber,
    /// How the request named them (`to[2]`, `group <id>`), for error messages.
    label: String,
    variables: Option<BTreeMap<String, String>>,
    contact: Option<ContactRecord>,
}

/// Everyone a send goes to, in order, without duplicates.
struct Audience {
    addressees: Vec<Addressee>,
    skipped: Vec<Skipped>,
}

async fn audience(
    state: &AppState,
    customer: &CustomerId,
    body: &mut SendMessages,
) -> Result<Audience, ApiError> {
    let max = state.max_recipients();
    if body.to.len() + body.recipients.len() > max {
        return Err(ApiError::invalid(
            "too_many_recipients",
            format!("at most {max} recipients are allowed per request"),
        ));
    }
    if body.groups.len() > MAX_GROUPS_PER_SEND {
        return Err(ApiError::invalid(
            "too_many_groups",
            format!("a send may name at most {MAX_GROUPS_PER_SEND} groups"),
        ));
    }
    let mut seen: HashSet<PhoneNumber> = HashSet::new();
    let mut audience = Audience {
        addressees: Vec::new(),
        skipped: Vec::new(),
    };
    for (position, number) in body.to.iter().enumerate() {
        let label = format!("to[{position}]");
        let parsed = PhoneNumber::parse_mobile(number)
            .map_err(|error| ApiError::invalid("invalid_recipient", format!("{label}: {error}")))?;
        if seen.insert(parsed.clone()) {
            audience.addressees.push(Addressee {
                number: parsed,
                label,
                variables: None,
                contact: None,
            });
        }
    }
    for (position, recipient) in std::mem::take(&mut body.recipients).into_iter().enumerate() {
        let label = format!("recipients[{position}]");
        let parsed = PhoneNumber::parse_mobile(&recipient.to).map_err(|error| {
            ApiError::invalid("invalid_recipient", format!("{label}.to: {error}"))
        })?;
        for (name, value) in &recipient.variables {
            crate::contacts::check_field(name, value).map_err(|message| {
                ApiError::invalid("invalid_variables", format!("{label}.variables: {message}"))
            })?;
        }
        if seen.insert(parsed.clone()) {
            audience.addressees.push(Addressee {
                number: parsed,
                label,
                variables: Some(recipient.variables),
                contact: None,
            });
        }
    }
    for group in &body.groups {
        let exists = is_id(group) && state.contacts().group(customer, group).await?.is_some();
        if !exists {
            return Err(ApiError::NotFoundNamed {
                what: "group",
                id: group.chars().take(40).collect(),
            });
        }
        let members = state.contacts().members(customer, group).await?;
        if members.len() > max {
            return Err(ApiError::invalid(
                "too_many_recipients",
                format!("group {group} has {} members; at most {max} recipients are allowed per request", members.len()),
            ));
        }
        for record in state.contacts().records(customer, &members).await? {
            match PhoneNumber::parse_mobile(&record.number) {
                Ok(number) => {
                    if seen.insert(number.clone()) {
                        audience.addressees.push(Addressee {
                            number,
                            label: format!("group {group}"),
                            variables: None,
                            contact: Some(record),
                        });
                    }
                }
                Err(error) => audience.skipped.push(Skipped {
                    contact_id: record.id.clone(),
                    number: record.number.clone(),
                    reason: error.reason.to_owned(),
                }),
            }
        }
    }
    let total = audience.addressees.len();
    if total == 0 {
        return Err(ApiError::invalid(
            "no_recipients",
            "the send has no recipients: name some in 'to', 'recipients' or non-empty 'groups'",
        ));
    }
    if total > max {
        return Err(ApiError::invalid(
            "too_many_recipients",
            format!("the send reaches {total} recipients; at most {max} are allowed per request"),
        ));
    }
    Ok(audience)
}

/// Every check a send must pass before anything is published.
async fn validate(
    state: &AppState,
    customer: &CustomerId,
    mut body: SendMessages,
) -> Result<ValidSend, ApiError> {
    let from = PhoneNumber::parse(&body.from)
        .map_err(|error| ApiError::invalid("invalid_sender", error.to_string()))?;
    let (draft, alimtalk) = draft(state, customer, &mut body).await?;
    let images = images(&body.images)?;
    let audience = audience(state, customer, &mut body).await?;
    let profile = state.profile(customer).await?;
    let weights = profile.weights(draft.channel, state.catalog());
    if !profile.sender_numbers.contains(&from) {
        return Err(ApiError::invalid(
            "unknown_sender_number",
            format!("{from} is not a registered sender number; register it with POST /v1/sender-numbers"),
        ));
    }
    let mut audience = audience;
    let all: Vec<PhoneNumber> = audience
        .addressees
        .iter()
        .map(|addressee| addressee.number.clone())
        .collect();
    let blocked = state.opt_outs().opted_out(customer, &from, &all).await?;
    // Explicit recipients who are contacts lend their fields to variables.
    let uses_variables = draft.text.contains("#{")
        || draft
            .fallback_text
            .as_deref()
            .is_some_and(|text| text.contains("#{"));
    if uses_variables {
        let unknown: Vec<&str> = audience
            .addressees
            .iter()
            .filter(|addressee| addressee.contact.is_none())
            .map(|addressee| addressee.number.as_str())
            .collect();
        let mut found: HashMap<String, ContactRecord> = state
            .contacts()
            .records_by_numbers(customer, &unknown)
            .await?
            .into_iter()
            .map(|record| (record.number.clone(), record))
            .collect();
        for addressee in &mut audience.addressees {
            if addressee.contact.is_none() {
                addressee.contact = found.remove(addressee.number.as_str());
            }
        }
    }
    let targets: Vec<Target<'_>> = audience
        .addressees
        .iter()
        .filter(|addressee| !blocked.contains(&addressee.number))
        .map(|addressee| Target {
            to: addressee.number.clone(),
            label: addressee.label.clone(),
            variables: addressee.variables.as_ref(),
            fields: addressee.contact.as_ref().map(|contact| &contact.fields),
        })
        .collect();
    let composed = draft.compose(state.prices(), &targets)?;
    let now_ms = rns_types::time::now_milliseconds();
    let requested = scheduling::when(
        body.scheduled_at.as_deref(),
        body.recurrence.as_ref(),
        now_ms,
    )?;
    let valid_for_ms = scheduling::validity(
        body.valid_for,
        body.expires_at.as_deref(),
        &requested,
        now_ms,
    )?;
    let mut when = requested.clone();
    if body.advertisement {
        let line = sending::opt_out_number_of(state, customer, &from).await?;
        let texts: Vec<&str> = composed
            .recipients
            .iter()
            .map(|recipient| recipient.text.as_deref().unwrap_or(&composed.text))
            .collect();
        if texts.is_empty() {
            check_advertisement(&[&composed.text], &line)?;
        }
        check_advertisement(&texts, &line)?;
        // Without consent, an advertisement due between 21:00 and 08:00 KST waits for
        // 08:00 (a recurring one is checked at each firing).
        if !body.night_consent {
            when = match when {
                When::Now => {
                    advertisement_hold_until(now_ms).map_or(When::Now, |at_ms| When::Once { at_ms })
                }
                When::Once { at_ms } => When::Once {
                    at_ms: advertisement_hold_until(at_ms).unwrap_or(at_ms),
                },
                recurring => recurring,
            };
        }
    }
    let blocked: Vec<PhoneNumber> = all
        .into_iter()
        .filter(|number| blocked.contains(number))
        .collect();
    Ok(ValidSend {
        from,
        channel: draft.channel,
        composed,
        blocked,
        skipped: audience.skipped,
        images,
        alimtalk,
        advertisement: body.advertisement,
        night_consent: body.night_consent,
        priority: body.priority.unwrap_or(if body.advertisement {
            Priority::Bulk
        } else {
            Priority::Normal
        }),
        valid_for_ms,
        held: when != requested,
        when,
        weights,
    })
}

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
async fn accept(
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
    };
    let request = match valid.when {
        When::Now => {
            publish_paid(state, &request, Publication::Now { keyed }).await?;
            request
        }
        When::Once { at_ms } => {
            let (request, schedule) = sending::create_once(state, request, at_ms).await?;
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
            let schedule = sending::create_recurring(state, request, recurrence).await?;
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
    schedule_id: String,
    state: ScheduleState,
    scheduled_at: Option<String>,
    next_fire_at: Option<String>,
    /// An advertisement held until 08:00 KST: when it goes.
    #[serde(skip_serializing_if = "Option::is_none")]
    held_until: Option<String>,
}

fn sent(scheduled: Option<Scheduled>, request: &SendRequest, skipped: Vec<Skipped>) -> Sent {
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
