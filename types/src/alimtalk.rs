//! Kakao AlimTalk content: what a relay partner (KE, CNS) needs beyond the body text.
//!
//! AlimTalk messages follow a template the customer registered with Kakao
//! (`template_code`); an emphasised title and subtitle, an item description, an image
//! and up to five buttons may accompany the body. Limits are Kakao's: body 1,000
//! characters, title and subtitle 50, button names 14.
use serde::{Deserialize, Serialize};

pub const BODY_MAX_CHARACTERS: usize = 1_000;
pub const TITLE_MAX_CHARACTERS: usize = 50;
pub const DESCRIPTION_MAX_CHARACTERS: usize = 200;
pub const BUTTON_NAME_MAX_CHARACTERS: usize = 14;
pub const MAX_BUTTONS: usize = 5;
const MAX_TEMPLATE_CODE_LENGTH: usize = 64;
const MAX_URL_LENGTH: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlimTalk {
    /// The template code Kakao approved.
    pub template_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtitle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<Button>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ButtonKind {
    /// 배송조회: opens the delivery tracking of the parcel named in the body.
    DeliveryTracking,
    /// 웹링크: opens `url_mobile` (and `url_pc` on desktop).
    WebLink,
    /// 앱링크: opens the app by `scheme_android` / `scheme_ios`.
    AppLink,
    /// 봇키워드: sends the button name to the channel's chatbot.
    BotKeyword,
    /// 메시지전달: forwards the message to the channel's chatbot.
    MessageForward,
    /// 채널추가: adds the sender's Kakao channel.
    AddChannel,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub kind: ButtonKind,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_mobile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_pc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_android: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_ios: Option<String>,
}

/// Why AlimTalk content cannot be sent, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidAlimTalk {
    pub field: String,
    pub reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InvalidAlimTalk {
    InvalidAlimTalk {
        field: field.into(),
        reason: reason.into(),
    }
}

fn check_length(field: &str, value: &str, limit: usize) -> Result<(), InvalidAlimTalk> {
    let length = value.chars().count();
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if length > limit {
        return Err(invalid(
            field,
            format!(
                "is {length} characters, {} over the limit of {limit}",
                length - limit
            ),
        ));
    }
    Ok(())
}

fn check_url(field: &str, value: &str) -> Result<(), InvalidAlimTalk> {
    if value.len() > MAX_URL_LENGTH
        || !(value.starts_with("https://") || value.starts_with("http://"))
        || value.chars().any(char::is_whitespace)
    {
        return Err(invalid(field, "must be an http(s) URL without spaces"));
    }
    Ok(())
}

impl AlimTalk {
    /// Checks every field and the body text against Kakao's rules.
    pub fn validate(&self, body: &str) -> Result<(), InvalidAlimTalk> {
        check_length("text", body, BODY_MAX_CHARACTERS)?;
        let code = self.template_code.as_str();
        if code.is_empty()
            || code.len() > MAX_TEMPLATE_CODE_LENGTH
            || !code
                .chars()
                .all(|character| character.is_ascii_alphanumeric() || "_-".contains(character))
        {
            return Err(invalid(
                "alimtalk.template_code",
                "must be 1 to 64 letters, digits, '_' or '-'",
            ));
        }
        for (field, value, limit) in [
            ("alimtalk.title", &self.title, TITLE_MAX_CHARACTERS),
            ("alimtalk.subtitle", &self.subtitle, TITLE_MAX_CHARACTERS),
            (
                "alimtalk.description",
                &self.description,
                DESCRIPTION_MAX_CHARACTERS,
            ),
        ] {
            if let Some(value) = value {
                check_length(field, value, limit)?;
            }
        }
        if self.subtitle.is_some() && self.title.is_none() {
            return Err(invalid("alimtalk.subtitle", "needs a title"));
        }
        if let Some(url) = &self.image_url {
            check_url("alimtalk.image_url", url)?;
        }
        if self.buttons.len() > MAX_BUTTONS {
            return Err(invalid(
                "alimtalk.buttons",
                format!("at most {MAX_BUTTONS} buttons are allowed"),
            ));
        }
        for (index, button) in self.buttons.iter().enumerate() {
            button.validate(&format!("alimtalk.buttons[{index}]"))?;
        }
        Ok(())
    }
}

impl Button {
    fn validate(&self, field: &str) -> Result<(), InvalidAlimTalk> {
        check_length(
            &format!("{field}.name"),
            &self.name,
            BUTTON_NAME_MAX_CHARACTERS,
        )?;
        let links = [
            ("url_mobile", &self.url_mobile),
            ("url_pc", &self.url_pc),
            ("scheme_android", &self.scheme_android),
            ("scheme_ios", &self.scheme_ios),
        ];
        match self.kind {
            ButtonKind::WebLink => {
                let Some(url) = &self.url_mobile else {
                    return Err(invalid(
                        format!("{field}.url_mobile"),
                        "a web_link button needs url_mobile",
                    ));
                };
                check_url(&format!("{field}.url_mobile"), url)?;
                if let Some(url) = &self.url_pc {
                    check_url(&format!("{field}.url_pc"), url)?;
                }
                if self.scheme_android.is_some() || self.scheme_ios.is_some() {
                    return Err(invalid(
                        field,
                        "a web_link button takes URLs, not app schemes",
                    ));
                }
            }
            ButtonKind::AppLink => {
                for (name, value) in [
                    ("scheme_android", &self.scheme_android),
                    ("scheme_ios", &self.scheme_ios),
                ] {
                    match value {
                        Some(scheme) if scheme.contains("://") && scheme.len() <= MAX_URL_LENGTH => {}
                        _ => {
                            return Err(invalid(
                                format!("{field}.{name}"),
                                "an app_link button needs scheme_android and scheme_ios (such as myapp://open)",
                            ))
                        }
                    }
                }
                for (name, value) in [("url_mobile", &self.url_mobile), ("url_pc", &self.url_pc)] {
                    if let Some(url) = value {
                        check_url(&format!("{field}.{name}"), url)?;
                    }
                }
            }
            ButtonKind::DeliveryTracking
            | ButtonKind::BotKeyword
            | ButtonKind::MessageForward
            | ButtonKind::AddChannel => {
                if let Some((name, _)) = links.iter().find(|(_, value)| value.is_some()) {
                    return Err(invalid(
                        format!("{field}.{name}"),
                        "this kind of button takes no link",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn button(kind: ButtonKind) -> Button {
        Button {
            kind,
            name: "열기".into(),
            url_mobile: None,
            url_pc: None,
            scheme_android: None,
            scheme_ios: None,
        }
    }

    fn content(buttons: Vec<Button>) -> AlimTalk {
        AlimTalk {
            template_code: "order_shipped".into(),
            title: Some("배송 시작".into()),
            buttons,
            ..Default::default()
        }
    }

    #[test]
    fn every_kind_of_button_validates_with_its_own_links() {
        let web = Button {
            url_mobile: Some("https://m.example.com".into()),
            ..button(ButtonKind::WebLink)
        };
        let app = Button {
            scheme_android: Some("shop://order".into()),
            scheme_ios: Some("shop://order".into()),
            ..button(ButtonKind::AppLink)
        };
        let all = vec![
            button(ButtonKind::DeliveryTracking),
            web,
            app,
            button(ButtonKind::BotKeyword),
            button(ButtonKind::AddChannel),
        ];
        content(all)
            .validate("주문하신 상품이 발송되었습니다.")
            .unwrap();
    }

    #[test]
    fn missing_or_misplaced_links_name_the_field() {
        let error = content(vec![button(ButtonKind::WebLink)])
            .validate("body")
            .unwrap_err();
        assert_eq!(error.field, "alimtalk.buttons[0].url_mobile");
        let tracking = Button {
            url_mobile: Some("https://x.example".into()),
            ..button(ButtonKind::DeliveryTracking)
        };
        let error = content(vec![tracking]).validate("body").unwrap_err();
        assert_eq!(error.field, "alimtalk.buttons[0].url_mobile");
        let error = content(vec![button(ButtonKind::AppLink)])
            .validate("body")
            .unwrap_err();
        assert_eq!(error.field, "alimtalk.buttons[0].scheme_android");
    }

    #[test]
    fn limits_say_by_how_much_they_are_exceeded() {
        let error = content(vec![]).validate(&"가".repeat(1_003)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "text: is 1003 characters, 3 over the limit of 1000"
        );
        let six = vec![button(ButtonKind::BotKeyword); 6];
        assert!(content(six).validate("body").is_err());
        let mut bad_code = content(vec![]);
        bad_code.template_code = "a.b".into();
        assert!(bad_code.validate("body").is_err());
    }
}
