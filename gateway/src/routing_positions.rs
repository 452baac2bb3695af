//! Where each (customer, channel, weights)'s routing counter stands in Redis — the
//! dispatcher advances it ([`rns_types::routing::position_counter_key`]); the gateway
//! only reads it, to preview which carriers the next messages go to.
use redis::aio::ConnectionManager;
use redis::AsyncCommands;
use rns_types::routing::{position_counter_key, Weights};
use rns_types::{Channel, CustomerId};

use crate::error::ApiError;

#[derive(Clone)]
pub struct RoutingPositions {
    connection: ConnectionManager,
}

impl RoutingPositions {
    pub fn new(connection: ConnectionManager) -> Self {
        Self { connection }
    }

    /// The position the next message of `customer`'s `channel` routed by `weights`
    /// takes: 0 for weights never routed by.
    pub async fn next(
        &self,
        customer: &CustomerId,
        channel: Channel,
        weights: &Weights,
    ) -> Result<u64, ApiError> {
        let mut connection = self.connection.clone();
        let position: Option<u64> = connection
            .get(position_counter_key(customer, channel, weights))
            .await
            .map_err(|error| ApiError::unavailable("routing positions", error))?;
        Ok(position.unwrap_or(0))
    }
}
