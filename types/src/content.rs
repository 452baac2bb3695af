//! Message content and its type.
//!
//! Korean carriers count length in EUC-KR bytes (a Hangul syllable is 2 bytes, ASCII
//! 1): up to 90 bytes is an SMS, up to 2,000 an LMS. A character EUC-KR cannot encode
//! (emoji, most non-Korean scripts) cannot be sent as SMS/LMS and is rejected up front
//! rather than being mangled by a carrier.
use std::fmt;

use serde::{Deserialize, Serialize};

pub const SMS_MAX_BYTES: usize = 90;
pub const LMS_MAX_BYTES: usize = 2_000;
pub const SUBJECT_MAX_BYTES: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Sms,
    Lms,
    Mms,
    Alimtalk,
}

impl MessageType {
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageType::Sms => "sms",
            MessageType::Lms => "lms",
            MessageType::Mms => "mms",
            MessageType::Alimtalk => "alimtalk",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Why a text cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("text must not be empty")]
    Empty,
    #[error("character {character:?} cannot be sent by SMS/LMS (not encodable in EUC-KR)")]
    Unencodable { character: char },
    #[error("text is {bytes} EUC-KR bytes, {excess} over the LMS limit of {LMS_MAX_BYTES}")]
    TooLong { bytes: usize, excess: usize },
    #[error("subject is {bytes} EUC-KR bytes, over the limit of {SUBJECT_MAX_BYTES}")]
    SubjectTooLong { bytes: usize },
}

/// The length of `text` in EUC-KR bytes, or the first character it cannot encode.
pub fn euc_kr_length(text: &str) -> Result<usize, ContentError> {
    if text.is_ascii() {
        return Ok(text.len());
    }
    let mut length = 0;
    let mut buffer = [0u8; 4];
    for character in text.chars() {
        if character.is_ascii() {
            length += 1;
            continue;
        }
        let (encoded, _, unmappable) =
            encoding_rs::EUC_KR.encode(character.encode_utf8(&mut buffer));
        if unmappable {
            return Err(ContentError::Unencodable { character });
        }
        length += encoded.len();
    }
    Ok(length)
}

/// Classifies a text message as SMS or LMS by its EUC-KR length. A subject makes it
/// an LMS whatever its length, since SMS has no subject.
pub fn classify_text(text: &str, subject: Option<&str>) -> Result<MessageType, ContentError> {
    if text.trim().is_empty() {
        return Err(ContentError::Empty);
    }
    if let Some(subject) = subject {
        let bytes = euc_kr_length(subject)?;
        if bytes > SUBJECT_MAX_BYTES {
            return Err(ContentError::SubjectTooLong { bytes });
        }
    }
    let bytes = euc_kr_length(text)?;
    if bytes > LMS_MAX_BYTES {
        return Err(ContentError::TooLong {
            bytes,
            excess: bytes - LMS_MAX_BYTES,
        });
    }
    let has_subject = subject.is_some_and(|subject| !subject.is_empty());
    if bytes <= SMS_MAX_BYTES && !has_subject {
        Ok(MessageType::Sms)
    } else {
        Ok(MessageType::Lms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hangul_counts_two_bytes_and_ascii_one() {
        assert_eq!(euc_kr_length("abc").unwrap(), 3);
        assert_eq!(euc_kr_length("안녕하세요").unwrap(), 10);
        assert_eq!(euc_kr_length("인증번호 123456").unwrap(), 15);
    }

    #[test]
    fn ninety_bytes_is_sms_and_ninety_one_is_lms() {
        assert_eq!(
            classify_text(&"a".repeat(90), None).unwrap(),
            MessageType::Sms
        );
        assert_eq!(
            classify_text(&"a".repeat(91), None).unwrap(),
            MessageType::Lms
        );
        assert_eq!(
            classify_text(&"가".repeat(45), None).unwrap(),
            MessageType::Sms
        );
        assert_eq!(
            classify_text(&"가".repeat(46), None).unwrap(),
            MessageType::Lms
        );
    }

    #[test]
    fn a_subject_makes_an_lms() {
        assert_eq!(
            classify_text("hi", Some("notice")).unwrap(),
            MessageType::Lms
        );
    }

    #[test]
    fn over_length_says_by_how_much() {
        assert_eq!(
            classify_text(&"가".repeat(1_001), None),
            Err(ContentError::TooLong {
                bytes: 2_002,
                excess: 2
            })
        );
    }

    #[test]
    fn empty_and_unencodable_text_is_rejected() {
        assert_eq!(classify_text("  ", None), Err(ContentError::Empty));
        assert_eq!(
            classify_text("hi 😀", None),
            Err(ContentError::Unencodable { character: '😀' })
        );
    }
}
