//! JSON documents in a NATS KV bucket, changed by compare-and-set.
//!
//! A document is one key's value. [`Documents::update`] reads it with its revision,
//! applies a change and writes it back only if nobody wrote in between (else it
//! retries with the newer value), so two gateways changing one document at once never
//! lose either change. The customer directory keeps profiles this way, and templates
//! are kept per customer the same way.
use std::marker::PhantomData;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation, UpdateErrorKind};
use bytes::Bytes;
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A document operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    #[error("{key} already exists")]
    AlreadyExists { key: String },
    #[error("{key} does not exist")]
    NotFound { key: String },
    #[error("stored document {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("key-value store unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(error: impl ToString) -> DocumentError {
    DocumentError::Unavailable(error.to_string())
}

const UPDATE_ATTEMPTS: usize = 16;

/// Documents of type `T` in one bucket.
#[derive(Debug)]
pub struct Documents<T> {
    store: kv::Store,
    document: PhantomData<fn() -> T>,
}

impl<T> Clone for Documents<T> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            document: PhantomData,
        }
    }
}

impl<T: Serialize + DeserializeOwned> Documents<T> {
    pub fn new(store: kv::Store) -> Self {
        Self {
            store,
            document: PhantomData,
        }
    }

    /// Opens bucket `bucket`, which [`crate::Topology::ensure`] created.
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        bucket: &str,
    ) -> Result<Self, DocumentError> {
        Ok(Self::new(
            jetstream.get_key_value(bucket).await.map_err(unavailable)?,
        ))
    }

    /// Stores a new document and returns its revision; fails if `key` exists.
    pub async fn create(&self, key: &str, document: &T) -> Result<u64, DocumentError> {
        match self.store.create(key, encode(document)).await {
            Ok(revision) => Ok(revision),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {
                Err(DocumentError::AlreadyExists {
                    key: key.to_owned(),
                })
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// The keys of every document, in key order (a scan of the bucket: for
    /// operators' lists, not a request's path).
    pub async fn keys(&self) -> Result<Vec<String>, DocumentError> {
        let mut keys: Vec<String> = self
            .store
            .keys()
            .await
            .map_err(unavailable)?
            .try_collect()
            .await
            .map_err(unavailable)?;
        keys.sort();
        Ok(keys)
    }

    pub async fn get(&self, key: &str) -> Result<Option<T>, DocumentError> {
        Ok(self.entry(key).await?.map(|(document, _)| document))
    }

    /// The document and its revision.
    pub async fn entry(&self, key: &str) -> Result<Option<(T, u64)>, DocumentError> {
        let Some(entry) = self.store.entry(key).await.map_err(unavailable)? else {
            return Ok(None);
        };
        if entry.operation != Operation::Put {
            return Ok(None);
        }
        let document =
            serde_json::from_slice(&entry.value).map_err(|error| DocumentError::Corrupt {
                key: key.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Some((document, entry.revision)))
    }

    /// Removes the document at `key`, and its history.
    pub async fn purge(&self, key: &str) -> Result<(), DocumentError> {
        self.store.purge(key).await.map_err(unavailable)
    }

    /// Applies `change` to the document at `key` atomically and returns the result.
    /// A missing document is `initial()` if given, else [`DocumentError::NotFound`].
    /// `change` may run more than once when another writer wins a race.
    pub async fn update<E>(
        &self,
        key: &str,
        initial: Option<fn() -> T>,
        change: impl FnMut(&mut T) -> Result<(), E>,
    ) -> Result<Result<T, E>, DocumentError> {
        Ok(self
            .update_with_revision(key, initial, change)
            .await?
            .map(|(document, _)| document))
    }

    /// As [`Documents::update`], with the revision the result was written at.
    pub async fn update_with_revision<E>(
        &self,
        key: &str,
        initial: Option<fn() -> T>,
        mut change: impl FnMut(&mut T) -> Result<(), E>,
    ) -> Result<Result<(T, u64), E>, DocumentError> {
        for _ in 0..UPDATE_ATTEMPTS {
            let (mut document, revision) = match (self.entry(key).await?, initial) {
                (Some(found), _) => found,
                (None, Some(initial)) => (initial(), 0),
                (None, None) => {
                    return Err(DocumentError::NotFound {
                        key: key.to_owned(),
                    })
                }
            };
            if let Err(refused) = change(&mut document) {
                return Ok(Err(refused));
            }
            // Revision 0 means "must not exist yet"; a deleted key has a tombstone
            // revision, which `update` accepts as well.
            let written = if revision == 0 {
                match self.store.create(key, encode(&document)).await {
                    Err(error) if error.kind() == CreateErrorKind::AlreadyExists => continue,
                    other => other.map_err(unavailable),
                }
            } else {
                match self.store.update(key, encode(&document), revision).await {
                    Err(error) if error.kind() == UpdateErrorKind::WrongLastRevision => continue,
                    other => other.map_err(unavailable),
                }
            };
            return Ok(Ok((document, written?)));
        }
        Err(DocumentError::Unavailable(format!(
            "{key} kept changing during {UPDATE_ATTEMPTS} attempts"
        )))
    }
}

fn encode<T: Serialize>(document: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(document).expect("a document serialises"))
}
