//! The customer directory: profiles and API keys in NATS KV.
//!
//! `customers/<customer id>` holds a [`CustomerProfile`] and `api_keys/<sha256 hex>`
//! the id of the customer that owns the key; the key itself is never stored. Updates
//! are compare-and-set on the key's revision, retried on conflict, so two gateways
//! changing one customer at once never lose either change.
use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv;
use bytes::Bytes;
use rns_types::subjects::{API_KEYS_BUCKET, CUSTOMERS_BUCKET};
use rns_types::{CustomerId, CustomerProfile};

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
        })
    }

    /// Stores a new customer and its API key hash; fails if the id is taken.
    pub async fn create(
        &self,
        profile: &CustomerProfile,
        api_key_hash: &str,
    ) -> Result<(), DirectoryError> {
        match self.profiles.create(profile.id.as_str(), profile).await {
            Ok(()) => {}
            Err(DocumentError::AlreadyExists { .. }) => {
                return Err(DirectoryError::AlreadyExists(profile.id.clone()));
            }
            Err(error) => return Err(error.into()),
        }
        self.api_keys
            .put(api_key_hash, Bytes::from(profile.id.to_string()))
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    pub async fn profile(
        &self,
        customer: &CustomerId,
    ) -> Result<Option<CustomerProfile>, DirectoryError> {
        Ok(self.profiles.get(customer.as_str()).await?)
    }

    /// Applies `change` to the customer's profile atomically and returns the result.
    /// `change` may run more than once when another writer wins a race.
    pub async fn update<E>(
        &self,
        customer: &CustomerId,
        change: impl FnMut(&mut CustomerProfile) -> Result<(), E>,
    ) -> Result<Result<CustomerProfile, E>, DirectoryError> {
        self.profiles
            .update(customer.as_str(), None, change)
            .await
            .map_err(|error| match error {
                DocumentError::NotFound { .. } => DirectoryError::NotFound(customer.clone()),
                other => other.into(),
            })
    }

    /// The customer owning the API key with this hash.
    pub async fn customer_for_key(
        &self,
        api_key_hash: &str,
    ) -> Result<Option<CustomerId>, DirectoryError> {
        let Some(value) = self.api_keys.get(api_key_hash).await.map_err(unavailable)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&value);
        CustomerId::parse(&text)
            .map(Some)
            .map_err(|error| DirectoryError::Corrupt {
                customer: text.into_owned(),
                reason: error.to_string(),
            })
    }
}
