//! Routing weights and the smooth weighted round-robin schedule they define.
//!
//! A customer gives each carrier of a channel a non-negative integer weight. The
//! dispatcher turns the weights into a *schedule*: the cycle of carriers that smooth
//! weighted round-robin (nginx's algorithm) produces, reduced by the weights' greatest
//! common divisor, so 50/30/20 gives a 10-slot cycle with KT 5, SKT 3 and LG U+ 2
//! times. Message `n` of a (customer, channel) goes to `schedule[n mod cycle]`, and a
//! shared counter hands out `n`, which makes the split exact over every window of one
//! cycle, however requests are sized, and a zero weight impossible to choose.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::carrier::{CarrierCatalog, CarrierId, Channel};
use crate::CustomerId;

/// The largest allowed sum of weights: a cycle never exceeds this many slots.
pub const MAX_TOTAL_WEIGHT: u32 = 10_000;

/// A validated set of weights for one channel, ordered by carrier id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Weights(BTreeMap<CarrierId, u32>);

/// Why weights were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeightsError {
    #[error("carrier {carrier:?} does not serve the {channel} channel")]
    UnknownCarrier { carrier: String, channel: Channel },
    #[error("weights must have a positive sum")]
    ZeroSum,
    #[error("weights must sum to at most {MAX_TOTAL_WEIGHT}, not {sum}")]
    SumTooLarge { sum: u64 },
    #[error("carrier {carrier:?} appears twice in the failover order")]
    DuplicateFailoverCarrier { carrier: String },
}

/// The carrier named `name`, if it serves `channel`.
fn carrier_of_channel(
    name: &str,
    channel: Channel,
    catalog: &CarrierCatalog,
) -> Result<CarrierId, WeightsError> {
    CarrierId::parse(name)
        .ok()
        .filter(|carrier| catalog.channel_of(carrier) == Some(channel))
        .ok_or_else(|| WeightsError::UnknownCarrier {
            carrier: name.to_owned(),
            channel,
        })
}

/// Validates a failover order: carriers of `channel`, each at most once.
pub fn validate_failover(
    raw: &[String],
    channel: Channel,
    catalog: &CarrierCatalog,
) -> Result<Vec<CarrierId>, WeightsError> {
    let mut order: Vec<CarrierId> = Vec::with_capacity(raw.len());
    for name in raw {
        let carrier = carrier_of_channel(name, channel, catalog)?;
        if order.contains(&carrier) {
            return Err(WeightsError::DuplicateFailoverCarrier {
                carrier: name.clone(),
            });
        }
        order.push(carrier);
    }
    Ok(order)
}

impl Weights {
    /// Validates raw weights against the carriers of `channel` in `catalog`.
    pub fn validate(
        raw: &BTreeMap<String, u32>,
        channel: Channel,
        catalog: &CarrierCatalog,
    ) -> Result<Self, WeightsError> {
        let mut weights = BTreeMap::new();
        for (name, weight) in raw {
            weights.insert(carrier_of_channel(name, channel, catalog)?, *weight);
        }
        let sum: u64 = weights.values().map(|weight| u64::from(*weight)).sum();
        if sum == 0 {
            return Err(WeightsError::ZeroSum);
        }
        if sum > u64::from(MAX_TOTAL_WEIGHT) {
            return Err(WeightsError::SumTooLarge { sum });
        }
        Ok(Self(weights))
    }

    /// Equal weights over every carrier of `channel`: the default before a customer
    /// sets its own. `None` when the catalogue has no carrier for the channel.
    pub fn equal(channel: Channel, catalog: &CarrierCatalog) -> Option<Self> {
        let weights: BTreeMap<CarrierId, u32> = catalog
            .carriers_of(channel)
            .map(|carrier| (carrier.clone(), 1))
            .collect();
        (!weights.is_empty()).then_some(Self(weights))
    }

    /// These weights without the carriers `excluded` says to leave out, when some
    /// positive weight remains; `None` when nothing would be left.
    pub fn without(&self, excluded: impl Fn(&CarrierId) -> bool) -> Option<Weights> {
        let remaining: BTreeMap<CarrierId, u32> = self
            .0
            .iter()
            .filter(|(carrier, weight)| **weight > 0 && !excluded(carrier))
            .map(|(carrier, weight)| (carrier.clone(), *weight))
            .collect();
        (!remaining.is_empty()).then_some(Self(remaining))
    }

    pub fn get(&self, carrier: &CarrierId) -> u32 {
        self.0.get(carrier).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&CarrierId, u32)> {
        self.0.iter().map(|(carrier, weight)| (carrier, *weight))
    }

    /// Weights from their [`Weights::canonical`] text, as stored with a routing
    /// reservation; `None` if the text is not one.
    pub fn from_canonical(text: &str) -> Option<Self> {
        let mut weights = BTreeMap::new();
        for part in text.split(',') {
            let (carrier, weight) = part.split_once('=')?;
            weights.insert(CarrierId::parse(carrier).ok()?, weight.parse().ok()?);
        }
        let positive = weights.values().any(|weight| *weight > 0);
        positive.then_some(Self(weights))
    }

    /// A canonical text of the weights (`kt=50,lgu=20,skt=30`), stable across
    /// processes: it keys the shared position counter, so a weight change starts a new
    /// cycle instead of continuing the old one at an arbitrary slot.
    pub fn canonical(&self) -> String {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(carrier, weight)| format!("{carrier}={weight}"))
            .collect();
        parts.join(",")
    }
}

/// The Redis key of the counter that hands out a (customer, channel, weights)'s
/// routing positions: a weight change keys a new counter, so a new ratio starts at
/// the beginning of its own cycle. The dispatcher advances it; the gateway reads it
/// to preview the next messages' carriers.
pub fn position_counter_key(customer: &CustomerId, channel: Channel, weights: &Weights) -> String {
    format!("rns:route:{customer}:{channel}:{}", weights.canonical())
}

/// The cycle of carriers defined by a set of weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    cycle: Vec<CarrierId>,
}

impl Schedule {
    pub fn new(weights: &Weights) -> Self {
        let divisor = weights
            .iter()
            .map(|(_, weight)| weight)
            .filter(|weight| *weight > 0)
            .fold(0, greatest_common_divisor);
        let reduced: Vec<(&CarrierId, i64)> = weights
            .iter()
            .filter(|(_, weight)| *weight > 0)
            .map(|(carrier, weight)| (carrier, i64::from(weight / divisor)))
            .collect();
        let total: i64 = reduced.iter().map(|(_, weight)| weight).sum();
        let mut current = vec![0i64; reduced.len()];
        let mut cycle = Vec::with_capacity(total as usize);
        for _ in 0..total {
            for (slot, (_, weight)) in reduced.iter().enumerate() {
                current[slot] += weight;
            }
            let chosen = (0..reduced.len())
                .max_by_key(|slot| (current[*slot], std::cmp::Reverse(*slot)))
                .expect("weights have a positive sum");
            current[chosen] -= total;
            cycle.push(reduced[chosen].0.clone());
        }
        Self { cycle }
    }

    /// The carrier for position `position` of the (customer, channel) counter.
    pub fn carrier_at(&self, position: u64) -> &CarrierId {
        &self.cycle[(position % self.cycle.len() as u64) as usize]
    }

    pub fn cycle_length(&self) -> usize {
        self.cycle.len()
    }
}

fn greatest_common_divisor(first: u32, second: u32) -> u32 {
    if second == 0 {
        first
    } else {
        greatest_common_divisor(second, first % second)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn weights(pairs: &[(&str, u32)]) -> Weights {
        let raw = pairs
            .iter()
            .map(|(name, weight)| (name.to_string(), *weight))
            .collect();
        Weights::validate(&raw, Channel::Sms, &CarrierCatalog::korean_default()).unwrap()
    }

    fn split(schedule: &Schedule, positions: std::ops::Range<u64>) -> HashMap<String, u64> {
        let mut counts = HashMap::new();
        for position in positions {
            *counts
                .entry(schedule.carrier_at(position).to_string())
                .or_insert(0) += 1;
        }
        counts
    }

    #[test]
    fn fifty_thirty_twenty_reduces_to_a_ten_slot_smooth_cycle() {
        let schedule = Schedule::new(&weights(&[("kt", 50), ("skt", 30), ("lgu", 20)]));
        assert_eq!(schedule.cycle_length(), 10);
        let counts = split(&schedule, 0..100);
        assert_eq!(counts["kt"], 50);
        assert_eq!(counts["skt"], 30);
        assert_eq!(counts["lgu"], 20);
        // Smooth: the heaviest carrier never takes more than two slots in a row.
        let names: Vec<&str> = (0..10)
            .map(|position| schedule.carrier_at(position).as_str())
            .collect();
        assert!(
            names
                .windows(3)
                .all(|run| !(run[0] == run[1] && run[1] == run[2])),
            "{names:?}"
        );
    }

    #[test]
    fn weights_outside_the_channel_or_without_a_positive_sum_are_refused() {
        let catalog = CarrierCatalog::korean_default();
        let raw = |pairs: &[(&str, u32)]| -> BTreeMap<String, u32> {
            pairs
                .iter()
                .map(|(name, weight)| (name.to_string(), *weight))
                .collect()
        };
        assert!(matches!(
            Weights::validate(&raw(&[("ke", 1)]), Channel::Sms, &catalog),
            Err(WeightsError::UnknownCarrier { .. })
        ));
        assert!(matches!(
            Weights::validate(&raw(&[("nope", 1)]), Channel::Sms, &catalog),
            Err(WeightsError::UnknownCarrier { .. })
        ));
        assert_eq!(
            Weights::validate(&raw(&[("kt", 0)]), Channel::Sms, &catalog),
            Err(WeightsError::ZeroSum)
        );
        assert_eq!(
            Weights::validate(&raw(&[]), Channel::Sms, &catalog),
            Err(WeightsError::ZeroSum)
        );
        assert!(matches!(
            Weights::validate(&raw(&[("kt", 10_000), ("skt", 1)]), Channel::Sms, &catalog),
            Err(WeightsError::SumTooLarge { .. })
        ));
    }

    #[test]
    fn canonical_text_round_trips() {
        let all = weights(&[("kt", 50), ("skt", 30), ("lgu", 0)]);
        assert_eq!(Weights::from_canonical(&all.canonical()), Some(all));
        assert_eq!(Weights::from_canonical("kt=x"), None);
        assert_eq!(Weights::from_canonical(""), None);
    }

    #[test]
    fn an_open_circuit_leaves_the_remaining_carriers_in_their_own_ratio() {
        let all = weights(&[("kt", 50), ("skt", 30), ("lgu", 20)]);
        let without_kt = all.without(|carrier| carrier.as_str() == "kt").unwrap();
        assert_eq!(without_kt.canonical(), "lgu=20,skt=30");
        assert_eq!(all.without(|_| true), None);
    }

    #[test]
    fn a_failover_order_names_carriers_of_the_channel_once_each() {
        let catalog = CarrierCatalog::korean_default();
        let order = |names: &[&str]| {
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            validate_failover(&order(&["skt", "kt"]), Channel::Sms, &catalog).unwrap(),
            [
                CarrierId::parse("skt").unwrap(),
                CarrierId::parse("kt").unwrap()
            ]
        );
        assert!(validate_failover(&order(&["kt", "kt"]), Channel::Sms, &catalog).is_err());
        assert!(validate_failover(&order(&["ke"]), Channel::Sms, &catalog).is_err());
    }

    proptest! {
        #[test]
        fn every_window_of_one_cycle_splits_exactly_by_weight(
            kt in 0u32..200, skt in 0u32..200, lgu in 0u32..200, offset in 0u64..1_000_000,
        ) {
            prop_assume!(kt + skt + lgu > 0);
            let weights = weights(&[("kt", kt), ("skt", skt), ("lgu", lgu)]);
            let schedule = Schedule::new(&weights);
            let divisor = [kt, skt, lgu].into_iter().filter(|weight| *weight > 0).fold(0, greatest_common_divisor);
            let counts = split(&schedule, offset..offset + schedule.cycle_length() as u64);
            for (carrier, weight) in weights.iter() {
                let observed = counts.get(carrier.as_str()).copied().unwrap_or(0);
                prop_assert_eq!(observed, u64::from(weight / divisor));
            }
        }

        #[test]
        fn a_zero_weight_is_never_chosen(kt in 0u32..50, skt in 1u32..50, positions in 1u64..5_000) {
            let schedule = Schedule::new(&weights(&[("kt", kt), ("skt", skt), ("lgu", 0)]));
            let counts = split(&schedule, 0..positions);
            prop_assert!(!counts.contains_key("lgu"));
            if kt == 0 {
                prop_assert!(!counts.contains_key("kt"));
            }
        }

        #[test]
        fn any_prefix_stays_within_one_message_per_carrier_of_the_exact_share(
            kt in 0u32..100, skt in 0u32..100, lgu in 0u32..100, length in 1u64..3_000,
        ) {
            prop_assume!(kt + skt + lgu > 0);
            let weights = weights(&[("kt", kt), ("skt", skt), ("lgu", lgu)]);
            let schedule = Schedule::new(&weights);
            let total = f64::from(kt + skt + lgu);
            let counts = split(&schedule, 0..length);
            for (carrier, weight) in weights.iter() {
                let observed = counts.get(carrier.as_str()).copied().unwrap_or(0) as f64;
                let exact = length as f64 * f64::from(weight) / total;
                prop_assert!((observed - exact).abs() < 2.0, "{} got {} for exact {}", carrier, observed, exact);
            }
        }
    }
}
