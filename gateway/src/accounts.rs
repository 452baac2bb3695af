//! People, their sessions and invitations (see [`rns_types::account`]).
//!
//! - People are documents in the `people` KV bucket by id; `person_emails` maps the
//!   SHA-256 of an email to the person's id, and creating that key is what makes an
//!   email taken, so two sign-ups with one email cannot both win. A customer's
//!   people are listed from the Redis set `rns:c:<customer>:people`.
//! - Passwords are hashed with argon2id (RustCrypto's defaults: 19 MiB, 2 passes),
//!   off the request threads.
//! - A session is a random token in an `HttpOnly`, `Secure`, `SameSite=Strict`
//!   cookie; Redis keeps its SHA-256 at `rns:session:<hash>` with the person's id
//!   and the session's CSRF token, for 12 hours from its last use. A request that
//!   changes anything with a session must carry that CSRF token in `X-CSRF-Token`.
//! - An invitation is a random token kept as `rns:invitation:<hash>` for 7 days;
//!   signing up with it joins its customer in its role, once.
use std::collections::BTreeMap;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use async_nats::jetstream::kv;
use bytes::Bytes;
use rand::Rng;
use redis::aio::ConnectionManager;
use rns_nats::{DocumentError, Documents};
use rns_types::account::{Person, Role};
use rns_types::subjects::{PEOPLE_BUCKET, PERSON_EMAILS_BUCKET};
use rns_types::CustomerId;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::hash_api_key;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "rns_session";
/// The header that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts after its last use.
pub const SESSION_SECONDS: u64 = 12 * 60 * 60;
const INVITATION_SECONDS: u64 = 7 * 24 * 60 * 60;

/// A signed-in person's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub person: String,
    pub csrf_token: String,
}

/// An invitation to join a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub customer: CustomerId,
    pub role: Role,
    /// The email it was made for: only a sign-up with it may use it.
    pub email: String,
    pub invited_by: String,
    pub expires_at_ms: u64,
}

#[derive(Clone)]
pub struct Accounts {
    people: Documents<Person>,
    emails: kv::Store,
    connection: ConnectionManager,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Accounts").finish_non_exhaustive()
    }
}

fn unavailable(error: impl Into<crate::error::BoxError>) -> ApiError {
    ApiError::unavailable("accounts", error)
}

fn documents_unavailable(error: DocumentError) -> ApiError {
    unavailable(error.to_string())
}

/// A random token of 32 bytes, hex.
fn token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    hex::encode(bytes)
}

fn people_key(customer: &CustomerId) -> String {
    format!("rns:c:{customer}:people")
}

/// Hashes `password` with argon2id and a fresh salt (on a blocking thread).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .map_err(|error| unavailable(error.to_string()))
    })
    .await
    .map_err(unavailable)?
}

/// Whether `password` matches `hash` (on a blocking thread).
pub async fn password_matches(password: String, hash: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash).map_err(|error| unavailable(error.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(unavailable)?
}

impl Accounts {
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        connection: ConnectionManager,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            people: Documents::open(jetstream, PEOPLE_BUCKET)
                .await
                .map_err(documents_unavailable)?,
            emails: jetstream
                .get_key_value(PERSON_EMAILS_BUCKET)
                .await
                .map_err(unavailable)?,
            connection,
        })
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Stores a new person; 409 when the email is taken.
    pub async fn create(&self, person: &Person) -> Result<(), ApiError> {
        let email_key = hash_api_key(&person.email);
        match self
            .emails
            .create(email_key.as_str(), Bytes::from(person.id.clone()))
            .await
        {
            Ok(_) => {}
            Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => {
                return Err(ApiError::Conflict(
                    "an account with this email exists; sign in instead".to_owned(),
                ))
            }
            Err(error) => return Err(unavailable(error)),
        }
        if let Err(error) = self.people.create(&person.id, person).await {
            // The email is free again for a sign-up that can finish.
            let _ = self.emails.purge(email_key.as_str()).await;
            return Err(documents_unavailable(error));
        }
        let _: () = redis::cmd("SADD")
            .arg(people_key(&person.customer))
            .arg(&person.id)
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn person(&self, id: &str) -> Result<Option<Person>, ApiError> {
        self.people.get(id).await.map_err(documents_unavailable)
    }

    pub async fn person_by_email(&self, email: &str) -> Result<Option<Person>, ApiError> {
        let Some(id) = self
            .emails
            .get(hash_api_key(email))
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        self.person(&String::from_utf8_lossy(&id)).await
    }

    /// Applies `change` to the person atomically; 404 when there is none.
    pub async fn update(
        &self,
        id: &str,
        change: impl FnMut(&mut Person) -> Result<(), ApiError>,
    ) -> Result<Person, ApiError> {
        match self.people.update(id, None, change).await {
            Ok(result) => result,
            Err(DocumentError::NotFound { .. }) => Err(ApiError::NotFound("person")),
            Err(error) => Err(documents_unavailable(error)),
        }
    }

    /// Removes a person: their email is free again and their sessions end at their
    /// next use (the person is gone).
    pub async fn remove(&self, person: &Person) -> Result<(), ApiError> {
        self.people
            .purge(&person.id)
            .await
            .map_err(documents_unavailable)?;
        self.emails
            .purge(hash_api_key(&person.email))
            .await
            .map_err(unavailable)?;
        let _: () = redis::cmd("SREM")
            .arg(people_key(&person.customer))
            .arg(&person.id)
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The customer's people, by id.
    pub async fn people_of(&self, customer: &CustomerId) -> Result<Vec<Person>, ApiError> {
        let ids: Vec<String> = redis::cmd("SMEMBERS")
            .arg(people_key(customer))
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        let mut people = BTreeMap::new();
        for id in ids {
            if let Some(person) = self.person(&id).await? {
                people.insert(person.id.clone(), person);
            }
        }
        Ok(people.into_values().collect())
    }

    /// Starts a session for `person`; returns its token (for the cookie) and the
    /// session.
    pub async fn start_session(&self, person: &str) -> Result<(String, Session), ApiError> {
        let session = Session {
            person: person.to_owned(),
            csrf_token: token(),
        };
        let token = token();
        let _: () = redis::cmd("SET")
            .arg(format!("rns:session:{}", hash_api_key(&token)))
            .arg(serde_json::to_string(&session).expect("a session serialises"))
            .arg("EX")
            .arg(SESSION_SECONDS)
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        Ok((token, session))
    }

    /// The session of `token`, its 12 hours counted again from now.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, ApiError> {
        let key = format!("rns:session:{}", hash_api_key(token));
        let stored: Option<String> = redis::cmd("GETEX")
            .arg(&key)
            .arg("EX")
            .arg(SESSION_SECONDS)
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        Ok(stored.and_then(|stored| serde_json::from_str(&stored).ok()))
    }

    pub async fn end_session(&self, token: &str) -> Result<(), ApiError> {
        let _: () = redis::cmd("DEL")
            .arg(format!("rns:session:{}", hash_api_key(token)))
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Stores an invitation; returns its token (shown once).
    pub async fn invite(&self, invitation: &Invitation) -> Result<String, ApiError> {
        let token = token();
        let _: () = redis::cmd("SET")
            .arg(format!("rns:invitation:{}", hash_api_key(&token)))
            .arg(serde_json::to_string(invitation).expect("an invitation serialises"))
            .arg("EX")
            .arg(INVITATION_SECONDS)
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        Ok(token)
    }

    /// Takes the invitation of `token` (it can be used once).
    pub async fn take_invitation(&self, token: &str) -> Result<Option<Invitation>, ApiError> {
        let stored: Option<String> = redis::cmd("GETDEL")
            .arg(format!("rns:invitation:{}", hash_api_key(token)))
            .query_async(&mut self.connection())
            .await
            .map_err(unavailable)?;
        Ok(stored.and_then(|stored| serde_json::from_str(&stored).ok()))
    }

    /// Puts back an invitation taken by a sign-up that failed after taking it.
    pub async fn restore_invitation(&self, token: &str, invitation: &Invitation) {
        let left_ms = invitation
            .expires_at_ms
            .saturating_sub(rns_types::time::now_milliseconds());
        if left_ms == 0 {
            return;
        }
        let restored: Result<(), redis::RedisError> = redis::cmd("SET")
            .arg(format!("rns:invitation:{}", hash_api_key(token)))
            .arg(serde_json::to_string(invitation).expect("an invitation serialises"))
            .arg("PX")
            .arg(left_ms)
            .query_async(&mut self.connection())
            .await;
        if let Err(error) = restored {
            tracing::warn!(%error, "an invitation could not be put back");
        }
    }
}

/// The invitation's lifetime, for its `expires_at`.
pub fn invitation_expiry(now_ms: u64) -> u64 {
    now_ms + INVITATION_SECONDS * 1_000
}
