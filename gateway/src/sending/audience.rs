//! Who a send goes to: `to`, `recipients` (with their own variables) and the
//! members of `groups`, in that order, each number once (the first occurrence
//! kept); group members who cannot be texted are reported as skipped.
use std::collections::{BTreeMap, HashSet};

use rns_types::{CustomerId, PhoneNumber};

use super::answer::Skipped;
use super::input::SendMessages;
use crate::contacts::{is_id, ContactRecord};
use crate::error::ApiError;
use crate::AppState;

/// Most groups one send may name.
pub const MAX_GROUPS_PER_SEND: usize = 20;

/// One recipient of a send with what is known of them.
pub(super) struct Addressee {
    pub(super) number: PhoneNumber,
    /// How the request named them (`to[2]`, `group <id>`), for error messages.
    pub(super) label: String,
    pub(super) variables: Option<BTreeMap<String, String>>,
    pub(super) contact: Option<ContactRecord>,
}

/// Everyone a send goes to, in order, without duplicates.
pub(super) struct Audience {
    pub(super) addressees: Vec<Addressee>,
    pub(super) skipped: Vec<Skipped>,
}

pub(super) async fn audience(
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
    if total > max {
        return Err(ApiError::invalid(
            "too_many_recipients",
            format!("the send reaches {total} recipients; at most {max} are allowed per request"),
        ));
    }
    Ok(audience)
}
