//! Codes that prove a phone is in the hands of whoever asked: a sender number's
//! customer (`customer:<id>`), or a person signing up (`person:<id>`).
//!
//! A six-digit code is texted from the operator's system number
//! ([`VerificationSettings`]) as an ordinary high-priority send of the system
//! customer: routed, failed over and recorded like every other message, and charged
//! to no one. Only the code's SHA-256 is kept, at `rns:code:<holder>:<number>` with
//! its wrong attempts, expiring with the code. A number gets at most one code a
//! minute and five a Korean day, whoever asks, so RNS cannot be used to flood a
//! phone with codes.
use rand::Rng;
use redis::aio::ConnectionManager;
use rns_types::wire::{Recipient, SendRequest};
use rns_types::{CustomerId, PhoneNumber, Priority, RequestId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::sending::{publish_paid, Publication};
use crate::AppState;

/// How numbers are verified by code (`[verification]` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct VerificationSettings {
    /// The operator's own customer, created at start if missing, whose sends carry
    /// the verification codes.
    pub system_customer: String,
    /// The operator's number the codes come from: verified for the system customer.
    pub system_number: String,
    /// How long a code may be entered.
    pub code_ttl_seconds: u64,
    /// Wrong entries before a code is void.
    pub max_attempts: u32,
    /// The shortest time between two codes to one number.
    pub resend_seconds: u64,
    /// Codes one number may receive per Korean day.
    pub codes_per_day: u32,
}

impl Default for VerificationSettings {
    fn default() -> Self {
        Self {
            system_customer: "rns".to_owned(),
            system_number: "1899-0000".to_owned(),
            code_ttl_seconds: 300,
            max_attempts: 5,
            resend_seconds: 60,
            codes_per_day: 5,
        }
    }
}

/// What a code proves, as its text says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A customer's mobile sender number.
    SenderNumber,
    /// A person's own phone, at sign-up.
    Person,
}

impl Purpose {
    fn words(self) -> &'static str {
        match self {
            Self::SenderNumber => "발신번호",
            Self::Person => "휴대폰",
        }
    }
}

/// Checks a code against `KEYS[1]` (`hash`, `attempts`): `{0}` right (the code is
/// used up), `{1, attempts left}` wrong, `{2}` no code, `{3}` too many attempts.
const CHECK: &str = r"
local stored = redis.call('HMGET', KEYS[1], 'hash', 'attempts')
if not stored[1] then return {2} end
local attempts = tonumber(stored[2]) or 0
local allowed = tonumber(ARGV[2])
if attempts >= allowed then return {3} end
if stored[1] == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return {0}
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {1, allowed - attempts - 1}
";

/// What became of an entered code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeCheck {
    Right,
    Wrong {
        attempts_left: u32,
    },
    /// None was sent, or it expired.
    Missing,
    /// Too many wrong entries: it is void.
    Exhausted,
}

/// The answer to an entered code that is not right (422 `wrong_code`, `no_code`,
/// `too_many_attempts`).
pub fn refusal(check: CodeCheck, number: &PhoneNumber) -> ApiError {
    match check {
        CodeCheck::Wrong { attempts_left } => ApiError::invalid(
            "wrong_code",
            format!("the code is wrong; {attempts_left} attempts left"),
        ),
        CodeCheck::Exhausted => ApiError::invalid(
            "too_many_attempts",
            "too many wrong codes: this code is void; ask for a new one",
        ),
        CodeCheck::Missing | CodeCheck::Right => ApiError::invalid(
            "no_code",
            format!(
                "no code is waiting for {number} (none was sent, or it expired); ask for a new one"
            ),
        ),
    }
}

#[derive(Clone)]
pub struct VerificationCodes {
    connection: ConnectionManager,
    check: redis::Script,
    settings: VerificationSettings,
    system_customer: CustomerId,
    system_number: PhoneNumber,
}

impl std::fmt::Debug for VerificationCodes {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("VerificationCodes")
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl Into<crate::error::BoxError>) -> ApiError {
    ApiError::unavailable("verification codes", error)
}

fn code_key(holder: &str, number: &PhoneNumber) -> String {
    format!("rns:code:{holder}:{number}")
}

fn code_hash(holder: &str, number: &PhoneNumber, code: &str) -> String {
    crate::extract::hash_api_key(&format!("{holder}:{number}:{code}"))
}

impl VerificationCodes {
    pub fn new(
        connection: ConnectionManager,
        settings: VerificationSettings,
    ) -> Result<Self, ApiError> {
        let system_customer = CustomerId::parse(&settings.system_customer).map_err(|error| {
            ApiError::unavailable("verification (system_customer)", error.to_string())
        })?;
        let system_number = PhoneNumber::parse(&settings.system_number)
            .map_err(|error| ApiError::unavailable("verification (system_number)", error))?;
        Ok(Self {
            connection,
            check: redis::Script::new(CHECK),
            settings,
            system_customer,
            system_number,
        })
    }

    pub fn settings(&self) -> &VerificationSettings {
        &self.settings
    }

    pub fn system_customer(&self) -> &CustomerId {
        &self.system_customer
    }

    pub fn system_number(&self) -> &PhoneNumber {
        &self.system_number
    }

    /// Makes a new code for `number` of `holder` (replacing any earlier one) and
    /// returns it; 429 when the number had a code under a minute ago or its five
    /// today.
    pub async fn new_code(&self, holder: &str, number: &PhoneNumber) -> Result<String, ApiError> {
        let mut connection = self.connection.clone();
        let cooling: Option<String> = redis::cmd("SET")
            .arg(format!("rns:code-sent:{number}"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(self.settings.resend_seconds.max(1))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        if cooling.is_none() {
            let left: i64 = redis::cmd("TTL")
                .arg(format!("rns:code-sent:{number}"))
                .query_async(&mut connection)
                .await
                .map_err(unavailable)?;
            return Err(ApiError::TooManyRequests {
                what: "verification codes to this number",
                retry_after_seconds: left.max(1) as u64,
            });
        }
        let day = rns_types::time::korean_day(rns_types::time::now_milliseconds());
        let day_key = format!("rns:codes-on:{}:{number}", day.number);
        let (sent_today, _): (u32, ()) = redis::pipe()
            .cmd("INCR")
            .arg(&day_key)
            .cmd("EXPIRE")
            .arg(&day_key)
            .arg(2 * 24 * 60 * 60)
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        if sent_today > self.settings.codes_per_day {
            return Err(ApiError::TooManyRequests {
                what: "verification codes to this number today",
                retry_after_seconds: day.milliseconds_left.div_ceil(1_000),
            });
        }
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000));
        let key = code_key(holder, number);
        let _: () = redis::pipe()
            .cmd("DEL")
            .arg(&key)
            .cmd("HSET")
            .arg(&key)
            .arg("hash")
            .arg(code_hash(holder, number, &code))
            .arg("attempts")
            .arg(0)
            .cmd("EXPIRE")
            .arg(&key)
            .arg(self.settings.code_ttl_seconds.max(1))
            .query_async(&mut connection)
            .await
            .map_err(unavailable)?;
        Ok(code)
    }

    /// Checks an entered code; a right one is used up.
    pub async fn check_code(
        &self,
        holder: &str,
        number: &PhoneNumber,
        code: &str,
    ) -> Result<CodeCheck, ApiError> {
        let answer: Vec<u32> = self
            .check
            .key(code_key(holder, number))
            .arg(code_hash(holder, number, code.trim()))
            .arg(self.settings.max_attempts.max(1))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(match answer.as_slice() {
            [0] => CodeCheck::Right,
            [1, left] => CodeCheck::Wrong {
                attempts_left: *left,
            },
            [3] => CodeCheck::Exhausted,
            _ => CodeCheck::Missing,
        })
    }
}

/// Texts a new code for `number` of `holder` to it from the operator's system
/// number; returns when the code expires (milliseconds since the epoch).
pub async fn send_code(
    state: &AppState,
    holder: &str,
    number: &PhoneNumber,
    purpose: Purpose,
) -> Result<u64, ApiError> {
    let store = state.codes();
    let code = store.new_code(holder, number).await?;
    let ttl_seconds = store.settings().code_ttl_seconds.max(1);
    let text = format!(
        "[RNS] {} 인증번호는 {code} 입니다. {}분 안에 입력하세요.",
        purpose.words(),
        ttl_seconds.div_ceil(60)
    );
    let mut request = SendRequest::sms(
        RequestId::generate(),
        store.system_customer().clone(),
        store.system_number().clone(),
        text,
        vec![Recipient::new(number.clone(), 0)],
    );
    // The operator's own message: charged to no one, first in every lane, useless
    // once the code expired.
    request.prices = rns_types::points::Prices {
        sms: 0,
        lms: 0,
        mms: 0,
        alimtalk: 0,
    };
    request.priority = Priority::High;
    request.valid_for_ms = Some(ttl_seconds * 1_000);
    // Nobody reads a code back from the records, the operator included.
    request.confidential = true;
    publish_paid(state, &request, Publication::Now { keyed: false }).await?;
    tracing::info!(%holder, %number, request = %request.request_id, "verification code sent");
    Ok(request.accepted_at_ms + ttl_seconds * 1_000)
}
