//! Korean phone numbers, normalised to their national digits (`01012345678`).
//!
//! Accepted spellings: `010-1234-5678`, `010 1234 5678`, `01012345678`,
//! `+82 10-1234-5678`, `+821012345678` and `(02) 123-4567`. Recipients of SMS must be
//! mobile numbers (`010` and the legacy `011`, `016`-`019` prefixes); sender numbers may
//! also be landline, `070` internet-phone, `080` free-call and `15xx`/`16xx`/`18xx`
//! representative numbers, which is what Korean carriers allow as caller ids.
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a Korean phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{number:?} is not a valid Korean phone number: {reason}")]
pub struct InvalidPhoneNumber {
    pub number: String,
    pub reason: &'static str,
}

/// A normalised Korean phone number (national digits only).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

crate::string_schema!(
    PhoneNumber,
    "A Korean phone number: national digits, `-` and spaces allowed on input (`010-1234-5678`)"
);

const MAX_INPUT_LENGTH: usize = 32;

impl PhoneNumber {
    /// Parses any accepted spelling of a Korean mobile, landline or service number.
    pub fn parse(input: &str) -> Result<Self, InvalidPhoneNumber> {
        let invalid = |reason| InvalidPhoneNumber {
            number: input.chars().take(MAX_INPUT_LENGTH).collect(),
            reason,
        };
        if input.len() > MAX_INPUT_LENGTH {
            return Err(invalid("too long"));
        }
        let trimmed = input.trim();
        let (international, rest) = match trimmed.strip_prefix('+') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        let mut digits = String::with_capacity(rest.len() + 1);
        for character in rest.chars() {
            match character {
                '0'..='9' => digits.push(character),
                '-' | ' ' | '(' | ')' | '.' => {}
                _ => {
                    return Err(invalid(
                        "contains a character other than digits and separators",
                    ))
                }
            }
        }
        let national = if international {
            let Some(subscriber) = digits.strip_prefix("82") else {
                return Err(invalid("only +82 (Korea) numbers are supported"));
            };
            let subscriber = subscriber.strip_prefix('0').unwrap_or(subscriber);
            format!("0{subscriber}")
        } else {
            digits
        };
        if national.len() < 8 {
            return Err(invalid("too short"));
        }
        if national.len() > 11 {
            return Err(invalid("too long"));
        }
        if !(is_mobile(&national) || is_fixed_or_service(&national)) {
            return Err(invalid("unknown prefix or wrong length"));
        }
        Ok(Self(national))
    }

    /// Parses a number that must be able to receive SMS (a mobile number).
    pub fn parse_mobile(input: &str) -> Result<Self, InvalidPhoneNumber> {
        let number = Self::parse(input)?;
        if !number.is_mobile() {
            return Err(InvalidPhoneNumber {
                number: number.0,
                reason: "not a mobile number",
            });
        }
        Ok(number)
    }

    pub fn is_mobile(&self) -> bool {
        is_mobile(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Normalises a contact's number: a Korean number to its national digits, any other
/// international number to E.164 (`+` and 8 to 15 digits, separators removed).
/// Contacts may hold numbers RNS cannot text (landlines, foreign numbers); a send
/// to such a contact reports it instead of sending.
pub fn normalise_contact_number(input: &str) -> Result<String, InvalidPhoneNumber> {
    match PhoneNumber::parse(input) {
        Ok(number) => Ok(number.0),
        Err(korean_error) => {
            let trimmed = input.trim();
            let Some(rest) = trimmed.strip_prefix('+') else {
                return Err(korean_error);
            };
            if rest.starts_with("82") {
                return Err(korean_error);
            }
            let mut digits = String::with_capacity(rest.len() + 1);
            digits.push('+');
            for character in rest.chars() {
                match character {
                    '0'..='9' => digits.push(character),
                    '-' | ' ' | '(' | ')' | '.' => {}
                    _ => return Err(korean_error),
                }
            }
            let count = digits.len() - 1;
            if !(8..=15).contains(&count) || digits.as_bytes()[1] == b'0' {
                return Err(InvalidPhoneNumber {
                    number: input.chars().take(MAX_INPUT_LENGTH).collect(),
                    reason: "an international number has 8 to 15 digits after + and a country code",
                });
            }
            Ok(digits)
        }
    }
}

fn is_mobile(digits: &str) -> bool {
    match &digits.as_bytes()[..3.min(digits.len())] {
        b"010" => digits.len() == 11,
        b"011" | b"016" | b"017" | b"018" | b"019" => digits.len() == 10 || digits.len() == 11,
        _ => false,
    }
}

fn is_fixed_or_service(digits: &str) -> bool {
    let bytes = digits.as_bytes();
    let length = digits.len();
    if bytes[0] == b'1' {
        // Representative numbers: 15xx-xxxx, 16xx-xxxx, 18xx-xxxx.
        return length == 8 && matches!(bytes[1], b'5' | b'6' | b'8');
    }
    if bytes[0] != b'0' {
        return false;
    }
    if bytes[1] == b'2' {
        // Seoul: 02-xxx-xxxx or 02-xxxx-xxxx.
        return length == 9 || length == 10;
    }
    match &bytes[1..3] {
        b"70" | b"80" => length == 11 || length == 10,
        [b'3'..=b'6', b'1'..=b'5'] => length == 10 || length == 11,
        _ => false,
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = InvalidPhoneNumber;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PhoneNumber> for String {
    fn from(number: PhoneNumber) -> Self {
        number.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_spelling_normalises_to_national_digits() {
        for spelling in [
            "01012345678",
            "010-1234-5678",
            " 010 1234 5678 ",
            "+82 10-1234-5678",
            "+821012345678",
            "+82 010 1234 5678",
        ] {
            assert_eq!(
                PhoneNumber::parse_mobile(spelling).unwrap().as_str(),
                "01012345678",
                "{spelling}"
            );
        }
    }

    #[test]
    fn landline_and_service_numbers_are_valid_senders_but_not_recipients() {
        for number in [
            "02-123-4567",
            "(031) 1234-5678",
            "1588-1234",
            "080-123-4567",
            "070-1234-5678",
        ] {
            let parsed = PhoneNumber::parse(number).unwrap();
            assert!(!parsed.is_mobile(), "{number}");
            assert!(PhoneNumber::parse_mobile(number).is_err(), "{number}");
        }
    }

    #[test]
    fn contact_numbers_are_korean_or_e164() {
        assert_eq!(
            normalise_contact_number("010-1234-5678").unwrap(),
            "01012345678"
        );
        assert_eq!(
            normalise_contact_number("+82 2-123-4567").unwrap(),
            "021234567"
        );
        assert_eq!(
            normalise_contact_number("+1 (202) 555-0100").unwrap(),
            "+12025550100"
        );
        for bad in ["+1 22", "+0 123 456 789", "hello", "+82 99", "010-12"] {
            assert!(normalise_contact_number(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_numbers_are_rejected_with_a_reason() {
        for bad in [
            "",
            "hello",
            "010-1234",
            "0101234567890",
            "+1 202 555 0100",
            "099-123-4567",
            "010*1234*5678",
            "1234-5678",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
