//! Where a webhook may be delivered: only to the public internet. A customer names
//! the URL, so without this check it could aim the worker at this machine, its
//! private network or the cloud's metadata service (server-side request forgery).
//!
//! The check is made at every delivery, on the addresses the connection then uses:
//! the worker's HTTP client resolves names through [`ReceiverResolver`], which
//! refuses a name when any address it resolves to is not public
//! ([`rns_types::network::is_public_address`]), so a name re-pointed after it was
//! registered (DNS rebinding) is caught too; a URL that names an address literally
//! is checked before the request ([`check_literal_host`]). The client follows no
//! redirects, so a public receiver cannot send the request on to a private one.
//! `allow_private` (development, tests) lifts the address check.
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use rns_types::network::is_public_address;

/// Why a receiver's address was refused.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves to {address}, which is not a public address")]
pub struct NotPublic {
    pub host: String,
    pub address: IpAddr,
}

/// Resolves receivers' names and refuses those that are not public.
#[derive(Debug, Clone, Default)]
pub struct ReceiverResolver {
    /// Names answered without DNS (split-horizon setups, tests); still checked.
    pub hosts: BTreeMap<String, IpAddr>,
    pub allow_private: bool,
}

impl ReceiverResolver {
    /// The addresses of `host` a connection may use, or why there are none.
    pub async fn addresses(
        &self,
        host: &str,
    ) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let addresses: Vec<SocketAddr> = match self.hosts.get(&host) {
            Some(address) => vec![SocketAddr::new(*address, 0)],
            None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
        };
        if !self.allow_private {
            if let Some(address) = addresses
                .iter()
                .map(SocketAddr::ip)
                .find(|address| !is_public_address(*address))
            {
                return Err(Box::new(NotPublic { host, address }));
            }
        }
        Ok(addresses)
    }
}

impl Resolve for ReceiverResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let resolver = self.clone();
        Box::pin(async move {
            let addresses = resolver.addresses(name.as_str()).await?;
            Ok(Box::new(addresses.into_iter()) as Addrs)
        })
    }
}

/// Refuses a URL whose host is an address that is not public (names are checked
/// when they are resolved).
pub fn check_literal_host(url: &str, allow_private: bool) -> Result<(), NotPublic> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Ok(());
    };
    let address = match parsed.host() {
        Some(url::Host::Ipv4(address)) => IpAddr::V4(address),
        Some(url::Host::Ipv6(address)) => IpAddr::V6(address),
        _ => return Ok(()),
    };
    if allow_private || is_public_address(address) {
        Ok(())
    } else {
        Err(NotPublic {
            host: address.to_string(),
            address,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(name: &str, address: &str, allow_private: bool) -> ReceiverResolver {
        ReceiverResolver {
            hosts: BTreeMap::from([(name.to_owned(), address.parse().unwrap())]),
            allow_private,
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let resolver = mapping("receiver.example", "127.0.0.1", false);
        let error = resolver.addresses("Receiver.Example.").await.unwrap_err();
        assert!(error.to_string().contains("127.0.0.1"), "{error}");
        let metadata = mapping("metadata.example", "169.254.169.254", false);
        assert!(metadata.addresses("metadata.example").await.is_err());
        let mapped = mapping("mapped.example", "::ffff:10.0.0.1", false);
        assert!(mapped.addresses("mapped.example").await.is_err());
    }

    #[tokio::test]
    async fn a_public_address_or_a_development_setup_is_allowed() {
        let public = mapping("receiver.example", "203.0.114.7", false);
        let addresses = public.addresses("receiver.example").await.unwrap();
        assert_eq!(addresses[0].ip().to_string(), "203.0.114.7");
        let development = mapping("receiver.example", "127.0.0.1", true);
        assert!(development.addresses("receiver.example").await.is_ok());
    }

    #[test]
    fn literal_addresses_are_checked_before_the_request() {
        assert!(check_literal_host("http://127.0.0.1:8080/hook", false).is_err());
        assert!(check_literal_host("http://[::ffff:7f00:1]/hook", false).is_err());
        assert!(check_literal_host("http://[fd00:ec2::254]/", false).is_err());
        assert!(check_literal_host("http://127.0.0.1:8080/hook", true).is_ok());
        assert!(check_literal_host("https://203.0.114.7/hook", false).is_ok());
        assert!(check_literal_host("https://hooks.example.com/x", false).is_ok());
    }
}
