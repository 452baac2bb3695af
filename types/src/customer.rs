//! A customer's configuration, as stored in the `customers` KV bucket.
//!
//! One JSON document per customer holds everything the send path checks: routing
//! weights per channel and sender numbers. Keeping it in one key makes a
//! send's checks one read, and every change a compare-and-set on that key's revision.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::carrier::{CarrierCatalog, CarrierId, Channel};
use crate::ids::CustomerId;
use crate::phone::PhoneNumber;
use crate::routing::Weights;
use crate::sender_number::SenderNumbers;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    pub id: CustomerId,
    pub name: String,
    pub created_at_ms: u64,
    /// Weights the customer set, per channel; a channel without an entry splits
    /// equally over its carriers.
    #[serde(default)]
    pub routing: BTreeMap<Channel, Weights>,
    /// Failover order per channel; a channel without one fails over to its other
    /// carriers by descending weight.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failover: BTreeMap<Channel, Vec<CarrierId>>,
    /// Sender numbers with their verification (see [`crate::sender_number`]).
    #[serde(
        default,
        deserialize_with = "crate::sender_number::deserialize_sender_numbers"
    )]
    pub sender_numbers: SenderNumbers,
    /// The opt-out (080) number of each sender number: recipients call or text it to
    /// stop messages from that sender, and advertisements must print it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub opt_out_numbers: BTreeMap<PhoneNumber, PhoneNumber>,
    /// The customer's API keys by id (their hashes, names and scopes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub api_keys: BTreeMap<String, crate::api_key::ApiKeyEntry>,
    /// The operator's limits for this customer; unset ones are the gateway's defaults.
    #[serde(default, skip_serializing_if = "CustomerLimits::is_default")]
    pub limits: CustomerLimits,
    /// Set while the operator suspended the customer: it may read, not change or
    /// send, and what it queued is cancelled and refunded when the dispatcher
    /// reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Suspension>,
}

/// Why and since when the operator suspended a customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspension {
    pub reason: String,
    pub since_ms: u64,
}

/// How much a customer may ask of RNS, set by the operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerLimits {
    /// API requests per second over every gateway replica (the gateway's
    /// `requests_per_second` when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<u32>,
    /// Requests at once above that rate (twice the rate when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Messages accepted per day (Korean time); none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_messages: Option<u64>,
}

impl CustomerLimits {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl CustomerProfile {
    pub fn new(id: CustomerId, name: String, created_at_ms: u64) -> Self {
        Self {
            id,
            name,
            created_at_ms,
            routing: BTreeMap::new(),
            failover: BTreeMap::new(),
            sender_numbers: SenderNumbers::new(),
            opt_out_numbers: BTreeMap::new(),
            api_keys: BTreeMap::new(),
            limits: CustomerLimits::default(),
            suspension: None,
        }
    }

    /// Whether `number` is one of the customer's verified sender numbers.
    pub fn may_send_from(&self, number: &PhoneNumber) -> bool {
        self.sender_numbers
            .get(number)
            .is_some_and(|sender| sender.can_send())
    }

    /// The weights that apply to `channel`: the customer's own, else equal weights.
    pub fn weights(&self, channel: Channel, catalog: &CarrierCatalog) -> Option<Weights> {
        self.routing
            .get(&channel)
            .cloned()
            .or_else(|| Weights::equal(channel, catalog))
    }

    /// The carriers of `channel` in the order a failing message tries them: the
    /// customer's failover list if set, else by descending weight (ties by name).
    /// Carriers with weight 0 are left out of the weight order: 0 means never.
    pub fn failover_order(&self, channel: Channel, catalog: &CarrierCatalog) -> Vec<CarrierId> {
        if let Some(order) = self.failover.get(&channel) {
            return order.clone();
        }
        let Some(weights) = self.weights(channel, catalog) else {
            return Vec::new();
        };
        let mut carriers: Vec<(&CarrierId, u32)> =
            weights.iter().filter(|(_, weight)| *weight > 0).collect();
        carriers.sort_by(|left, right| right.1.cmp(&left.1).then_with(|| left.0.cmp(right.0)));
        carriers
            .into_iter()
            .map(|(carrier, _)| carrier.clone())
            .collect()
    }

    /// The next carrier for a message of `channel` that failed on every carrier in
    /// `tried`: the first untried carrier in failover order whose circuit is closed,
    /// else the first untried one at all (an open circuit may close again), else none.
    pub fn next_carrier(
        &self,
        channel: Channel,
        catalog: &CarrierCatalog,
        tried: &[&CarrierId],
        is_open: impl Fn(&CarrierId) -> bool,
    ) -> Option<CarrierId> {
        let untried: Vec<CarrierId> = self
            .failover_order(channel, catalog)
            .into_iter()
            .filter(|carrier| !tried.contains(&carrier))
            .collect();
        untried
            .iter()
            .find(|carrier| !is_open(carrier))
            .or_else(|| untried.first())
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn profile(weights: &[(&str, u32)]) -> CustomerProfile {
        let catalog = CarrierCatalog::korean_default();
        let raw: BTreeMap<String, u32> = weights
            .iter()
            .map(|(name, weight)| (name.to_string(), *weight))
            .collect();
        let mut profile =
            CustomerProfile::new(CustomerId::parse("acme").unwrap(), "Acme".into(), 0);
        profile.routing.insert(
            Channel::Sms,
            Weights::validate(&raw, Channel::Sms, &catalog).unwrap(),
        );
        profile
    }

    fn carrier(name: &str) -> CarrierId {
        CarrierId::parse(name).unwrap()
    }

    #[test]
    fn without_a_list_failover_goes_by_descending_weight_and_skips_zero_weights() {
        let profile = profile(&[("kt", 20), ("skt", 50), ("lgu", 0)]);
        let catalog = CarrierCatalog::korean_default();
        assert_eq!(
            profile.failover_order(Channel::Sms, &catalog),
            [carrier("skt"), carrier("kt")]
        );
        let tried = [&carrier("skt")];
        assert_eq!(
            profile.next_carrier(Channel::Sms, &catalog, &tried, |_| false),
            Some(carrier("kt"))
        );
        let all = [&carrier("skt"), &carrier("kt")];
        assert_eq!(
            profile.next_carrier(Channel::Sms, &catalog, &all, |_| false),
            None
        );
    }

    #[test]
    fn the_customers_list_wins_and_open_circuits_are_passed_over_while_another_is_closed() {
        let mut profile = profile(&[("kt", 50), ("skt", 30), ("lgu", 20)]);
        profile.failover.insert(
            Channel::Sms,
            vec![carrier("lgu"), carrier("skt"), carrier("kt")],
        );
        let catalog = CarrierCatalog::korean_default();
        let tried = [&carrier("kt")];
        assert_eq!(
            profile.next_carrier(Channel::Sms, &catalog, &tried, |_| false),
            Some(carrier("lgu"))
        );
        let lgu_open = |candidate: &CarrierId| candidate.as_str() == "lgu";
        assert_eq!(
            profile.next_carrier(Channel::Sms, &catalog, &tried, lgu_open),
            Some(carrier("skt"))
        );
        assert_eq!(
            profile.next_carrier(Channel::Sms, &catalog, &tried, |_| true),
            Some(carrier("lgu"))
        );
    }
}
