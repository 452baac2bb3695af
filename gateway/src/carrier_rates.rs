//! The carriers' send rates the operator sets at run time, kept in the Redis hash
//! [`CARRIER_RATES_KEY`] that every carriers process reads before each slot of a
//! carrier's shared budget (see `rns_carriers::pacing`). A carrier without a field
//! submits at the rate its `[[carriers]]` entry configures.
use std::collections::HashMap;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use rns_types::carrier::CARRIER_RATES_KEY;
use rns_types::CarrierId;

use crate::error::ApiError;

/// The highest rate the operator may set, in submits per second.
pub const MAX_RATE_PER_SECOND: u32 = 100_000;

#[derive(Clone)]
pub struct CarrierRates {
    connection: ConnectionManager,
}

impl std::fmt::Debug for CarrierRates {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CarrierRates")
            .finish_non_exhaustive()
    }
}

impl CarrierRates {
    /// On the gateway's shared Redis connection.
    pub fn new(connection: ConnectionManager) -> Self {
        Self { connection }
    }

    /// Sets `carrier`'s rate, or removes the operator's rate when `None`.
    pub async fn set(&self, carrier: &CarrierId, per_second: Option<u32>) -> Result<(), ApiError> {
        let mut connection = self.connection.clone();
        match per_second {
            Some(rate) => {
                let _: () = connection
                    .hset(CARRIER_RATES_KEY, carrier.as_str(), rate)
                    .await?;
            }
            None => {
                let _: () = connection.hdel(CARRIER_RATES_KEY, carrier.as_str()).await?;
            }
        }
        Ok(())
    }

    /// Every rate the operator set, by carrier id.
    pub async fn all(&self) -> Result<HashMap<String, u32>, ApiError> {
        let mut connection = self.connection.clone();
        Ok(connection.hgetall(CARRIER_RATES_KEY).await?)
    }
}
