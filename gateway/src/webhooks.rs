//! Where a customer's webhook settings and attempts are kept, and what a webhook URL
//! may be.
//!
//! Settings live in the `webhooks` KV bucket (one entry per customer), which the
//! webhook worker watches; attempts are read from the capped Redis stream the worker
//! writes (see [`rns_types::webhook`]).
use std::net::IpAddr;

use async_nats::jetstream::kv;
use redis::aio::ConnectionManager;
use rns_types::network::is_public_address;
use rns_types::webhook::{attempts_key, AttemptRecord, WebhookConfig};
use rns_types::CustomerId;

use crate::error::ApiError;

/// Longest webhook URL accepted.
pub const MAX_URL_LENGTH: usize = 2_000;
/// Shortest and longest signing secret accepted.
pub const SECRET_LENGTHS: std::ops::RangeInclusive<usize> = 16..=256;

/// A webhook URL after its checks: `http` or `https`, a host, no fragment, and, unless
/// `allow_private` (development, tests), no address given literally that is not
/// public ([`is_public_address`]) and no name of this machine. A name is checked
/// where it matters, at every delivery, on the addresses it then resolves to
/// (`rns_analytics::receivers`).
pub fn check_url(text: &str, allow_private: bool) -> Result<String, String> {
    if text.len() > MAX_URL_LENGTH {
        return Err(format!("url must be at most {MAX_URL_LENGTH} characters"));
    }
    let url = url::Url::parse(text).map_err(|error| format!("url is not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("url must start with http:// or https://".to_owned());
    }
    if url.fragment().is_some() {
        return Err("url must not have a #fragment".to_owned());
    }
    let private = match url.host() {
        None => return Err("url must name a host".to_owned()),
        Some(url::Host::Domain(domain)) => {
            let domain = domain.to_ascii_lowercase();
            domain == "localhost" || domain.ends_with(".localhost") || domain.ends_with(".internal")
        }
        Some(url::Host::Ipv4(address)) => !is_public_address(IpAddr::V4(address)),
        Some(url::Host::Ipv6(address)) => !is_public_address(IpAddr::V6(address)),
    };
    if private && !allow_private {
        return Err("url must not point at a loopback, private or link-local address".to_owned());
    }
    Ok(url.to_string())
}

/// A page of attempts, newest first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AttemptPage {
    pub items: Vec<AttemptView>,
    pub next_cursor: Option<String>,
}

/// One delivery attempt, with its times written out.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    #[serde(flatten)]
    pub record: AttemptRecord,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// The webhook settings and attempt records of every customer.
#[derive(Clone)]
pub struct WebhookStore {
    settings: kv::Store,
    redis: ConnectionManager,
}

impl WebhookStore {
    pub async fn open(
        jetstream: &async_nats::jetstream::Context,
        redis: ConnectionManager,
    ) -> Result<Self, ApiError> {
        let settings = jetstream
            .get_key_value(rns_types::subjects::WEBHOOKS_BUCKET)
            .await
            .map_err(|error| ApiError::unavailable("webhook settings", error))?;
        Ok(Self { settings, redis })
    }

    pub async fn get(&self, customer: &CustomerId) -> Result<Option<WebhookConfig>, ApiError> {
        let value = self
            .settings
            .get(customer.as_str())
            .await
            .map_err(|error| ApiError::unavailable("webhook settings", error))?;
        Ok(value.and_then(|value| serde_json::from_slice(&value).ok()))
    }

    pub async fn put(&self, customer: &CustomerId, config: &WebhookConfig) -> Result<(), ApiError> {
        let value = serde_json::to_vec(config).expect("webhook settings serialise");
        self.settings
            .put(customer.as_str(), value.into())
            .await
            .map_err(|error| ApiError::unavailable("webhook settings", error))?;
        Ok(())
    }

    /// Removes the webhook; whether there was one.
    pub async fn delete(&self, customer: &CustomerId) -> Result<bool, ApiError> {
        let existed = self.get(customer).await?.is_some();
        if existed {
            self.settings
                .delete(customer.as_str())
                .await
                .map_err(|error| ApiError::unavailable("webhook settings", error))?;
        }
        Ok(existed)
    }

    /// Up to `limit` attempts older than `cursor` (a record id), newest first.
    pub async fn attempts(
        &self,
        customer: &CustomerId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<AttemptPage, ApiError> {
        let end = cursor.map_or_else(|| "+".to_owned(), |cursor| format!("({cursor}"));
        let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(attempts_key(customer))
            .arg(end)
            .arg("-")
            .arg("COUNT")
            .arg(limit + 1)
            .query_async(&mut self.redis.clone())
            .await?;
        let mut items = Vec::with_capacity(limit + 1);
        let mut ids = Vec::with_capacity(limit + 1);
        for entry in reply.ids {
            let text: String = entry.get("attempt").unwrap_or_default();
            let Ok(record) = serde_json::from_str::<AttemptRecord>(&text) else {
                continue;
            };
            items.push(AttemptView {
                at: rns_types::time::rfc3339(record.at_ms),
                next_attempt_at: record.next_attempt_at_ms.map(rns_types::time::rfc3339),
                record,
            });
            ids.push(entry.id);
        }
        let next_cursor = (items.len() > limit).then(|| {
            items.truncate(limit);
            ids[limit - 1].clone()
        });
        Ok(AttemptPage { items, next_cursor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_with_a_public_host_unless_private_ones_are_allowed() {
        assert_eq!(
            check_url("https://hooks.example.com/rns?x=1", false).unwrap(),
            "https://hooks.example.com/rns?x=1"
        );
        for refused in [
            "ftp://example.com/",
            "not a url",
            "https://",
            "mailto:someone@example.com",
            "https://example.com/#frag",
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://10.0.0.5/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://100.64.0.1/",
        ] {
            assert!(check_url(refused, false).is_err(), "{refused}");
        }
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(2_000)), true).is_err());
    }
}
