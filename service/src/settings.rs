//! Configuration loading with figment.
//!
//! Sources, later ones winning: the defaults of each settings struct, the TOML files
//! (each `--config <path>`, else `$RNS_CONFIG` — several paths separated by `:` —
//! else `rns.toml` when it exists), then environment variables prefixed `RNS_` with
//! `__` between nested keys. A later file replaces what it names of an earlier one
//! (tables key by key, arrays such as `[[carriers]]` whole), so a small overlay can
//! swap the carriers of a shared file. Each service reads the sections it needs and
//! ignores the others.
use std::path::PathBuf;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use rns_nats::TopologySettings;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(#[from] Box<figment::Error>);

/// What every RNS service takes on its command line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArguments {
    /// A TOML configuration file; repeat it to overlay several, later ones winning.
    /// Without it: the files in $RNS_CONFIG (separated by `:`), else ./rns.toml when it
    /// exists. `RNS_` environment variables (`__` between nested keys) override them.
    #[arg(long = "config", value_name = "PATH")]
    pub config: Vec<PathBuf>,
}

/// The command line of a service that takes nothing but its configuration.
#[derive(Debug, clap::Parser)]
#[command(
    version,
    about = "An RNS service: reads its settings and runs until SIGTERM or SIGINT"
)]
struct ServiceCommandLine {
    #[command(flatten)]
    config: ConfigArguments,
}

/// Parses the command line as `P`, named after the running binary in `--help`
/// (exits with usage on a wrong or missing argument, or with the help asked for).
pub fn parse_command_line<P: clap::Parser>() -> P {
    let binary = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "rns".to_owned());
    let matches = P::command().bin_name(binary).get_matches();
    P::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
}

/// Loads `T` from the configuration files named on the command line (`--config`), in
/// `$RNS_CONFIG`, or `rns.toml`, overlaid with `RNS_` environment variables.
pub fn load_settings<T: DeserializeOwned>() -> Result<T, SettingsError> {
    let command_line: ServiceCommandLine = parse_command_line();
    load_settings_from(&command_line.config)
}

/// Loads `T` from the files `arguments` name (or `$RNS_CONFIG`, or `rns.toml`),
/// overlaid with `RNS_` environment variables.
pub fn load_settings_from<T: DeserializeOwned>(
    arguments: &ConfigArguments,
) -> Result<T, SettingsError> {
    let mut figment = Figment::new();
    for path in config_paths(&arguments.config, std::env::var_os("RNS_CONFIG")) {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment
        .merge(Env::prefixed("RNS_").split("__"))
        .extract()
        .map_err(|error| SettingsError(Box::new(error)))
}

/// The configuration files, in the order they are merged: those `given`, else those
/// of `environment`, else `rns.toml` when it exists.
fn config_paths(given: &[PathBuf], environment: Option<std::ffi::OsString>) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    if let Some(variable) = environment {
        return std::env::split_paths(&variable)
            .filter(|path| !path.as_os_str().is_empty())
            .collect();
    }
    let default = PathBuf::from("rns.toml");
    if default.exists() {
        vec![default]
    } else {
        Vec::new()
    }
}

/// `[nats]`: the server and the topology's sizes.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NatsSettings {
    pub url: String,
    #[serde(flatten)]
    pub topology: TopologySettings,
    /// Whether RESULTS and carrier-queue messages are written compact
    /// ([`rns_types::compact`], the default) or as JSON, which versions before the
    /// compact encodings read: false while such versions still run (an upgrade,
    /// docs/operations.md). Every version since reads both.
    pub compact_payloads: bool,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".to_owned(),
            topology: TopologySettings::default(),
            compact_payloads: true,
        }
    }
}

impl NatsSettings {
    /// Makes this process write its payloads as [`Self::compact_payloads`] says; once,
    /// at start.
    pub fn apply_payload_encoding(&self) {
        rns_types::compact::write_compact(self.compact_payloads);
        if !self.compact_payloads {
            tracing::warn!("compact_payloads = false: RESULTS and carrier jobs are written as JSON (for an upgrade); set it back once every service is updated");
        }
    }
}

/// `[redis]`: hot shared state (routing positions).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RedisSettings {
    pub url: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379/".to_owned(),
        }
    }
}

/// `[clickhouse]`: the store of results and statistics.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ClickHouseSettings {
    pub url: String,
    pub database: String,
    pub user: String,
    pub password: String,
}

impl Default for ClickHouseSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8123".to_owned(),
            database: "rns".to_owned(),
            user: "default".to_owned(),
            password: String::new(),
        }
    }
}

/// `[log]`: `format` is `json` (production) or `text`; `filter` is an `EnvFilter`
/// directive such as `info,rns_gateway=debug`, overridden by `RUST_LOG`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    pub format: String,
    pub filter: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "text".to_owned(),
            filter: "info".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(default)]
        nats: NatsSettings,
        #[serde(default)]
        redis: RedisSettings,
    }

    #[test]
    #[allow(
        clippy::result_large_err,
        reason = "figment's Jail API fixes the closure's error type"
    )]
    fn environment_overrides_the_file_and_nested_keys_use_double_underscores() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "rns.toml",
                "[nats]\nurl = \"nats://file:1\"\nreplicas = 3\n",
            )?;
            jail.set_env("RNS_NATS__URL", "nats://env:2");
            let sample: Sample = load_settings_from(&ConfigArguments::default())
                .map_err(|error| error.to_string())?;
            assert_eq!(sample.nats.url, "nats://env:2");
            assert_eq!(sample.nats.topology.replicas, 3);
            assert_eq!(sample.redis.url, "redis://127.0.0.1:6379/");
            Ok(())
        });
    }
}

/// A secret in the configuration: written inline (`"…"`, for development), or named
/// by the environment variable (`{ env = "NAME" }`) or file (`{ file = "/path" }`,
/// e.g. one an orchestrator mounts) that holds it. Its value never appears in `Debug`.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    Inline(String),
    Environment { env: String },
    File { file: PathBuf },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => formatter.write_str("Secret(inline)"),
            Secret::Environment { env } => write!(formatter, "Secret(env {env})"),
            Secret::File { file } => write!(formatter, "Secret(file {})", file.display()),
        }
    }
}

/// A [`Secret`] that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the environment variable {0} holding a secret is not set")]
    MissingVariable(String),
    #[error("the secret file {path} cannot be read: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the secret is empty")]
    Empty,
}

impl Secret {
    /// The secret's value, without surrounding whitespace (files often end in a
    /// newline).
    pub fn reveal(&self) -> Result<String, SecretError> {
        let value = match self {
            Secret::Inline(value) => value.clone(),
            Secret::Environment { env } => {
                std::env::var(env).map_err(|_| SecretError::MissingVariable(env.clone()))?
            }
            Secret::File { file } => {
                std::fs::read_to_string(file).map_err(|source| SecretError::File {
                    path: file.clone(),
                    source,
                })?
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(SecretError::Empty);
        }
        Ok(value.to_owned())
    }
}

#[cfg(test)]
mod secret_tests {
    use super::*;

    #[test]
    fn secrets_come_inline_from_the_environment_or_a_file_and_never_print() {
        let inline: Secret = serde_json::from_str(r#""s3cret""#).unwrap();
        assert_eq!(inline.reveal().unwrap(), "s3cret");
        assert_eq!(format!("{inline:?}"), "Secret(inline)");
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let file: Secret = serde_json::from_value(serde_json::json!({ "file": path })).unwrap();
        assert_eq!(file.reveal().unwrap(), "from-file");
        let missing: Secret =
            serde_json::from_str(r#"{"env":"RNS_TEST_SECRET_THAT_IS_NOT_SET"}"#).unwrap();
        assert!(matches!(
            missing.reveal(),
            Err(SecretError::MissingVariable(name)) if name == "RNS_TEST_SECRET_THAT_IS_NOT_SET"
        ));
        let empty: Secret = serde_json::from_str(r#""  ""#).unwrap();
        assert!(matches!(empty.reveal(), Err(SecretError::Empty)));
    }
}

#[cfg(test)]
mod config_path_tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn every_config_argument_counts_else_the_variables_paths_in_order() {
        let command_line = ServiceCommandLine::try_parse_from([
            "rns-gateway",
            "--config",
            "a.toml",
            "--config=b.toml",
        ])
        .unwrap();
        assert_eq!(
            config_paths(&command_line.config.config, Some("c.toml".into())),
            [PathBuf::from("a.toml"), PathBuf::from("b.toml")]
        );
        assert_eq!(
            config_paths(&[], Some("rns.toml:deploy/smpp/carriers.toml".into())),
            [
                PathBuf::from("rns.toml"),
                PathBuf::from("deploy/smpp/carriers.toml")
            ]
        );
        assert!(
            ServiceCommandLine::try_parse_from(["rns-gateway", "--verbose"]).is_err(),
            "an unknown argument is refused, not ignored"
        );
    }

    #[test]
    fn a_later_file_replaces_the_carriers_of_an_earlier_one_whole() {
        #[derive(Debug, Deserialize)]
        struct Config {
            name: String,
            carriers: Vec<Carrier>,
        }
        #[derive(Debug, Deserialize)]
        struct Carrier {
            id: String,
        }
        let directory = tempfile::tempdir().unwrap();
        let base = directory.path().join("base.toml");
        let overlay = directory.path().join("overlay.toml");
        std::fs::write(
            &base,
            "name = \"base\"\n[[carriers]]\nid = \"kt\"\n[[carriers]]\nid = \"skt\"\n",
        )
        .unwrap();
        std::fs::write(&overlay, "[[carriers]]\nid = \"lgu\"\n").unwrap();
        let config: Config = Figment::new()
            .merge(Toml::file_exact(&base))
            .merge(Toml::file_exact(&overlay))
            .extract()
            .unwrap();
        assert_eq!(config.name, "base");
        let ids: Vec<&str> = config
            .carriers
            .iter()
            .map(|carrier| carrier.id.as_str())
            .collect();
        assert_eq!(ids, ["lgu"]);
    }
}
