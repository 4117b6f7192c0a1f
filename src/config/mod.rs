//! The daemon's configuration: layers -> one draft -> validated once ->
//! an immutable [`Config`].
//!
//! The layers, each overriding the one before, key by key:
//!
//! 1. built-in defaults (`validate`; docs/configuration.md lists them);
//! 2. the TOML file (`file`), e.g. `config/scorer.toml`;
//! 3. environment variables `LOYALTY_SCORER__SECTION__KEY` (`overrides`);
//! 4. command-line overrides, `(dotted key, text)` pairs (`overrides`).
//!
//! This module owns every key, its default and its range. Its invariant: a
//! [`Config`] exists only when every layer is valid, so the daemon never
//! re-checks a value (topics distinct, batch bounds, addresses parsed, the
//! Redis target well formed). Unknown keys are errors in every layer. Every
//! problem is found in one run and located where it can be fixed (`report`):
//! `file:line:column`, the variable's name, or the command line. It does no
//! I/O but [`Config::load`]'s one read: rules files are named here, and
//! loaded by the daemon with the rules loader.
//!
//! Secrets (Redis passwords in `redis.url`, librdkafka properties such as
//! `sasl.password`) never appear in `Debug`, `Display` or a [`Problem`]: the
//! types of `secret` print them redacted.

mod draft;
mod file;
mod overrides;
mod report;
mod secret;
mod validate;

use std::ffi::OsStr;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::level_filters::LevelFilter;

use self::draft::Draft;
use self::report::Report;
use crate::rules::engine::Settings;

pub use self::overrides::{ENV_PREFIX, env_var};
pub use self::secret::{KafkaProperties, RedisUrl, Secret, is_secret_property};

/// The validated configuration of the daemon. Only [`Config::load`] and
/// [`Config::load_str`] build one; share it read-only (`Arc<Config>`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    pub kafka: Kafka,
    pub redis: Redis,
    pub programs: Programs,
    pub batching: Batching,
    pub admin: Admin,
    pub logging: Logging,
    pub daemon: Daemon,
}

/// `[kafka]`: where events come from and where rewards and dead letters go.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Kafka {
    /// `host:port` of at least one broker (`bootstrap.servers`).
    pub brokers: Vec<String>,
    pub group_id: String,
    pub input_topic: String,
    /// Distinct from the input topic.
    pub rewards_topic: String,
    /// Distinct from the input and rewards topics.
    pub dead_letter_topic: String,
    /// Larger messages are dead letters (`too_large`).
    pub max_message_bytes: usize,
    /// Passed to the consumer and producer as they are; none of them sets
    /// what the scorer sets itself (brokers, group, offset handling).
    pub properties: KafkaProperties,
}

/// `[redis]`: the shared member state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Redis {
    /// A target `RedisStore::connect` accepts.
    pub url: RedisUrl,
    /// Not empty, no braces (they would become every key's hash tag).
    pub key_prefix: String,
    /// Days outcomes are kept for refunds and repeated event ids.
    pub retention_days: i64,
    /// PEM files for a `rediss://` URL: CA certificates to trust instead of
    /// the webpki roots, and a client certificate with its key (both or
    /// neither) for a server that asks for one. Readable when validated.
    pub tls_ca_file: Option<PathBuf>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

/// `[programs]`: which rules files the scorer runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Programs {
    /// At least one, no duplicates; the first is the default program.
    /// Relative paths are relative to the working directory, as `--rules`.
    pub rules: Vec<PathBuf>,
    pub reload_on_sighup: bool,
}

/// `[batching]`: how events are grouped on their way through the pipeline.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Batching {
    /// At least 1.
    pub max_batch_events: usize,
    /// `max_batch_wait_ms`: how long a batch that is not full waits for more
    /// events when a lane could take it (while every lane is busy it goes on
    /// filling anyway).
    pub max_batch_wait: Duration,
    /// At least `max_batch_events`: events read but not yet acknowledged.
    pub max_in_flight_events: usize,
    /// Batches scored at once, on disjoint partitions, each lane with its
    /// own store connection. At least 1.
    pub lanes: usize,
}

/// `[admin]`: the metrics and health endpoints.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Admin {
    pub listen: SocketAddr,
}

/// `[logging]`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Logging {
    pub level: LevelFilter,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[daemon]`: the process's life cycle.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Daemon {
    /// `shutdown_timeout_ms`: how long a stop signal waits for in-flight
    /// events to drain before the process exits.
    pub shutdown_timeout: Duration,
}

impl Config {
    /// Loads the layers: defaults, the file at `path` (if any), the
    /// variables of `env` that start with [`ENV_PREFIX`] (pass
    /// `std::env::vars_os()`; others are ignored), then `overrides`, each a
    /// dotted key and its text (`("kafka.group_id", "g")`). Returns every
    /// problem of every layer when any is invalid.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let Some(path) = path else {
            return build(None, env, overrides).map_err(ConfigError::Invalid);
        };
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io { path: path.to_path_buf(), source })?;
        let name = path.display().to_string();
        match std::str::from_utf8(&bytes) {
            Ok(text) => Config::load_str(&name, text, env, overrides),
            Err(error) => {
                let valid = String::from_utf8_lossy(&bytes[..error.valid_up_to()]);
                let mut report = Report::new(Some((&name, &valid)));
                report.at_offset(valid.len(), "the file is not valid UTF-8 here; save it as UTF-8".to_owned());
                Err(ConfigError::Invalid(report.into_problems()))
            }
        }
    }

    /// Like [`Config::load`], with the file's `text` given, named `file` in problems.
    pub fn load_str(
        file: &str,
        text: &str,
        env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        build(Some((file, text)), env, overrides).map_err(ConfigError::Invalid)
    }

    /// The engine's settings this configuration implies.
    pub fn engine_settings(&self) -> Settings {
        Settings { retention_days: self.redis.retention_days }
    }
}

fn build(
    file: Option<(&str, &str)>,
    env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    overrides: &[(String, String)],
) -> Result<Config, Vec<Problem>> {
    let mut report = Report::new(file);
    let mut draft = Draft::default();
    if let Some((_, text)) = file {
        file::read(text, &mut draft, &mut report);
    }
    overrides::apply_env(env, &mut draft, &mut report);
    overrides::apply_overrides(overrides, &mut draft, &mut report);
    let config = validate::validate(&draft, &mut report);
    if report.is_empty() { Ok(config) } else { Err(report.into_problems()) }
}

/// The dotted name of every key but the `kafka.properties` table, in
/// documentation order.
pub fn keys() -> impl Iterator<Item = &'static str> {
    draft::SCHEMA.iter().map(|(key, _)| *key)
}

/// Where a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A position in the file: 1-based line, and column in characters.
    File { file: String, line: usize, column: usize },
    /// An environment variable.
    Env { var: String },
    /// A command-line override.
    CommandLine,
    /// No layer: a required key that none set.
    Nowhere,
}

/// One problem of the configuration, located; its message never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// `key.path = value: reason`, or `key.path: reason`.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { file, line, column } => write!(f, "{file}:{line}:{column}: {}", self.message),
            Origin::Env { var } => write!(f, "{var}: {}", self.message),
            Origin::CommandLine => write!(f, "command line: {}", self.message),
            Origin::Nowhere => f.write_str(&self.message),
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found: the file's by position, then the environment's,
    /// then the command line's, then missing keys.
    #[error("{}", render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n")
}
