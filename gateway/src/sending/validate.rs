//! Every check a send must pass before anything is reserved or published: sender,
//! content, audience, opt-outs, composition and price, time and validity, the
//! advertising rules (and the night hold).
use std::collections::HashMap;

use rns_types::advertising::advertisement_hold_until;
use rns_types::alimtalk::AlimTalk;
use rns_types::routing::Weights;
use rns_types::{Channel, CustomerId, PhoneNumber, Priority};

use super::answer::Skipped;
use super::audience::audience;
use super::content::{draft, images};
use super::input::SendMessages;
use super::lookup::opt_out_number_of;
use crate::compose::{check_advertisement, Composed, Target};
use crate::contacts::ContactRecord;
use crate::error::ApiError;
use crate::scheduling::{self, When};
use crate::AppState;

/// A send that passed every check, waiting for its request id.
pub struct ValidSend {
    pub(super) from: PhoneNumber,
    pub(super) channel: Channel,
    pub(super) composed: Composed,
    pub(super) blocked: Vec<PhoneNumber>,
    pub(super) skipped: Vec<Skipped>,
    pub(super) images: Vec<Vec<u8>>,
    pub(super) alimtalk: Option<AlimTalk>,
    pub(super) advertisement: bool,
    pub(super) night_consent: bool,
    pub(super) priority: Priority,
    pub(super) valid_for_ms: Option<u64>,
    pub(super) when: When,
    /// An advertisement moved to 08:00 KST.
    pub(super) held: bool,
    /// The customer's weights for the channel now, for a send dispatched now.
    pub(super) weights: Option<Weights>,
    /// The customer's cap of messages per Korean day, if the operator set one.
    pub(super) daily_cap: Option<u64>,
    /// Its texts are delivered but never recorded.
    pub(super) confidential: bool,
}

/// What a send is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// To be sent: it needs someone to send to.
    Send,
    /// To be looked at while it is written ([`super::preview`]): no recipients yet is
    /// no error.
    Preview,
}

/// Every check a send must pass before anything is published.
pub async fn validate(
    state: &AppState,
    customer: &CustomerId,
    mut body: SendMessages,
    purpose: Purpose,
) -> Result<ValidSend, ApiError> {
    let from = PhoneNumber::parse(&body.from)
        .map_err(|error| ApiError::invalid("invalid_sender", error.to_string()))?;
    let (draft, alimtalk) = draft(state, customer, &mut body).await?;
    let images = images(&body.images)?;
    let audience = audience(state, customer, &mut body).await?;
    if audience.addressees.is_empty() && purpose == Purpose::Send {
        return Err(ApiError::invalid(
            "no_recipients",
            "the send has no recipients: name some in 'to', 'recipients' or non-empty 'groups'",
        ));
    }
    // The parts a send needs, read without copying the whole profile.
    let (weights, sender, daily_cap) = state
        .profile_part(customer, |profile| {
            (
                profile.weights(draft.channel, state.catalog()),
                profile
                    .sender_numbers
                    .get(&from)
                    .map(|sender| (sender.can_send(), sender.status)),
                profile.limits.daily_messages,
            )
        })
        .await?;
    match sender {
        None => {
            return Err(ApiError::invalid(
                "unknown_sender_number",
                format!("{from} is not a registered sender number; register it with POST /v1/sender-numbers"),
            ))
        }
        Some((false, status)) => {
            return Err(ApiError::invalid(
                "unverified_sender_number",
                format!(
                    "{from} is {}: only a verified sender number sends (see GET /v1/sender-numbers)",
                    status.as_str()
                ),
            ))
        }
        Some(_) => {}
    }
    let mut audience = audience;
    let all: Vec<PhoneNumber> = audience
        .addressees
        .iter()
        .map(|addressee| addressee.number.clone())
        .collect();
    // Opted out of this sender, or on the customer's blocklist: never sent to.
    let blocked = state.opt_outs().blocked(customer, &from, &all).await?;
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
        state.recurrence_limits(),
    )?;
    let valid_for_ms = scheduling::validity(
        body.valid_for,
        body.expires_at.as_deref(),
        &requested,
        now_ms,
    )?;
    let mut when = requested.clone();
    if body.advertisement {
        let line = opt_out_number_of(state, customer, &from).await?;
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
        // 08:00 (a recurring one is checked at each firing, and refused now if every
        // firing falls at night).
        if !body.night_consent {
            if let When::Recurring(recurrence) = &when {
                scheduling::check_advertisement_firings(recurrence, now_ms)?;
            }
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
        daily_cap,
        confidential: body.confidential,
    })
}
