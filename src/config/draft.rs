//! The configuration as the layers give it, before validation: every key
//! optional, every value with the layer that set it ([`Source`]), so a
//! problem found later points at the file position, the variable or the
//! override to fix. The sections are the serde structs the file is read into
//! (`deny_unknown_fields`, no `flatten`); environment variables and
//! overrides then write over single keys.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// What a key holds, for parsing environment variables and overrides and
/// for naming the expected type in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Integer,
    Boolean,
    List,
}

impl Kind {
    pub(super) fn expected(self) -> &'static str {
        match self {
            Kind::Text => "a string",
            Kind::Integer => "a whole number",
            Kind::Boolean => "true or false",
            Kind::List => "a list of strings",
        }
    }
}

/// Every key but the properties table, in documentation order: the list the
/// file, the environment and the overrides are checked against. A new key is
/// one entry here, a field in its section, an arm in `overrides::set`, and
/// its check in `validate`.
pub(super) const SCHEMA: &[(&str, Kind)] = &[
    ("kafka.brokers", Kind::List),
    ("kafka.group_id", Kind::Text),
    ("kafka.input_topic", Kind::Text),
    ("kafka.rewards_topic", Kind::Text),
    ("kafka.dead_letter_topic", Kind::Text),
    ("kafka.max_message_bytes", Kind::Integer),
    ("redis.url", Kind::Text),
    ("redis.key_prefix", Kind::Text),
    ("redis.retention_days", Kind::Integer),
    ("redis.tls_ca_file", Kind::Text),
    ("redis.tls_cert_file", Kind::Text),
    ("redis.tls_key_file", Kind::Text),
    ("programs.rules", Kind::List),
    ("programs.reload_on_sighup", Kind::Boolean),
    ("batching.max_batch_events", Kind::Integer),
    ("batching.max_batch_wait_ms", Kind::Integer),
    ("batching.max_in_flight_events", Kind::Integer),
    ("batching.lanes", Kind::Integer),
    ("admin.listen", Kind::Text),
    ("logging.level", Kind::Text),
    ("logging.format", Kind::Text),
    ("daemon.shutdown_timeout_ms", Kind::Integer),
];

/// The table of librdkafka properties, `kafka.properties.<name>`.
pub(super) const PROPERTIES: &str = "kafka.properties";

/// The sections, in documentation order.
pub(super) const SECTIONS: &[&str] = &["kafka", "redis", "programs", "batching", "admin", "logging", "daemon"];

/// The keys `section` takes, as they are written in it.
pub(super) fn keys_of(section: &str) -> Vec<&'static str> {
    let mut keys: Vec<&str> = SCHEMA
        .iter()
        .filter_map(|(path, _)| path.strip_prefix(section).and_then(|rest| rest.strip_prefix('.')))
        .collect();
    if section == "kafka" {
        keys.push("properties");
    }
    keys
}

pub(super) fn kind_of(path: &str) -> Option<Kind> {
    SCHEMA.iter().find(|(p, _)| *p == path).map(|(_, kind)| *kind)
}

/// Which layer set a value.
#[derive(Clone)]
pub(super) enum Source {
    /// The file; the value's byte span in it.
    File(Range<usize>),
    /// An environment variable, and its text.
    Env { var: String, text: String },
    /// A command-line override, and its text.
    Override { text: String },
}

/// A value one layer set, and which one.
pub(super) struct Given<T> {
    pub(super) value: T,
    pub(super) source: Source,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Given<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<T>::deserialize(deserializer)?;
        let span = spanned.span();
        Ok(Given { value: spanned.into_inner(), source: Source::File(span) })
    }
}

type Opt<T> = Option<Given<T>>;

/// `[kafka]`. Integers are read as `i64` here and range-checked in
/// `validate`, so a negative number is one more reported problem, not a
/// type error that hides the rest of the section.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Kafka {
    pub(super) brokers: Opt<Vec<String>>,
    pub(super) group_id: Opt<String>,
    pub(super) input_topic: Opt<String>,
    pub(super) rewards_topic: Opt<String>,
    pub(super) dead_letter_topic: Opt<String>,
    pub(super) max_message_bytes: Opt<i64>,
    /// Merged key by key across the layers, not replaced as a whole.
    #[serde(default)]
    pub(super) properties: BTreeMap<String, Given<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Redis {
    pub(super) url: Opt<String>,
    pub(super) key_prefix: Opt<String>,
    pub(super) retention_days: Opt<i64>,
    pub(super) tls_ca_file: Opt<String>,
    pub(super) tls_cert_file: Opt<String>,
    pub(super) tls_key_file: Opt<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Programs {
    pub(super) rules: Opt<Vec<String>>,
    pub(super) reload_on_sighup: Opt<bool>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Batching {
    pub(super) max_batch_events: Opt<i64>,
    pub(super) max_batch_wait_ms: Opt<i64>,
    pub(super) max_in_flight_events: Opt<i64>,
    pub(super) lanes: Opt<i64>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Admin {
    pub(super) listen: Opt<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Logging {
    pub(super) level: Opt<String>,
    pub(super) format: Opt<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Daemon {
    pub(super) shutdown_timeout_ms: Opt<i64>,
}

/// Every layer so far, merged.
#[derive(Default)]
pub(super) struct Draft {
    pub(super) kafka: Kafka,
    pub(super) redis: Redis,
    pub(super) programs: Programs,
    pub(super) batching: Batching,
    pub(super) admin: Admin,
    pub(super) logging: Logging,
    pub(super) daemon: Daemon,
    /// Keys (or whole sections) a layer set but that were rejected with a
    /// problem already: a required one among them is not reported missing too.
    pub(super) rejected: BTreeSet<String>,
}
