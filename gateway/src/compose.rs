//! Composing each recipient's message, without I/O: variables filled, type chosen by
//! length, price fixed, and the advertising rules checked.
//!
//! A variable is looked up in the recipient's own variables, then the request's,
//! then the recipient's contact fields. A text without variables is classified once
//! for the whole request; a text with variables is filled and classified per
//! recipient, and every error names the recipient and says what is wrong (the
//! missing variable, or by how many bytes a filled text is too long).
use std::collections::BTreeMap;

use rns_types::alimtalk::AlimTalk;
use rns_types::content::{classify_text, euc_kr_length, ContentError, LMS_MAX_BYTES};
use rns_types::points::Prices;
use rns_types::template::{fill, variables_in};
use rns_types::wire::{Fallback, Recipient};
use rns_types::{Channel, MessageType, PhoneNumber};

use crate::error::ApiError;

/// Advertisements must start with this (정보통신망법 제50조).
pub const ADVERTISEMENT_PREFIX: &str = "(광고)";

/// What a send says to send, before it is filled per recipient.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub channel: Channel,
    pub text: String,
    pub subject: Option<String>,
    pub alimtalk: Option<AlimTalk>,
    pub fallback_text: Option<String>,
    pub fallback_subject: Option<String>,
    pub images: usize,
    pub variables: BTreeMap<String, String>,
}

/// One recipient with what is known about them.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub to: PhoneNumber,
    /// How the request named them, for error messages (`to[2]`, `group …`).
    pub label: String,
    pub variables: Option<&'a BTreeMap<String, String>>,
    pub fields: Option<&'a BTreeMap<String, String>>,
}

/// The composed request: the request-level content and each recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    pub message_type: MessageType,
    pub text: String,
    pub subject: Option<String>,
    pub fallback: Option<Fallback>,
    pub recipients: Vec<Recipient>,
}

fn invalid_text(message: String) -> ApiError {
    ApiError::invalid("invalid_text", message)
}

/// The type of one SMS-channel message: MMS with images, else SMS or LMS by length.
fn classify(text: &str, subject: Option<&str>, images: usize) -> Result<MessageType, ContentError> {
    if images == 0 {
        return classify_text(text, subject);
    }
    let bytes = euc_kr_length(text)?;
    if bytes > LMS_MAX_BYTES {
        return Err(ContentError::TooLong {
            bytes,
            excess: bytes - LMS_MAX_BYTES,
        });
    }
    if let Some(subject) = subject {
        classify_text("x", Some(subject))?;
    }
    Ok(MessageType::Mms)
}

impl Draft {
    fn needs_variables(&self) -> Result<bool, ApiError> {
        for (field, text) in [
            ("text", Some(&self.text)),
            ("fallback.text", self.fallback_text.as_ref()),
        ] {
            if let Some(text) = text {
                let names = variables_in(text)
                    .map_err(|error| invalid_text(format!("{field}: {error}")))?;
                if !names.is_empty() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The subject with the request's variables filled (subjects are per request).
    fn subject(&self) -> Result<Option<String>, ApiError> {
        self.subject
            .as_deref()
            .filter(|subject| !subject.trim().is_empty())
            .map(|subject| {
                fill(subject, |name| self.variables.get(name).map(String::as_str)).map_err(
                    |error| {
                        invalid_text(format!(
                            "subject: {error} (subject variables come from 'variables')"
                        ))
                    },
                )
            })
            .transpose()
    }

    /// The type of a filled text, checked against its channel's rules.
    fn message_type(&self, text: &str, subject: Option<&str>) -> Result<MessageType, String> {
        match self.channel {
            Channel::Sms => classify(text, subject, self.images).map_err(|error| error.to_string()),
            Channel::Alimtalk => {
                let content = self
                    .alimtalk
                    .as_ref()
                    .ok_or("alimtalk content is missing")?;
                content.validate(text).map_err(|error| error.to_string())?;
                Ok(MessageType::Alimtalk)
            }
        }
    }

    fn fallback_type(&self, text: &str, subject: Option<&str>) -> Result<MessageType, String> {
        classify_text(text, subject).map_err(|error| format!("fallback: {error}"))
    }

    /// Fills and prices the message of every target.
    pub fn compose(&self, prices: &Prices, targets: &[Target<'_>]) -> Result<Composed, ApiError> {
        let subject = self.subject()?;
        let fallback_subject = self
            .fallback_subject
            .clone()
            .filter(|subject| !subject.trim().is_empty());
        let personal = self.needs_variables()?;
        let request_type = if personal {
            None
        } else {
            Some(
                self.message_type(&self.text, subject.as_deref())
                    .map_err(invalid_text)?,
            )
        };
        let request_fallback_type = match (&self.fallback_text, personal) {
            (Some(text), false) => Some(
                self.fallback_type(text, fallback_subject.as_deref())
                    .map_err(invalid_text)?,
            ),
            _ => None,
        };
        let mut recipients = Vec::with_capacity(targets.len());
        let mut first_type = request_type;
        for target in targets {
            let lookup = |name: &str| {
                [target.variables, Some(&self.variables), target.fields]
                    .into_iter()
                    .flatten()
                    .find_map(|values| values.get(name))
                    .map(String::as_str)
            };
            let for_target =
                |error: String| invalid_text(format!("{} ({}): {error}", target.label, target.to));
            let mut recipient = Recipient::new(target.to.clone(), 0);
            let message_type = match request_type {
                Some(message_type) => message_type,
                None => {
                    let text =
                        fill(&self.text, lookup).map_err(|error| for_target(error.to_string()))?;
                    let message_type = self
                        .message_type(&text, subject.as_deref())
                        .map_err(&for_target)?;
                    recipient.text = Some(text);
                    recipient.message_type = Some(message_type);
                    message_type
                }
            };
            first_type.get_or_insert(message_type);
            let fallback_type = match (&self.fallback_text, request_fallback_type) {
                (None, _) => None,
                (Some(_), Some(fallback_type)) => Some(fallback_type),
                (Some(text), None) => {
                    let text = fill(text, lookup)
                        .map_err(|error| for_target(format!("fallback: {error}")))?;
                    let fallback_type = self
                        .fallback_type(&text, fallback_subject.as_deref())
                        .map_err(&for_target)?;
                    recipient.fallback_text = Some(text);
                    Some(fallback_type)
                }
            };
            recipient.points = prices
                .of(message_type)
                .max(fallback_type.map_or(0, |fallback_type| prices.of(fallback_type)));
            recipients.push(recipient);
        }
        let message_type = first_type.unwrap_or(MessageType::Sms);
        let fallback = self.fallback_text.as_ref().map(|text| {
            // Per-recipient fallbacks carry their own text; the type and price here
            // are the request's (or the first recipient's when filled per recipient).
            let fallback_type = request_fallback_type.unwrap_or_else(|| {
                recipients
                    .first()
                    .and_then(|recipient| recipient.fallback_text.as_deref())
                    .and_then(|text| self.fallback_type(text, fallback_subject.as_deref()).ok())
                    .unwrap_or(MessageType::Sms)
            });
            Fallback {
                message_type: fallback_type,
                subject: fallback_subject.clone(),
                text: text.clone(),
                price: prices.of(fallback_type),
            }
        });
        Ok(Composed {
            message_type,
            text: self.text.clone(),
            subject,
            fallback,
            recipients,
        })
    }
}

/// Checks an advertisement: it starts with "(광고)" and prints the sender's opt-out
/// number (in any common spelling: `080-123-4567`, `0801234567`, `080 123 4567`).
pub fn check_advertisement(texts: &[&str], opt_out_number: &PhoneNumber) -> Result<(), ApiError> {
    let digits = opt_out_number.as_str();
    let (area, rest) = digits.split_at(3);
    let (middle, last) = rest.split_at(rest.len() - 4);
    let spellings = [
        digits.to_owned(),
        format!("{area}-{middle}-{last}"),
        format!("{area} {middle} {last}"),
    ];
    for text in texts {
        if !text.trim_start().starts_with(ADVERTISEMENT_PREFIX) {
            return Err(ApiError::invalid(
                "advertisement_rules",
                format!("an advertisement must start with \"{ADVERTISEMENT_PREFIX}\""),
            ));
        }
        if !spellings
            .iter()
            .any(|spelling| text.contains(spelling.as_str()))
        {
            return Err(ApiError::invalid(
                "advertisement_rules",
                format!(
                    "an advertisement must print the sender's opt-out number {}, e.g. \"무료수신거부 {}\"",
                    spellings[1], spellings[1]
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(
        to: &str,
        variables: Option<&'a BTreeMap<String, String>>,
        fields: Option<&'a BTreeMap<String, String>>,
    ) -> Target<'a> {
        Target {
            to: PhoneNumber::parse(to).unwrap(),
            label: format!("to {to}"),
            variables,
            fields,
        }
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn variables_come_from_the_recipient_then_the_request_then_the_contact() {
        let draft = Draft {
            text: "#{name}님 #{shop} 쿠폰".into(),
            variables: values(&[("shop", "RNS마트"), ("name", "고객")]),
            ..Default::default()
        };
        let own = values(&[("name", "김철수")]);
        let fields = values(&[("name", "이영희"), ("shop", "ignored")]);
        let composed = draft
            .compose(
                &Prices::default(),
                &[
                    target("01011111111", Some(&own), Some(&fields)),
                    target("01022222222", None, Some(&fields)),
                ],
            )
            .unwrap();
        assert_eq!(
            composed.recipients[0].text.as_deref(),
            Some("김철수님 RNS마트 쿠폰")
        );
        assert_eq!(
            composed.recipients[1].text.as_deref(),
            Some("고객님 RNS마트 쿠폰")
        );
    }

    #[test]
    fn a_missing_variable_names_it_and_the_recipient() {
        let draft = Draft {
            text: "#{name}님".into(),
            ..Default::default()
        };
        let error = draft
            .compose(&Prices::default(), &[target("01011111111", None, None)])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("'name'") && error.contains("01011111111"),
            "{error}"
        );
    }

    #[test]
    fn each_filled_text_is_classified_and_priced_on_its_own() {
        let draft = Draft {
            text: "#{body}".into(),
            ..Default::default()
        };
        let short = values(&[("body", "hi")]);
        let long = values(&[("body", &"가".repeat(100))]);
        let too_long = values(&[("body", &"가".repeat(1_001))]);
        let composed = draft
            .compose(
                &Prices::default(),
                &[
                    target("01011111111", Some(&short), None),
                    target("01022222222", Some(&long), None),
                ],
            )
            .unwrap();
        let types: Vec<_> = composed
            .recipients
            .iter()
            .map(|r| (r.message_type, r.points))
            .collect();
        assert_eq!(
            types,
            [(Some(MessageType::Sms), 1), (Some(MessageType::Lms), 3)]
        );
        let error = draft
            .compose(
                &Prices::default(),
                &[target("01033333333", Some(&too_long), None)],
            )
            .unwrap_err()
            .to_string();
        assert!(error.contains("2 over the LMS limit"), "{error}");
    }

    #[test]
    fn images_make_an_mms_and_a_fallback_reserves_the_dearer_price() {
        let mms = Draft {
            text: "photo".into(),
            images: 2,
            ..Default::default()
        };
        let composed = mms
            .compose(&Prices::default(), &[target("01011111111", None, None)])
            .unwrap();
        assert_eq!(
            (composed.message_type, composed.recipients[0].points),
            (MessageType::Mms, 6)
        );

        let alimtalk = Draft {
            channel: Channel::Alimtalk,
            text: "주문이 접수되었습니다".into(),
            alimtalk: Some(AlimTalk {
                template_code: "order".into(),
                ..Default::default()
            }),
            fallback_text: Some("가".repeat(60)),
            ..Default::default()
        };
        let composed = alimtalk
            .compose(&Prices::default(), &[target("01011111111", None, None)])
            .unwrap();
        assert_eq!(composed.message_type, MessageType::Alimtalk);
        assert_eq!(
            composed.fallback.as_ref().unwrap().message_type,
            MessageType::Lms
        );
        assert_eq!(composed.recipients[0].points, 3, "max(AlimTalk 1, LMS 3)");
    }

    #[test]
    fn advertisements_need_the_prefix_and_the_opt_out_number() {
        let line = PhoneNumber::parse("0801234567").unwrap();
        check_advertisement(&["(광고) 세일! 무료수신거부 080-123-4567"], &line).unwrap();
        check_advertisement(&["(광고) 세일! 수신거부 0801234567"], &line).unwrap();
        assert!(check_advertisement(&["세일! 080-123-4567"], &line).is_err());
        assert!(check_advertisement(&["(광고) 세일!"], &line).is_err());
    }
}
