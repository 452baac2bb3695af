//! A send's content: its own text or a template's (SMS or AlimTalk, with its
//! fallback), checked for the channel, and its MMS images decoded and checked.
use base64::Engine;
use rns_types::alimtalk::AlimTalk;
use rns_types::{Channel, CustomerId};

use super::input::{ImageInput, SendMessages};
use super::lookup::find_template;
use crate::compose::Draft;
use crate::error::ApiError;
use crate::AppState;

/// Most images of one MMS.
pub const MAX_IMAGES: usize = 3;
/// The largest image carriers take in an MMS.
pub const MAX_IMAGE_BYTES: usize = 300 * 1024;

/// The content a send asks for: its own text, or a template's.
pub(super) async fn draft(
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
            let template =
                find_template(state, customer, &id)
                    .await?
                    .ok_or(ApiError::NotFoundNamed {
                        what: "template",
                        id,
                    })?;
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
pub(super) fn images(inputs: &[ImageInput]) -> Result<Vec<Vec<u8>>, ApiError> {
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
