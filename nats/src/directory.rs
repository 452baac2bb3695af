//! The customer directory: profiles and API keys in NATS KV.
//!
//! `customers/<customer id>` holds a [`CustomerProfile`] and `api_keys/<sha256 hex>`
//! an [`ApiKeyRecord`]: the customer that owns the key, its id, name and scopes; the
//! key itself is never stored. Updates
//! are compare-and-set on the key's revision, retried on conflict, so two gateways
//! changing one customer at once never lose either change.
//!
//! A process that reads a profile per message (the gateway, per send) opens the
//! directory [`CustomerDirectory::replicated`]: it follows the `customers` bucket
//! into memory and reads profiles from there. Its own writes are applied to its copy
//! before they return, so whoever changed a profile through it sees the change in
//! the next read; a change made through another process arrives with the bucket's
//! watch, within moments. A customer not yet in the copy is read from the bucket.
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv;
use bytes::Bytes;
use rns_types::api_key::ApiKeyRecord;
use rns_types::subjects::{API_KEYS_BUCKET, CUSTOMERS_BUCKET};
use rns_types::{CustomerId, CustomerProfile};
use tokio_util::sync::CancellationToken;

use crate::documents::{DocumentError, Documents};

/// A directory operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("customer {0} already exists")]
    AlreadyExists(CustomerId),
    #[error("customer {0} does not exist")]
    NotFound(CustomerId),
    #[error("stored profile of {customer} is unreadable: {reason}")]
    Corrupt { customer: String, reason: String },
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(error: impl ToString) -> DirectoryError {
    DirectoryError::Unavailable(error.to_string())
}

impl From<DocumentError> for DirectoryError {
    fn from(error: DocumentError) -> Self {
        match error {
            DocumentError::Corrupt { key, reason } => DirectoryError::Corrupt {
                customer: key,
                reason,
            },
            other => DirectoryError::Unavailable(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CustomerDirectory {
    profiles: Documents<CustomerProfile>,
    api_keys: kv::Store,
    replica: Option<Replica>,
}

/// Profiles as last seen, by customer id, each with the bucket revision it was
/// written at (`None`: deleted at that revision).
#[derive(Debug, Clone, Default)]
struct Replica(Arc<RwLock<HashMap<String, Kept>>>);

/// A profile's revision, and the profile (`None`: deleted).
type Kept = (u64, Option<Arc<CustomerProfile>>);

impl Replica {
    /// Keeps `profile` for `customer` unless a later revision is already kept.
    fn remember(&self, customer: &str, revision: u64, profile: Option<CustomerProfile>) {
        let mut profiles = self.0.write().expect("replica lock is never poisoned");
        match profiles.get(customer) {
            Some((kept, _)) if *kept >= revision => {}
            _ => {
                profiles.insert(customer.to_owned(), (revision, profile.map(Arc::new)));
            }
        }
    }

    /// `None` if `customer` was never seen; `Some(None)` if it was deleted.
    fn get(&self, customer: &str) -> Option<Option<CustomerProfile>> {
        self.read(customer, CustomerProfile::clone)
    }

    /// `part` of the kept profile, without copying the rest: `None` if `customer`
    /// was never seen; `Some(None)` if it was deleted.
    fn read<T>(
        &self,
        customer: &str,
        part: impl FnOnce(&CustomerProfile) -> T,
    ) -> Option<Option<T>> {
        let profiles = self.0.read().expect("replica lock is never poisoned");
        profiles
            .get(customer)
            .map(|(_, profile)| profile.as_deref().map(part))
    }
}

impl CustomerDirectory {
    /// Opens the buckets that [`crate::Topology::ensure`] created.
    pub async fn open(jetstream: &Context) -> Result<Self, DirectoryError> {
        Ok(Self {
            profiles: Documents::open(jetstream, CUSTOMERS_BUCKET).await?,
            api_keys: jetstream
                .get_key_value(API_KEYS_BUCKET)
                .await
                .map_err(unavailable)?,
            replica: None,
        })
    }

    /// Opens the directory and follows the `customers` bucket into memory until
    /// `shutdown` (see the module's documentation).
    pub async fn replicated(
        jetstream: &Context,
        shutdown: CancellationToken,
    ) -> Result<Self, DirectoryError> {
        let replica = Replica::default();
        let followed = replica.clone();
        crate::follow_bucket(
            jetstream,
            CUSTOMERS_BUCKET,
            shutdown,
            move |customer, value, revision| match value
                .map(serde_json::from_slice::<CustomerProfile>)
            {
                Some(Ok(profile)) => followed.remember(customer, revision, Some(profile)),
                Some(Err(error)) => {
                    // Not kept: reads of it go to the bucket and report it corrupt.
                    tracing::error!(%customer, %error, "unreadable customer profile");
                }
                None => followed.remember(customer, revision, None),
            },
        )
        .await
        .map_err(DirectoryError::Unavailable)?;
        Ok(Self {
            replica: Some(replica),
            ..Self::open(jetstream).await?
        })
    }

    /// Stores a new customer and its first API key (already listed in the profile);
    /// fails if the id is taken.
    pub async fn create(
        &self,
        profile: &CustomerProfile,
        api_key_hash: &str,
        key: &ApiKeyRecord,
    ) -> Result<(), DirectoryError> {
        match self.profiles.create(profile.id.as_str(), profile).await {
            Ok(revision) => self.remember(profile, revision),
            Err(DocumentError::AlreadyExists { .. }) => {
                return Err(DirectoryError::AlreadyExists(profile.id.clone()));
            }
            Err(error) => return Err(error.into()),
        }
        self.put_key(api_key_hash, key).await
    }

    /// Stores a new customer without an API key (one that signed up in the
    /// console); fails if the id is taken.
    pub async fn create_profile(&self, profile: &CustomerProfile) -> Result<(), DirectoryError> {
        match self.profiles.create(profile.id.as_str(), profile).await {
            Ok(revision) => {
                self.remember(profile, revision);
                Ok(())
            }
            Err(DocumentError::AlreadyExists { .. }) => {
                Err(DirectoryError::AlreadyExists(profile.id.clone()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Stores `profile` unless its customer exists (then nothing changes): the
    /// operator's own customer, which no key reaches until the operator issues one.
    pub async fn ensure_profile(&self, profile: &CustomerProfile) -> Result<(), DirectoryError> {
        match self.profiles.create(profile.id.as_str(), profile).await {
            Ok(revision) => {
                self.remember(profile, revision);
                Ok(())
            }
            Err(DocumentError::AlreadyExists { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Stores the key with this hash.
    pub async fn put_key(
        &self,
        api_key_hash: &str,
        key: &ApiKeyRecord,
    ) -> Result<(), DirectoryError> {
        let value = serde_json::to_vec(key).expect("a key record serialises");
        self.api_keys
            .put(api_key_hash, Bytes::from(value))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Removes the key with this hash: it stops working.
    pub async fn delete_key(&self, api_key_hash: &str) -> Result<(), DirectoryError> {
        self.api_keys.purge(api_key_hash).await.map_err(unavailable)
    }

    /// Up to `limit` profiles after customer `after`, in id order, and whether more
    /// follow (a scan of the bucket's keys: the operator's list).
    pub async fn list(
        &self,
        after: Option<&CustomerId>,
        limit: usize,
    ) -> Result<(Vec<CustomerProfile>, bool), DirectoryError> {
        let keys = self.profiles.keys().await?;
        let mut profiles = Vec::with_capacity(limit);
        let mut following = keys
            .iter()
            .filter(|key| after.is_none_or(|after| key.as_str() > after.as_str()));
        for key in following.by_ref() {
            if profiles.len() == limit {
                return Ok((profiles, true));
            }
            // Deleted between the scan and the read: not listed.
            if let Some(profile) = self.profiles.get(key).await? {
                profiles.push(profile);
            }
        }
        Ok((profiles, false))
    }

    pub async fn profile(
        &self,
        customer: &CustomerId,
    ) -> Result<Option<CustomerProfile>, DirectoryError> {
        let Some(replica) = &self.replica else {
            return Ok(self.profiles.get(customer.as_str()).await?);
        };
        if let Some(kept) = replica.get(customer.as_str()) {
            return Ok(kept);
        }
        match self.profiles.entry(customer.as_str()).await? {
            Some((profile, revision)) => {
                replica.remember(customer.as_str(), revision, Some(profile.clone()));
                Ok(Some(profile))
            }
            None => Ok(None),
        }
    }

    /// `part` of the customer's profile: read from the followed copy without copying
    /// the rest of the profile (a request's hot path reads one field), else as
    /// [`CustomerDirectory::profile`].
    pub async fn profile_part<T>(
        &self,
        customer: &CustomerId,
        part: impl Fn(&CustomerProfile) -> T,
    ) -> Result<Option<T>, DirectoryError> {
        if let Some(kept) = self
            .replica
            .as_ref()
            .and_then(|replica| replica.read(customer.as_str(), &part))
        {
            return Ok(kept);
        }
        Ok(self.profile(customer).await?.as_ref().map(part))
    }

    /// Applies `change` to the customer's profile atomically and returns the result.
    /// `change` may run more than once when another writer wins a race.
    pub async fn update<E>(
        &self,
        customer: &CustomerId,
        change: impl FnMut(&mut CustomerProfile) -> Result<(), E>,
    ) -> Result<Result<CustomerProfile, E>, DirectoryError> {
        let updated = self
            .profiles
            .update_with_revision(customer.as_str(), None, change)
            .await
            .map_err(|error| match error {
                DocumentError::NotFound { .. } => DirectoryError::NotFound(customer.clone()),
                other => DirectoryError::from(other),
            })?;
        Ok(updated.map(|(profile, revision)| {
            self.remember(&profile, revision);
            profile
        }))
    }

    /// Applies a profile this directory wrote at `revision` to its copy, if it keeps one.
    fn remember(&self, profile: &CustomerProfile, revision: u64) {
        if let Some(replica) = &self.replica {
            replica.remember(profile.id.as_str(), revision, Some(profile.clone()));
        }
    }

    /// The API key with this hash.
    pub async fn key(&self, api_key_hash: &str) -> Result<Option<ApiKeyRecord>, DirectoryError> {
        let Some(value) = self.api_keys.get(api_key_hash).await.map_err(unavailable)? else {
            return Ok(None);
        };
        ApiKeyRecord::parse(&value)
            .map(Some)
            .ok_or_else(|| DirectoryError::Corrupt {
                customer: format!("api key {}", &api_key_hash[..api_key_hash.len().min(12)]),
                reason: "unreadable key record".to_owned(),
            })
    }
}
