//! Templates: message texts with `#{variable}` placeholders, filled per recipient.
//!
//! A variable name is 1 to 32 characters without whitespace or braces (`#{name}`,
//! `#{이름}`, `#{order_no}`). Filling looks each name up in the recipient's own
//! variables, then the request's, then the contact's fields; a name found nowhere is
//! an error that names it, never an empty string in a customer's message.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alimtalk::AlimTalk;
use crate::carrier::Channel;

pub const MAX_VARIABLE_NAME_CHARACTERS: usize = 32;
pub const MAX_VARIABLE_VALUE_CHARACTERS: usize = 500;

/// A stored template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Template {
    pub id: String,
    pub channel: Channel,
    pub name: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// For AlimTalk templates: the content Kakao approved with the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alimtalk: Option<AlimTalk>,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
}

/// One customer's templates, stored as one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateBook {
    #[serde(default)]
    pub templates: BTreeMap<String, Template>,
}

/// Why a text cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("variable '{name}' has no value")]
    Missing { name: String },
    #[error("'#{{' at character {position} does not start a valid variable (#{{name}}, name of 1 to {MAX_VARIABLE_NAME_CHARACTERS} characters without spaces)")]
    Malformed { position: usize },
}

/// Whether `name` may be a variable name.
pub fn is_variable_name(name: &str) -> bool {
    let length = name.chars().count();
    (1..=MAX_VARIABLE_NAME_CHARACTERS).contains(&length)
        && !name
            .chars()
            .any(|character| character.is_whitespace() || "{}#".contains(character))
}

/// The pieces of a text: literal text and variable names, in order.
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(start) = rest.find("#{") {
        pieces.push(Piece::Literal(&rest[..start]));
        let after = &rest[start + 2..];
        let position = text[..offset + start].chars().count();
        let Some(end) = after.find('}') else {
            return Err(TemplateError::Malformed { position });
        };
        let name = &after[..end];
        if !is_variable_name(name) {
            return Err(TemplateError::Malformed { position });
        }
        pieces.push(Piece::Variable(name));
        let consumed = start + 2 + end + 1;
        offset += consumed;
        rest = &rest[consumed..];
    }
    pieces.push(Piece::Literal(rest));
    Ok(pieces)
}

enum Piece<'a> {
    Literal(&'a str),
    Variable(&'a str),
}

/// The distinct variable names in `text`, in order of first use.
pub fn variables_in(text: &str) -> Result<Vec<String>, TemplateError> {
    let mut names: Vec<String> = Vec::new();
    for piece in pieces(text)? {
        if let Piece::Variable(name) = piece {
            if !names.iter().any(|known| known == name) {
                names.push(name.to_owned());
            }
        }
    }
    Ok(names)
}

/// `text` with every variable replaced by `lookup(name)`.
pub fn fill<'a>(
    text: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, TemplateError> {
    let mut filled = String::with_capacity(text.len());
    for piece in pieces(text)? {
        match piece {
            Piece::Literal(literal) => filled.push_str(literal),
            Piece::Variable(name) => {
                filled.push_str(lookup(name).ok_or_else(|| TemplateError::Missing {
                    name: name.to_owned(),
                })?)
            }
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn variables_are_filled_and_missing_ones_named() {
        let values: HashMap<&str, &str> = [("이름", "김철수"), ("code", "1234")].into();
        let text = "#{이름}님, 인증번호는 #{code}입니다. #{이름}님 감사합니다.";
        assert_eq!(
            fill(text, |name| values.get(name).copied()).unwrap(),
            "김철수님, 인증번호는 1234입니다. 김철수님 감사합니다."
        );
        assert_eq!(variables_in(text).unwrap(), ["이름", "code"]);
        assert_eq!(
            fill("hi #{nick}", |name| values.get(name).copied()).unwrap_err(),
            TemplateError::Missing {
                name: "nick".into()
            }
        );
    }

    #[test]
    fn malformed_placeholders_say_where() {
        assert_eq!(
            variables_in("가나 #{oops").unwrap_err(),
            TemplateError::Malformed { position: 3 }
        );
        assert!(variables_in("#{}").is_err());
        assert!(variables_in("#{two words}").is_err());
        assert_eq!(variables_in("price #5 {x}").unwrap(), Vec::<String>::new());
    }

    proptest! {
        /// Text without placeholders comes back unchanged, whatever it contains.
        #[test]
        fn text_without_placeholders_is_unchanged(text in "[^#]{0,200}") {
            prop_assert_eq!(fill(&text, |_| None).unwrap(), text);
        }

        /// Filling inserts exactly the values, between the literal parts.
        #[test]
        fn filling_inserts_values(prefix in "[a-z ]{0,20}", value in "[가-힣a-z0-9]{0,20}", suffix in "[a-z ]{0,20}") {
            let text = format!("{prefix}#{{name}}{suffix}");
            let filled = fill(&text, |name| (name == "name").then_some(value.as_str())).unwrap();
            prop_assert_eq!(filled, format!("{prefix}{value}{suffix}"));
        }
    }
}
