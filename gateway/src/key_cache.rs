//! API keys already checked, remembered for a short while, so that most requests
//! authenticate without a round trip to the `api_keys` bucket.
//!
//! Only keys that were found are remembered (an unknown key is looked up every
//! time), each for `ttl`: a key removed from the bucket stops working within that
//! time on every gateway. The cache is bounded; when full it starts over.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rns_types::CustomerId;

#[derive(Debug)]
pub struct KeyCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (CustomerId, Instant)>>,
}

impl KeyCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The customer of the key with this hash, if it was found less than `ttl` ago.
    pub fn get(&self, key_hash: &str, now: Instant) -> Option<CustomerId> {
        let entries = self
            .entries
            .lock()
            .expect("key cache lock is never poisoned");
        entries
            .get(key_hash)
            .filter(|(_, checked_at)| now.saturating_duration_since(*checked_at) < self.ttl)
            .map(|(customer, _)| customer.clone())
    }

    /// Remembers that the key with this hash belongs to `customer`, as of `now`.
    pub fn insert(&self, key_hash: String, customer: CustomerId, now: Instant) {
        let mut entries = self
            .entries
            .lock()
            .expect("key cache lock is never poisoned");
        if entries.len() >= self.capacity && !entries.contains_key(&key_hash) {
            entries.clear();
        }
        entries.insert(key_hash, (customer, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> CustomerId {
        CustomerId::parse("acme").unwrap()
    }

    #[test]
    fn a_key_is_remembered_for_its_ttl_and_no_longer() {
        let cache = KeyCache::new(Duration::from_secs(30), 10);
        let now = Instant::now();
        assert_eq!(cache.get("hash", now), None);
        cache.insert("hash".into(), acme(), now);
        assert_eq!(
            cache.get("hash", now + Duration::from_secs(29)),
            Some(acme())
        );
        assert_eq!(cache.get("hash", now + Duration::from_secs(30)), None);
        assert_eq!(cache.get("other", now), None);
    }

    #[test]
    fn a_full_cache_starts_over_instead_of_growing() {
        let cache = KeyCache::new(Duration::from_secs(30), 2);
        let now = Instant::now();
        cache.insert("a".into(), acme(), now);
        cache.insert("b".into(), acme(), now);
        cache.insert("a".into(), acme(), now);
        assert_eq!(
            cache.get("b", now),
            Some(acme()),
            "refreshing a key keeps the rest"
        );
        cache.insert("c".into(), acme(), now);
        assert_eq!(cache.get("a", now), None);
        assert_eq!(cache.get("c", now), Some(acme()));
    }
}
