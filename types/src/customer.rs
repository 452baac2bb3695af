//! A customer's configuration, as stored in the `customers` KV bucket.
//!
//! One JSON document per customer holds everything the send path checks: routing
//! weights per channel and registered sender numbers. Keeping it in one key makes a
//! send's checks one read, and every change a compare-and-set on that key's revision.
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::carrier::{CarrierCatalog, Channel};
use crate::ids::CustomerId;
use crate::phone::PhoneNumber;
use crate::routing::Weights;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerProfile {
    pub id: CustomerId,
    pub name: String,
    pub created_at_ms: u64,
    /// Weights the customer set, per channel; a channel without an entry splits
    /// equally over its carriers.
    #[serde(default)]
    pub routing: BTreeMap<Channel, Weights>,
    #[serde(default)]
    pub sender_numbers: BTreeSet<PhoneNumber>,
}

impl CustomerProfile {
    pub fn new(id: CustomerId, name: String, created_at_ms: u64) -> Self {
        Self {
            id,
            name,
            created_at_ms,
            routing: BTreeMap::new(),
            sender_numbers: BTreeSet::new(),
        }
    }

    /// The weights that apply to `channel`: the customer's own, else equal weights.
    pub fn weights(&self, channel: Channel, catalog: &CarrierCatalog) -> Option<Weights> {
        self.routing
            .get(&channel)
            .cloned()
            .or_else(|| Weights::equal(channel, catalog))
    }
}
