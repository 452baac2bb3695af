//! What every RNS service process shares.
//!
//! - [`settings`]: configuration from a TOML file plus `RNS_`-prefixed environment
//!   variables (`__` separates sections: `RNS_GATEWAY__LISTEN=0.0.0.0:8080`).
//! - [`telemetry`]: tracing, as JSON lines in production or human-readable text.
//! - [`health`]: `/healthz` (the process is alive), `/readyz` (its dependencies
//!   answer and it is taking work) and `/metrics` for services without an HTTP API
//!   of their own.
//! - [`metrics`]: the Prometheus recorder and JetStream consumer lag gauges.
//! - [`process`]: the `main` of every background service.
//! - [`runtime`]: the tokio runtime, sized by `[runtime] worker_threads`.
//! - [`shutdown`]: one cancellation token, cancelled on SIGTERM or SIGINT, that every
//!   task of a service watches so shutdown follows one ordered path.
#![forbid(unsafe_code)]

pub mod gather;
pub mod health;
pub mod metric_names;
pub mod metrics;
pub mod process;
pub mod runtime;
pub mod settings;
pub mod shutdown;
pub mod telemetry;

pub use health::Readiness;
pub use runtime::RuntimeSettings;

/// The memory allocator of every RNS process (each `main` names it as its
/// `#[global_allocator]`). The services allocate and free many small, short-lived
/// buffers (JSON, HTTP bodies) from many threads; under load glibc's allocator took
/// about a third of the carriers' CPU in `perf`, mimalloc takes a fraction of that.
pub type Allocator = mimalloc::MiMalloc;

/// The allocator value for `#[global_allocator] static ALLOCATOR: Allocator = ALLOCATOR;`.
pub const ALLOCATOR: Allocator = mimalloc::MiMalloc;
pub use settings::{
    load_settings, load_settings_from, parse_command_line, ClickHouseSettings, ConfigArguments,
    LogSettings, NatsSettings, RedisSettings, Secret, SecretError, SettingsError,
};
