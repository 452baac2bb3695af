//! The customer directory: profiles and API keys in NATS KV.
//!
//! `customers/<customer id>` holds a [`CustomerProfile`] and `api_keys/<sha256 hex>`
//! the id of the customer that owns the key; the key itself is never stored. Updates
//! are compare-and-set on the key's revision, retried on conflict, so two gateways
//! changing one customer at once never lose either change.
use async_nats::jetstream::context::Context;
use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use rns_types::subjects::{API_KEYS_BUCKET, CUSTOMERS_BUCKET};
use rns_types::{CustomerId, CustomerProfile};

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

const UPDATE_ATTEMPTS: usize = 16;

#[derive(Debug, Clone)]
pub struct CustomerDirectory {
    customers: kv::Store,
    api_keys: kv::Store,
}

impl CustomerDirectory {
    /// Opens the buckets that [`crate::Topology::ensure`] created.
    pub async fn open(jetstream: &Context) -> Result<Self, DirectoryError> {
        Ok(Self {
            customers: jetstream
                .get_key_value(CUSTOMERS_BUCKET)
                .await
                .map_err(unavailable)?,
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
        let document = encode(profile);
        match self.customers.create(profile.id.as_str(), document).await {
            Ok(_) => {}
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                return Err(DirectoryError::AlreadyExists(profile.id.clone()));
            }
            Err(error) => return Err(unavailable(error)),
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
        Ok(self.entry(customer).await?.map(|(profile, _)| profile))
    }

    async fn entry(
        &self,
        customer: &CustomerId,
    ) -> Result<Option<(CustomerProfile, u64)>, DirectoryError> {
        let Some(entry) = self
            .customers
            .entry(customer.as_str())
            .await
            .map_err(unavailable)?
        else {
            return Ok(None);
        };
        if entry.operation != Operation::Put {
            return Ok(None);
        }
        let profile =
            serde_json::from_slice(&entry.value).map_err(|error| DirectoryError::Corrupt {
                customer: customer.to_string(),
                reason: error.to_string(),
            })?;
        Ok(Some((profile, entry.revision)))
    }

    /// Applies `change` to the customer's profile atomically and returns the result.
    /// `change` may run more than once when another writer wins a race.
    pub async fn update<E>(
        &self,
        customer: &CustomerId,
        mut change: impl FnMut(&mut CustomerProfile) -> Result<(), E>,
    ) -> Result<Result<CustomerProfile, E>, DirectoryError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some((mut profile, revision)) = self.entry(customer).await? else {
                return Err(DirectoryError::NotFound(customer.clone()));
            };
            if let Err(refused) = change(&mut profile) {
                return Ok(Err(refused));
            }
            match self
                .customers
                .update(customer.as_str(), encode(&profile), revision)
                .await
            {
                Ok(_) => return Ok(Ok(profile)),
                Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => continue,
                Err(error) => return Err(unavailable(error)),
            }
        }
        Err(DirectoryError::Unavailable(format!(
            "profile of {customer} kept changing during {UPDATE_ATTEMPTS} attempts"
        )))
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

fn encode(profile: &CustomerProfile) -> Bytes {
    Bytes::from(serde_json::to_vec(profile).expect("a profile serialises"))
}
