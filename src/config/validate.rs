//! The draft -> a [`Config`], with the built-in defaults and every check.
//!
//! Each key is checked on its own and a bad value is reported and replaced
//! by its default, so one pass finds every problem; the caller discards the
//! result unless the report is empty. A check that involves two keys is
//! reported at the second the message names (the rewards topic that equals
//! the input topic), where that key was set.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tracing::level_filters::LevelFilter;

use super::draft::{self, Draft, Given, Source};
use super::overrides::env_var;
use super::report::{Report, property_path};
use super::secret::{KafkaProperties, RedisUrl};
use super::{Admin, Batching, Config, Daemon, Kafka, LogFormat, Logging, Programs, Redis};
use crate::decode::DEFAULT_MAX_MESSAGE_BYTES;
use crate::rules::engine::Settings;
use crate::rules::load::report::closest;
use crate::state::redis::check_target;

const DEFAULT_GROUP_ID: &str = "loyalty-scorer";
const DEFAULT_KEY_PREFIX: &str = "ls";
const DEFAULT_BATCH_EVENTS: i64 = 512;
const DEFAULT_BATCH_WAIT_MS: i64 = 0;
const DEFAULT_IN_FLIGHT_EVENTS: i64 = 20_000;
const DEFAULT_LANES: i64 = 1;
const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
const DEFAULT_SHUTDOWN_TIMEOUT_MS: i64 = 10_000;

/// Ranges of the integer keys, as `(min, max)`. The caps are far above any
/// sane setting and catch a stray digit before it costs memory.
const MESSAGE_BYTES: (i64, i64) = (1, 100 * 1024 * 1024);
/// As `--retention-days` of the offline commands.
const RETENTION_DAYS: (i64, i64) = (1, 36_500);
/// As `--batch-events` of `score`.
const BATCH_EVENTS: (i64, i64) = (1, 100_000);
const BATCH_WAIT_MS: (i64, i64) = (0, 60_000);
const IN_FLIGHT_EVENTS: (i64, i64) = (1, 10_000_000);
/// Each lane holds its own Redis connection.
const LANES: (i64, i64) = (1, 64);
const SHUTDOWN_TIMEOUT_MS: (i64, i64) = (0, 600_000);

const LEVELS: &[(&str, LevelFilter)] = &[
    ("off", LevelFilter::OFF),
    ("error", LevelFilter::ERROR),
    ("warn", LevelFilter::WARN),
    ("info", LevelFilter::INFO),
    ("debug", LevelFilter::DEBUG),
    ("trace", LevelFilter::TRACE),
];
const FORMATS: &[(&str, LogFormat)] = &[("text", LogFormat::Text), ("json", LogFormat::Json)];

/// librdkafka properties the scorer sets itself, and why one may not set them.
const MANAGED_PROPERTIES: &[(&str, &str)] = &[
    ("bootstrap.servers", "the scorer sets it from kafka.brokers; set that instead"),
    ("metadata.broker.list", "the scorer sets bootstrap.servers from kafka.brokers; set that instead"),
    ("group.id", "the scorer sets it from kafka.group_id; set that instead"),
    (
        "enable.auto.commit",
        "the scorer commits the offsets it stores itself, once an event's effects are written (at-least-once); remove it",
    ),
    (
        "enable.auto.offset.store",
        "the scorer stores an offset only once the event's effects are written (at-least-once); remove it",
    ),
];

pub(super) fn validate(draft: &Draft, report: &mut Report<'_>) -> Config {
    let mut c = Check { report, rejected: &draft.rejected };
    Config {
        kafka: kafka(&mut c, &draft.kafka),
        redis: redis(&mut c, &draft.redis),
        programs: programs(&mut c, &draft.programs),
        batching: batching(&mut c, &draft.batching),
        admin: admin(&mut c, &draft.admin),
        logging: Logging {
            level: c.choice("logging.level", &draft.logging.level, LEVELS, LevelFilter::INFO),
            format: c.choice("logging.format", &draft.logging.format, FORMATS, LogFormat::Text),
        },
        daemon: Daemon {
            shutdown_timeout: millis(c.int(
                "daemon.shutdown_timeout_ms",
                &draft.daemon.shutdown_timeout_ms,
                DEFAULT_SHUTDOWN_TIMEOUT_MS,
                SHUTDOWN_TIMEOUT_MS,
            )),
        },
    }
}

fn kafka(c: &mut Check<'_, '_>, k: &draft::Kafka) -> Kafka {
    let brokers = match c.required("kafka.brokers", &k.brokers) {
        Some(given) => {
            if given.value.is_empty() {
                c.complain("kafka.brokers", given, "must list at least one broker, e.g. [\"127.0.0.1:9092\"]");
            }
            for broker in &given.value {
                if let Some(reason) = broker_problem(broker) {
                    c.complain("kafka.brokers", given, format!("{broker:?} {reason}"));
                }
            }
            given.value.clone()
        }
        None => Vec::new(),
    };
    let group_id = text(&k.group_id, DEFAULT_GROUP_ID);
    if group_id.value.trim().is_empty() {
        c.complain_at("kafka.group_id", group_id.source, "must not be empty");
    }
    let input = topic(c, "kafka.input_topic", &k.input_topic);
    let rewards = topic(c, "kafka.rewards_topic", &k.rewards_topic);
    let dead = topic(c, "kafka.dead_letter_topic", &k.dead_letter_topic);
    let clashes = [
        (input, rewards, "kafka.rewards_topic", "is also kafka.input_topic: the scorer would read its own rewards"),
        (input, dead, "kafka.dead_letter_topic", "is also kafka.input_topic: dead letters would be read again"),
        (
            rewards,
            dead,
            "kafka.dead_letter_topic",
            "is also kafka.rewards_topic: reward consumers would get dead letters",
        ),
    ];
    for (first, second, path, reason) in clashes {
        match (first, second) {
            (Some(first), Some(second)) if first.value == second.value => c.complain(path, second, reason),
            _ => {}
        }
    }
    let max_message_bytes =
        c.int("kafka.max_message_bytes", &k.max_message_bytes, DEFAULT_MAX_MESSAGE_BYTES as i64, MESSAGE_BYTES);
    let mut properties = KafkaProperties::default();
    for (name, given) in &k.properties {
        let path = property_path(name);
        if name.trim().is_empty() {
            c.complain(&path, given, "a property needs a name");
        } else if let Some((_, why)) = MANAGED_PROPERTIES.iter().find(|(managed, _)| managed == name) {
            c.complain(&path, given, why);
        }
        properties.insert(name.clone(), given.value.clone());
    }
    let owned = |given: Option<&Given<String>>| given.map(|g| g.value.clone()).unwrap_or_default();
    Kafka {
        brokers,
        group_id: group_id.value.to_owned(),
        input_topic: owned(input),
        rewards_topic: owned(rewards),
        dead_letter_topic: owned(dead),
        max_message_bytes: usize::try_from(max_message_bytes).unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        properties,
    }
}

/// A required topic name.
fn topic<'g>(c: &mut Check<'_, '_>, path: &str, given: &'g Option<Given<String>>) -> Option<&'g Given<String>> {
    let given = c.required(path, given)?;
    if let Some(reason) = topic_problem(&given.value) {
        c.complain(path, given, reason);
    }
    Some(given)
}

fn admin(c: &mut Check<'_, '_>, a: &draft::Admin) -> Admin {
    let listen = text(&a.listen, DEFAULT_LISTEN);
    let listen = listen.value.parse().unwrap_or_else(|_| {
        c.complain_at(
            "admin.listen",
            listen.source,
            "not a socket address; write IP:port, e.g. 127.0.0.1:9464 or [::]:9464 (host names are not resolved)",
        );
        SocketAddr::from(([127, 0, 0, 1], 9464))
    });
    Admin { listen }
}

fn redis(c: &mut Check<'_, '_>, r: &draft::Redis) -> Redis {
    let url = match c.required("redis.url", &r.url) {
        Some(given) => {
            if let Err(reason) = check_target(&given.value) {
                // `check_target` names no password, and `complain` redacts the value.
                c.complain("redis.url", given, reason);
            }
            given.value.clone()
        }
        None => String::new(),
    };
    let prefix = text(&r.key_prefix, DEFAULT_KEY_PREFIX);
    if prefix.value.is_empty() {
        c.complain_at(
            "redis.key_prefix",
            prefix.source,
            "must not be empty; it keeps deployments sharing a server apart",
        );
    } else if prefix.value.contains(['{', '}']) {
        c.complain_at(
            "redis.key_prefix",
            prefix.source,
            "must not contain { or }: it would become every key's hash tag",
        );
    }
    let retention_days =
        c.int("redis.retention_days", &r.retention_days, Settings::default().retention_days, RETENTION_DAYS);
    let mut file = |path: &str, given: &Option<Given<String>>| {
        let given = given.as_ref()?;
        if given.value.is_empty() {
            c.complain(path, given, "must name a PEM file");
            return None;
        }
        if let Err(error) = std::fs::metadata(&given.value)
            .and_then(|m| if m.is_file() { Ok(()) } else { Err(std::io::Error::other("not a file")) })
        {
            c.complain(path, given, format!("cannot read {}: {error}", given.value));
        }
        Some(PathBuf::from(&given.value))
    };
    let tls_ca_file = file("redis.tls_ca_file", &r.tls_ca_file);
    let tls_cert_file = file("redis.tls_cert_file", &r.tls_cert_file);
    let tls_key_file = file("redis.tls_key_file", &r.tls_key_file);
    match (&r.tls_cert_file, &r.tls_key_file) {
        (Some(cert), None) => {
            c.complain("redis.tls_cert_file", cert, "needs redis.tls_key_file, the key of the client certificate")
        }
        (None, Some(key)) => {
            c.complain("redis.tls_key_file", key, "needs redis.tls_cert_file, the client certificate of the key")
        }
        _ => {}
    }
    let set = [
        ("redis.tls_ca_file", &r.tls_ca_file),
        ("redis.tls_cert_file", &r.tls_cert_file),
        ("redis.tls_key_file", &r.tls_key_file),
    ];
    if let Some((path, Some(given))) = set.into_iter().find(|(_, g)| g.is_some())
        && !url.is_empty()
        && !url.split(',').all(|u| u.trim_start().starts_with("rediss"))
    {
        c.complain(path, given, "redis.url does not use TLS (rediss:// or rediss+cluster://)");
    }
    Redis {
        url: RedisUrl::new(url),
        key_prefix: prefix.value.to_owned(),
        retention_days,
        tls_ca_file,
        tls_cert_file,
        tls_key_file,
    }
}

fn programs(c: &mut Check<'_, '_>, p: &draft::Programs) -> Programs {
    let mut rules = Vec::new();
    if let Some(given) = c.required("programs.rules", &p.rules) {
        if given.value.is_empty() {
            c.complain("programs.rules", given, "must list at least one rules file; the first is the default program");
        }
        let mut seen = BTreeSet::new();
        for path in &given.value {
            if path.trim().is_empty() {
                c.complain("programs.rules", given, "holds an empty path");
            } else if !seen.insert(path.as_str()) {
                c.complain("programs.rules", given, format!("lists {path:?} twice"));
            }
            rules.push(PathBuf::from(path));
        }
    }
    let reload_on_sighup = p.reload_on_sighup.as_ref().is_none_or(|g| g.value);
    Programs { rules, reload_on_sighup }
}

fn batching(c: &mut Check<'_, '_>, b: &draft::Batching) -> Batching {
    let events = c.int("batching.max_batch_events", &b.max_batch_events, DEFAULT_BATCH_EVENTS, BATCH_EVENTS);
    let wait_ms = c.int("batching.max_batch_wait_ms", &b.max_batch_wait_ms, DEFAULT_BATCH_WAIT_MS, BATCH_WAIT_MS);
    let in_flight =
        c.int("batching.max_in_flight_events", &b.max_in_flight_events, DEFAULT_IN_FLIGHT_EVENTS, IN_FLIGHT_EVENTS);
    let lanes = c.int("batching.lanes", &b.lanes, DEFAULT_LANES, LANES);
    if in_flight < events {
        let reason = format!(
            "batching.max_in_flight_events ({in_flight}) is below batching.max_batch_events ({events}): a full batch could never be read"
        );
        // Blame the one the operator set; both set, the in-flight bound.
        match (&b.max_in_flight_events, &b.max_batch_events) {
            (Some(given), _) => c.complain("batching.max_in_flight_events", given, reason),
            (None, Some(given)) => c.complain("batching.max_batch_events", given, reason),
            (None, None) => c.report.nowhere(reason),
        }
    }
    Batching {
        max_batch_events: usize::try_from(events).unwrap_or(1),
        max_batch_wait: millis(wait_ms),
        max_in_flight_events: usize::try_from(in_flight).unwrap_or(1),
        lanes: usize::try_from(lanes).unwrap_or(1),
    }
}

/// Why `broker` is not `host:port` (an optional `scheme://` in front, as
/// librdkafka accepts), if it is not.
fn broker_problem(broker: &str) -> Option<&'static str> {
    if broker.trim().is_empty() {
        return Some("is empty");
    }
    if broker.contains([',', ' ', '\t']) {
        return Some("holds a comma or a space; write one host:port per list item");
    }
    let address = broker.split_once("://").map_or(broker, |(_, rest)| rest);
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => None,
        _ => Some("is not host:port, e.g. \"127.0.0.1:9092\""),
    }
}

/// Why `name` is not a Kafka topic name, if it is not.
fn topic_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name == "." || name == ".." {
        return Some("is not a topic name Kafka accepts".into());
    }
    if name.chars().count() > 249 {
        return Some("is longer than Kafka's 249 characters".into());
    }
    if !name.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-')) {
        return Some("may hold only ASCII letters, digits, '.', '_' and '-'".into());
    }
    None
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Reads the draft's keys into values, recording problems.
struct Check<'r, 't> {
    report: &'r mut Report<'t>,
    rejected: &'r BTreeSet<String>,
}

/// A text value and the layer that set it (`None`: the default).
struct Text<'a> {
    value: &'a str,
    source: Option<&'a Source>,
}

fn text<'a>(given: &'a Option<Given<String>>, default: &'a str) -> Text<'a> {
    match given {
        Some(g) => Text { value: &g.value, source: Some(&g.source) },
        None => Text { value: default, source: None },
    }
}

impl Check<'_, '_> {
    /// A key without a default: reported when no layer set it, unless a
    /// layer set it wrong (that is reported already).
    fn required<'g, T>(&mut self, path: &str, given: &'g Option<Given<T>>) -> Option<&'g Given<T>> {
        let section = path.split('.').next().unwrap_or(path);
        if given.is_none() && !self.rejected.contains(path) && !self.rejected.contains(section) {
            self.report.nowhere(format!(
                "{path}: required; set it under [{section}] in the configuration file, or with {}",
                env_var(path)
            ));
        }
        given.as_ref()
    }

    /// An integer within `(min, max)`; the default when absent or out of range.
    fn int(&mut self, path: &str, given: &Option<Given<i64>>, default: i64, (min, max): (i64, i64)) -> i64 {
        match given {
            None => default,
            Some(g) if (min..=max).contains(&g.value) => g.value,
            Some(g) => {
                // As the rules loader words it: a small range reads best
                // whole; a huge bound is only crossed by mistake.
                let reason = if max <= 1000 {
                    format!("must be between {min} and {max}")
                } else if g.value < min && min == 0 {
                    "must not be negative".to_owned()
                } else if g.value < min {
                    format!("must be at least {min}")
                } else {
                    format!("must be at most {max}")
                };
                self.complain(path, g, reason);
                default
            }
        }
    }

    /// One of `options` by name; the default when absent or unknown.
    fn choice<T: Copy>(
        &mut self,
        path: &str,
        given: &Option<Given<String>>,
        options: &[(&'static str, T)],
        default: T,
    ) -> T {
        let Some(g) = given else { return default };
        let text = g.value.trim().to_ascii_lowercase();
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == text) {
            return *value;
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let typo =
            closest(&text, names.iter().copied()).map(|t| format!(" (did you mean \"{t}\"?)")).unwrap_or_default();
        self.complain(path, g, format!("unknown value{typo}; write one of {}", names.join(", ")));
        default
    }

    fn complain<T>(&mut self, path: &str, given: &Given<T>, reason: impl std::fmt::Display) {
        self.report.complain(path, &given.source, reason);
    }

    /// Like `complain`, for a value that may be the default (`source` is
    /// `None`): a default that fails a check is this module's bug, still
    /// reported rather than hidden.
    fn complain_at(&mut self, path: &str, source: Option<&Source>, reason: impl std::fmt::Display) {
        match source {
            Some(source) => self.report.complain(path, source, reason),
            None => self.report.nowhere(format!("{path} (default): {reason}")),
        }
    }
}
