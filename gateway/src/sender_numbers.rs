//! Sender numbers: which customer holds a number, and the changes of a number's
//! status (see [`rns_types::sender_number`]).
//!
//! **Holding.** The `sender_owners` KV bucket maps a number to the one customer that
//! verified it; creating the key is the claim, so two customers verifying one number
//! at once cannot both win. A claim stays while its customer holds the number
//! (verified or suspended there); a claim whose customer no longer holds it (the
//! number was removed or rejected and the release was lost) is taken over after a
//! minute — never sooner, since a claim is written before its customer's profile
//! says `verified`.
//!
//! A mobile number is verified by a code texted to it
//! ([`crate::verification_codes`]); any other by the operator.
use async_nats::jetstream::kv;
use bytes::Bytes;
use rns_types::sender_number::{SenderNumber, SenderNumberStatus, VerificationMethod};
use rns_types::subjects::SENDER_OWNERS_BUCKET;
use rns_types::{CustomerId, PhoneNumber};
use serde::Serialize;

use crate::error::ApiError;
use crate::AppState;

/// A sender number as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SenderNumberView {
    pub number: PhoneNumber,
    pub status: SenderNumberStatus,
    /// How it is verified: `sms_code` for mobile numbers, `operator_approval` else.
    pub method: VerificationMethod,
    /// The 080 line whose calls and texts opt recipients out of this number.
    pub opt_out_number: PhoneNumber,
    pub registered_at: String,
    /// When its status last changed.
    pub decided_at: Option<String>,
    /// The operator's reason for its status.
    pub reason: Option<String>,
    /// What happens next before it can send; none once verified.
    pub next_step: Option<String>,
    /// When the code just texted to it expires (only in the answer that sent one).
    pub code_expires_at: Option<String>,
}

impl SenderNumberView {
    pub fn new(number: &PhoneNumber, sender: &SenderNumber, opt_out_number: PhoneNumber) -> Self {
        let next_step = match (sender.status, sender.method) {
            (SenderNumberStatus::Verified, _) => None,
            (SenderNumberStatus::Pending, VerificationMethod::SmsCode) => Some(format!(
                "enter the code texted to {number} with POST /v1/sender-numbers/{number}/verification; \
                 ask for a new code with POST /v1/sender-numbers/{number}/verification-code"
            )),
            (SenderNumberStatus::Pending, VerificationMethod::OperatorApproval) => Some(
                "the operator checks the number's registration papers (통신서비스 이용증명원) and approves it"
                    .to_owned(),
            ),
            (SenderNumberStatus::Suspended, _) => {
                Some("suspended by the operator: contact the operator".to_owned())
            }
            (SenderNumberStatus::Rejected, _) => {
                Some("rejected by the operator (see reason): contact the operator".to_owned())
            }
        };
        Self {
            number: number.clone(),
            status: sender.status,
            method: sender.method,
            opt_out_number,
            registered_at: rns_types::time::rfc3339(sender.registered_at_ms),
            decided_at: sender.decided_at_ms.map(rns_types::time::rfc3339),
            reason: sender.reason.clone(),
            next_step,
            code_expires_at: None,
        }
    }
}

/// A claim whose customer does not hold the number is taken over after this.
const STALE_CLAIM_SECONDS: i64 = 60;
const CLAIM_ATTEMPTS: usize = 8;

#[derive(Clone)]
pub struct SenderNumberStore {
    owners: kv::Store,
}

impl std::fmt::Debug for SenderNumberStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SenderNumberStore")
            .finish_non_exhaustive()
    }
}

fn unavailable(error: impl Into<crate::error::BoxError>) -> ApiError {
    ApiError::unavailable("sender numbers", error)
}

impl SenderNumberStore {
    pub async fn open(jetstream: &async_nats::jetstream::Context) -> Result<Self, ApiError> {
        Ok(Self {
            owners: jetstream
                .get_key_value(SENDER_OWNERS_BUCKET)
                .await
                .map_err(unavailable)?,
        })
    }

    /// The customer other than `customer` that holds `number`, if any.
    pub async fn held_by_another(
        &self,
        state: &AppState,
        customer: &CustomerId,
        number: &PhoneNumber,
    ) -> Result<Option<CustomerId>, ApiError> {
        let Some(entry) = self.live_claim(number).await? else {
            return Ok(None);
        };
        let holder = claim_holder(&entry)?;
        if &holder == customer || !still_held(state, &holder, number, &entry).await? {
            return Ok(None);
        }
        Ok(Some(holder))
    }

    /// Claims `number` for `customer` (`true`: newly); 409 if another customer
    /// holds it.
    pub async fn claim(
        &self,
        state: &AppState,
        customer: &CustomerId,
        number: &PhoneNumber,
    ) -> Result<bool, ApiError> {
        let value = Bytes::from(customer.to_string());
        for _ in 0..CLAIM_ATTEMPTS {
            let Some(entry) = self.live_claim(number).await? else {
                match self.owners.create(number.as_str(), value.clone()).await {
                    Ok(_) => return Ok(true),
                    Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => continue,
                    Err(error) => return Err(unavailable(error)),
                }
            };
            let holder = claim_holder(&entry)?;
            if &holder == customer {
                return Ok(false);
            }
            if still_held(state, &holder, number, &entry).await? {
                return Err(taken(number));
            }
            match self
                .owners
                .update(number.as_str(), value.clone(), entry.revision)
                .await
            {
                Ok(_) => return Ok(true),
                Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(error) => return Err(unavailable(error)),
            }
        }
        Err(unavailable("the number's claim kept changing; try again"))
    }

    /// Gives up `customer`'s claim on `number` (it was removed or rejected).
    pub async fn release(&self, customer: &CustomerId, number: &PhoneNumber) {
        let released = async {
            let Some(entry) = self.live_claim(number).await? else {
                return Ok(());
            };
            if claim_holder(&entry)? != *customer {
                return Ok(());
            }
            self.owners
                .delete_expect_revision(number.as_str(), Some(entry.revision))
                .await
                .map_err(unavailable)
        };
        if let Err(error) = released.await {
            // A claim left behind is taken over once it is stale.
            tracing::warn!(%customer, %number, %error, "releasing a sender number's claim failed");
        }
    }

    async fn live_claim(&self, number: &PhoneNumber) -> Result<Option<kv::Entry>, ApiError> {
        Ok(self
            .owners
            .entry(number.as_str())
            .await
            .map_err(unavailable)?
            .filter(|entry| entry.operation == kv::Operation::Put))
    }
}

fn taken(number: &PhoneNumber) -> ApiError {
    ApiError::Conflict(format!(
        "{number} is verified by another customer; a number sends for one customer only"
    ))
}

fn claim_holder(entry: &kv::Entry) -> Result<CustomerId, ApiError> {
    std::str::from_utf8(&entry.value)
        .ok()
        .and_then(|holder| CustomerId::parse(holder).ok())
        .ok_or_else(|| unavailable(format!("the claim on {} is unreadable", entry.key)))
}

/// Whether the claim `entry` of `holder` still stands: `holder` holds the number,
/// or the claim is too recent to tell (its profile may not say so yet).
async fn still_held(
    state: &AppState,
    holder: &CustomerId,
    number: &PhoneNumber,
    entry: &kv::Entry,
) -> Result<bool, ApiError> {
    let age = time_since(entry);
    if age < STALE_CLAIM_SECONDS {
        return Ok(true);
    }
    let holds = state
        .directory()
        .profile_part(holder, |profile| {
            profile
                .sender_numbers
                .get(number)
                .is_some_and(|sender| sender.status.holds_the_number())
        })
        .await?;
    Ok(holds == Some(true))
}

fn time_since(entry: &kv::Entry) -> i64 {
    let now = (rns_types::time::now_milliseconds() / 1_000) as i64;
    now - entry.created.unix_timestamp()
}

/// Moves `customer`'s `number` to `status` for `reason`, if `allowed` accepts the
/// number as it stands: a status that holds the number claims it first (409 if
/// another customer holds it), one that does not gives the claim up after.
pub async fn change_status(
    state: &AppState,
    customer: &CustomerId,
    number: &PhoneNumber,
    status: SenderNumberStatus,
    reason: Option<String>,
    allowed: impl Fn(&SenderNumber) -> Result<(), ApiError>,
) -> Result<rns_types::CustomerProfile, ApiError> {
    let store = state.sender_numbers();
    let claimed = status.holds_the_number() && store.claim(state, customer, number).await?;
    let now_ms = rns_types::time::now_milliseconds();
    let changed = state
        .directory()
        .update(customer, |profile| {
            let sender = profile
                .sender_numbers
                .get_mut(number)
                .ok_or(ApiError::NotFound("sender number"))?;
            allowed(sender)?;
            sender.decide(status, now_ms, reason.clone());
            Ok(())
        })
        .await;
    let profile = match changed.map_err(ApiError::from).and_then(|changed| changed) {
        Ok(profile) => profile,
        Err(error) => {
            if claimed {
                store.release(customer, number).await;
            }
            return Err(error);
        }
    };
    if !status.holds_the_number() {
        store.release(customer, number).await;
    }
    tracing::info!(%customer, %number, status = status.as_str(), "sender number status changed");
    Ok(profile)
}

/// The opt-out (080) line of `profile`'s `number` (allocated now for a number
/// registered before lines were).
pub async fn opt_out_line(
    state: &AppState,
    profile: &rns_types::CustomerProfile,
    number: &PhoneNumber,
) -> Result<PhoneNumber, ApiError> {
    match profile.opt_out_numbers.get(number) {
        Some(line) => Ok(line.clone()),
        None => crate::sending::opt_out_number_of(state, &profile.id, number).await,
    }
}

/// `profile`'s `number` as the API shows it.
pub async fn view_of(
    state: &AppState,
    profile: &rns_types::CustomerProfile,
    number: &PhoneNumber,
) -> Result<SenderNumberView, ApiError> {
    let sender = profile
        .sender_numbers
        .get(number)
        .ok_or(ApiError::NotFound("sender number"))?;
    let line = opt_out_line(state, profile, number).await?;
    Ok(SenderNumberView::new(number, sender, line))
}

/// Creates the operator's system customer if it is missing, with its system number
/// verified (and claimed), so verification codes have a sender.
pub async fn ensure_system_customer(state: &AppState) -> Result<(), ApiError> {
    let customer = state.codes().system_customer().clone();
    let number = state.codes().system_number().clone();
    let now_ms = rns_types::time::now_milliseconds();
    let profile =
        rns_types::CustomerProfile::new(customer.clone(), "RNS (operator)".to_owned(), now_ms);
    state.directory().ensure_profile(&profile).await?;
    state
        .sender_numbers()
        .claim(state, &customer, &number)
        .await?;
    // Written only when it is not so already: every gateway start comes here.
    let verified = state
        .directory()
        .profile_part(&customer, |profile| profile.may_send_from(&number))
        .await?;
    if verified == Some(true) {
        return Ok(());
    }
    state
        .directory()
        .update(&customer, |profile| {
            let sender = profile
                .sender_numbers
                .entry(number.clone())
                .or_insert_with(|| {
                    SenderNumber::verified(&number, now_ms, "the operator's system number")
                });
            if !sender.can_send() {
                sender.decide(
                    rns_types::sender_number::SenderNumberStatus::Verified,
                    now_ms,
                    Some("the operator's system number".to_owned()),
                );
            }
            Ok::<(), ApiError>(())
        })
        .await??;
    Ok(())
}
