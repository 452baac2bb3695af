//! API keys already checked, remembered for a short while, so that most requests
//! authenticate without a round trip to the `api_keys` bucket.
//!
//! Only keys that were found are remembered (an unknown key is looked up every
//! time), each for `ttl`, and each is forgotten the moment its entry in the bucket
//! changes ([`KeyCache::forget`], called by the gateway's watch of the bucket), so a
//! revoked key stops working on every gateway at once; the ttl bounds it if the
//! watch is interrupted. The cache is bounded; when full, the keys used least are
//! dropped (moka's TinyLFU), never all of them at once.
use std::time::Duration;

use rns_types::api_key::ApiKeyRecord;

#[derive(Debug, Clone)]
pub struct KeyCache {
    entries: moka::sync::Cache<String, ApiKeyRecord>,
}

impl KeyCache {
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(capacity.max(1))
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The key with this hash, if it was found less than `ttl` ago.
    pub fn get(&self, key_hash: &str) -> Option<ApiKeyRecord> {
        self.entries.get(key_hash)
    }

    /// Remembers the key with this hash, from now.
    pub fn insert(&self, key_hash: String, key: ApiKeyRecord) {
        self.entries.insert(key_hash, key);
    }

    /// Forgets the key with this hash (its stored entry changed).
    pub fn forget(&self, key_hash: &str) {
        self.entries.invalidate(key_hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> ApiKeyRecord {
        ApiKeyRecord::parse(b"acme").unwrap()
    }

    #[tokio::test]
    async fn a_key_is_remembered_for_its_ttl_and_no_longer() {
        let cache = KeyCache::new(Duration::from_millis(300), 10);
        assert_eq!(cache.get("hash"), None);
        cache.insert("hash".into(), acme());
        assert_eq!(cache.get("hash"), Some(acme()));
        assert_eq!(cache.get("other"), None);
        cache.insert("revoked".into(), acme());
        cache.forget("revoked");
        assert_eq!(cache.get("revoked"), None, "forgotten at once");
        let forgotten =
            rns_testkit::wait_until("the key is forgotten", Duration::from_secs(5), || async {
                cache.get("hash").is_none()
            })
            .await;
        assert!(
            forgotten >= Duration::from_millis(250),
            "forgotten after {forgotten:?}, before its ttl"
        );
    }

    #[test]
    fn a_full_cache_drops_some_keys_not_all() {
        let cache = KeyCache::new(Duration::from_secs(30), 100);
        for index in 0..1_000 {
            cache.insert(format!("key-{index}"), acme());
        }
        cache.entries.run_pending_tasks();
        let kept = cache.entries.entry_count();
        assert!(kept <= 100, "{kept} keys kept, over the capacity");
        assert!(kept >= 50, "only {kept} keys kept: the cache started over");
    }
}
