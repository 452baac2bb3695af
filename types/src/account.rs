//! People who use the web console, and the customer (company) each belongs to.
//!
//! A person signs up with an email, a password (kept only as an argon2id hash), a
//! name and a phone number proved by a code RNS texts to it. Signing up without an
//! invitation creates a customer with the person as its `owner`; an owner invites
//! others as `owner` or `member`. A member may do what an API key with every scope
//! may, except manage keys and people.
use serde::{Deserialize, Serialize};

use crate::ids::CustomerId;
use crate::phone::PhoneNumber;

/// What a person may do for their customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including API keys and people.
    Owner,
    /// Everything but API keys and people.
    Member,
}

/// One person, as stored in the `people` bucket under its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// `p` and 26 characters (a ULID, lower case).
    pub id: String,
    /// Lower case, as [`normalise_email`] made it.
    pub email: String,
    pub name: String,
    pub phone: PhoneNumber,
    pub phone_verified: bool,
    /// argon2id, in the PHC string format (salt and parameters included).
    pub password_hash: String,
    pub customer: CustomerId,
    pub role: Role,
    pub created_at_ms: u64,
}

/// Why an email address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an email address: {0}")]
pub struct InvalidEmail(&'static str);

const MAX_EMAIL_LENGTH: usize = 254;

/// `input` as stored and compared: trimmed and lower case, checked for the shape
/// `local@domain.tld` (no spaces, one `@`, a dot in the domain). Whether it
/// receives mail is not checked: people prove their phone, not their mailbox.
pub fn normalise_email(input: &str) -> Result<String, InvalidEmail> {
    let email = input.trim().to_lowercase();
    if email.is_empty() || email.len() > MAX_EMAIL_LENGTH {
        return Err(InvalidEmail("it must be 1 to 254 characters"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(InvalidEmail("it has no @"));
    };
    if local.is_empty() || domain.contains('@') {
        return Err(InvalidEmail("it must have one @ with a name before it"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 || labels.iter().any(|label| label.is_empty()) {
        return Err(InvalidEmail("its domain must be like example.com"));
    }
    if email
        .chars()
        .any(|character| character.is_whitespace() || character.is_control())
    {
        return Err(InvalidEmail("it contains spaces"));
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_compared_in_lower_case_and_must_look_like_addresses() {
        assert_eq!(
            normalise_email("  Kim@Example.co.KR ").unwrap(),
            "kim@example.co.kr"
        );
        for bad in [
            "",
            "kim",
            "@example.com",
            "kim@",
            "kim@example",
            "kim@@example.com",
            "k im@example.com",
            "kim@example..com",
        ] {
            assert!(normalise_email(bad).is_err(), "{bad:?}");
        }
    }
}
