//! Test fixtures that run the real servers RNS depends on.
//!
//! Each fixture starts its own process on a spare loopback port with its data in a
//! fresh temporary directory, waits until the server answers, and kills the process
//! when dropped. A missing server binary fails the test with the command that
//! installs it; nothing is ever skipped.
#![forbid(unsafe_code)]

mod clickhouse;
mod nats;
mod process;
mod redis;
mod smsc;

pub use clickhouse::{ClickHouseRelease, ClickHouseServer};
pub use nats::NatsServer;
pub use process::{niced, require_program, spare_port, wait_until, ChildProcess};
pub use redis::RedisServer;
pub use smsc::{SmscImplementation, SmscServer, SMSC_PASSWORD, SMSC_SYSTEM_ID};

/// Sends this test's `tracing` events (warnings and up, or what `RUST_LOG` says) to
/// the test's own output, which the runner shows when the test fails: a failure
/// under load then comes with what the services said. Safe to call more than once.
pub fn show_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _already = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// Customer `customer`'s own sender number (a Seoul number from its id): a number
/// one customer verified is refused to every other, so each customer of a run that
/// has several sends from its own.
pub fn sender_for(customer: &str) -> String {
    // FNV-1a: stable across runs and builds, unlike the standard hasher.
    let hash = customer
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!("02{}", 20_000_000 + hash % 70_000_000)
}
