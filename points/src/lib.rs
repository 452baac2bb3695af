//! Prepaid points: every send is paid for, exactly, and the ledger always balances.
//!
//! - [`store`]: balances in Redis, changed only by atomic scripts that keep
//!   `balance + reserved + spent = topped_up` and append every change to a ledger.
//!   The gateway reserves a whole request at once (all or nothing), so concurrent
//!   sends can never overdraw.
//! - [`settle`]: the `points` consumer of `RESULTS` settles each message's final
//!   state: delivered spends its price, failed refunds it; blocked messages were
//!   never charged.
//! - [`journal`]: copies ledger entries into the durable JetStream `LEDGER` stream.
//! - [`recover`]: rebuilds accounts Redis lost from that stream.
//! - [`unpublished`]: returns the points of requests whose gateway stopped between
//!   their reservation and their publish.
//! - [`daily`]: the operator's daily caps of messages per customer.
#![forbid(unsafe_code)]

pub mod daily;
pub mod error;
pub mod journal;
pub mod metric_names;
pub mod recover;
pub mod settle;
pub mod store;
pub mod unpublished;

use rns_types::points::Prices;
use serde::Deserialize;

pub use daily::{DailyCaps, DayCount};
pub use error::PointsError;
pub use store::{Account, LedgerPage, PointsStore, Reservation, ReservationRequest, Settlement};

/// `[points]` settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PointsSettings {
    /// Points per recipient of each message type.
    pub prices: Prices,
    /// How long a reservation may wait for its request's publish before its points
    /// are returned ([`unpublished`]); well above any publish, retries included.
    pub unpublished_release_seconds: u64,
}

impl Default for PointsSettings {
    fn default() -> Self {
        Self {
            prices: Prices::default(),
            unpublished_release_seconds: unpublished::DEFAULT_RELEASE_SECONDS,
        }
    }
}
