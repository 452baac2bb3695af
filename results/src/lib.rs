//! RNS results: every message's record in ClickHouse — the schema ([`schema`]) and
//! every query over it ([`ResultQueries`]), scoped to one customer.
//!
//! The gateway links this crate to answer result queries; the analytics service links
//! it for the schema it ingests into. Nothing here reads NATS, ingests or delivers
//! webhooks, so the gateway carries none of that.
#![forbid(unsafe_code)]

pub mod error;
pub mod listing;
pub mod queries;
pub mod requests;
pub mod schema;
pub mod stats;
pub mod window;

use rns_service::ClickHouseSettings;

pub use error::ResultsError;
pub use queries::ResultQueries;

/// A ClickHouse client for `settings`, with the options ClickHouse 18.16 needs:
/// no RowBinaryWithNamesAndTypes validation and no HTTP compression.
pub fn clickhouse_client(settings: &ClickHouseSettings) -> clickhouse::Client {
    clickhouse::Client::default()
        .with_url(&settings.url)
        .with_user(&settings.user)
        .with_password(&settings.password)
        .with_database(&settings.database)
        .with_validation(false)
}

/// Creates or updates the schema on the server of `settings`, then returns a client
/// of its database.
pub async fn prepare(settings: &ClickHouseSettings) -> Result<clickhouse::Client, ResultsError> {
    let server = clickhouse::Client::default()
        .with_url(&settings.url)
        .with_user(&settings.user)
        .with_password(&settings.password)
        .with_validation(false);
    schema::ensure(&server, &settings.database).await?;
    Ok(clickhouse_client(settings))
}
