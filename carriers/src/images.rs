//! MMS images for carrier submits, read from the `mms_images` object store.
//!
//! A request stores each image once; every recipient's job names it. Workers keep the
//! base64 of recently used images in a bounded cache, so a 10,000-recipient MMS reads
//! each image from JetStream about once per worker process, not 10,000 times.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::object_store::{GetErrorKind, ObjectStore};
use base64::Engine;
use tokio::io::AsyncReadExt;

use crate::http::SubmitImage;

/// Images kept in memory per process (each at most 300 KB, as base64 ~400 KB).
const CACHED_IMAGES: usize = 64;

/// Why an image could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageError {
    /// The image is gone (expired or never stored): no retry can help.
    Missing(String),
    /// JetStream did not answer: retry later.
    Unavailable(String),
}

#[derive(Clone)]
pub struct ImageStore {
    store: ObjectStore,
    cache: Arc<Mutex<HashMap<String, Arc<str>>>>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ImageStore").finish_non_exhaustive()
    }
}

impl ImageStore {
    pub fn new(store: ObjectStore) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    /// The images named, base64-encoded, in order.
    pub async fn load(&self, names: &[String]) -> Result<Vec<SubmitImage>, ImageError> {
        let mut images = Vec::with_capacity(names.len());
        for name in names {
            images.push(SubmitImage {
                name: name.rsplit('/').next().unwrap_or(name).to_owned(),
                data: self.one(name).await?.to_string(),
            });
        }
        Ok(images)
    }

    async fn one(&self, name: &str) -> Result<Arc<str>, ImageError> {
        if let Some(cached) = self.lock().get(name) {
            return Ok(cached.clone());
        }
        let mut object = self
            .store
            .get(name)
            .await
            .map_err(|error| match error.kind() {
                GetErrorKind::NotFound => {
                    ImageError::Missing(format!("image {name} is not stored"))
                }
                _ => ImageError::Unavailable(format!("image store: {error}")),
            })?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|error| ImageError::Unavailable(format!("reading image {name}: {error}")))?;
        let encoded: Arc<str> = base64::engine::general_purpose::STANDARD
            .encode(&bytes)
            .into();
        let mut cache = self.lock();
        if cache.len() >= CACHED_IMAGES {
            cache.clear();
        }
        cache.insert(name.to_owned(), encoded.clone());
        Ok(encoded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<str>>> {
        self.cache
            .lock()
            .expect("image cache lock is never poisoned")
    }
}
