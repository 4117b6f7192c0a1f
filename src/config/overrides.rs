//! The environment and command-line layers: `(name, text)` pairs written
//! over single keys of the draft.
//!
//! A variable `LOYALTY_SCORER__SECTION__KEY` sets `section.key` (the rest of
//! the name lower-cased): `LOYALTY_SCORER__REDIS__URL` sets `redis.url`.
//! `LOYALTY_SCORER__KAFKA__PROPERTIES__SASL_PASSWORD` sets the librdkafka
//! property `sasl.password`: the name lower-cased, `_` read as `.` (no
//! string property of librdkafka has an `_` in its name, and few shells
//! allow a `.` in a variable's). A command-line override names the key
//! dotted, the property as it is: `kafka.properties.sasl.password`.
//!
//! Texts are parsed by the key's [`Kind`]: lists are comma-separated,
//! booleans `true` or `false`, numbers decimal. A variable with the prefix
//! that names no key is a problem naming the variable, never its value.

use std::ffi::OsStr;

use super::draft::{Draft, Given, Kind, PROPERTIES, SCHEMA, SECTIONS, Source, keys_of, kind_of};
use super::report::{Report, property_path};
use crate::rules::load::report::closest;

/// What every variable of this layer starts with.
pub const ENV_PREFIX: &str = "LOYALTY_SCORER__";

/// The environment variable that sets the dotted `key`.
pub fn env_var(key: &str) -> String {
    match key.strip_prefix(PROPERTIES).and_then(|rest| rest.strip_prefix('.')) {
        Some(name) => format!("{ENV_PREFIX}KAFKA__PROPERTIES__{}", name.replace('.', "_").to_ascii_uppercase()),
        None => format!("{ENV_PREFIX}{}", key.replace('.', "__").to_ascii_uppercase()),
    }
}

/// Applies every variable with the prefix, in name order (the environment
/// has none, and the outcome must not depend on it).
pub(super) fn apply_env(
    env: impl IntoIterator<Item = (impl AsRef<OsStr>, impl AsRef<OsStr>)>,
    draft: &mut Draft,
    report: &mut Report<'_>,
) {
    let mut vars: Vec<(String, Option<String>)> = env
        .into_iter()
        .filter_map(|(name, value)| {
            let name = name.as_ref().to_string_lossy().into_owned();
            name.starts_with(ENV_PREFIX).then(|| (name, value.as_ref().to_str().map(str::to_owned)))
        })
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (var, text) in vars {
        let Some(text) = text else {
            report.at(&Source::Env { var, text: String::new() }, "the value is not valid UTF-8".to_owned());
            continue;
        };
        let Some(key) = key_of_var(&var) else {
            report.at(&Source::Env { var, text: String::new() }, unknown(None));
            continue;
        };
        let source = Source::Env { var, text: text.clone() };
        if let Err(problem) = set(draft, &key, &text, &source) {
            match problem {
                SetError::Unknown => report.at(&source, unknown(Some(&key))),
                SetError::Invalid(reason) => report.complain(&shown_key(&key), &source, reason),
            }
            draft.rejected.insert(key);
        }
    }
}

/// Applies the command-line overrides, in order: `(dotted key, text)`.
pub(super) fn apply_overrides(overrides: &[(String, String)], draft: &mut Draft, report: &mut Report<'_>) {
    for (key, text) in overrides {
        let source = Source::Override { text: text.clone() };
        if let Err(problem) = set(draft, key, text, &source) {
            match problem {
                SetError::Unknown if key == PROPERTIES => {
                    let reason = "names the whole table; override one property at a time, kafka.properties.<name>";
                    report.at(&source, format!("{key}: {reason}"));
                }
                SetError::Unknown => {
                    let typo = suggestion(key).map(|k| format!(" (did you mean {k}?)")).unwrap_or_default();
                    report.at(&source, format!("{key}: unknown key{typo}; see docs/configuration.md for every key"));
                }
                SetError::Invalid(reason) => report.complain(&shown_key(key), &source, reason),
            }
            draft.rejected.insert(key.clone());
        }
    }
}

/// `section.key` or `kafka.properties.<name>` of a variable; `None` when
/// the name has no such shape.
fn key_of_var(var: &str) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
    let parts: Vec<&str> = rest.split("__").collect();
    if parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    match parts.as_slice() {
        [section, key] => Some(format!("{section}.{key}")),
        ["kafka", "properties", name] => Some(format!("{PROPERTIES}.{}", name.replace('_', "."))),
        _ => None,
    }
}

/// Why variable names no key (the problem is located at the variable).
fn unknown(key: Option<&str>) -> String {
    if key == Some(PROPERTIES) {
        return format!("names the whole table; set one property per variable, {ENV_PREFIX}KAFKA__PROPERTIES__<NAME>");
    }
    let typo = key.and_then(suggestion).map(|k| format!(" (did you mean {}?)", env_var(k))).unwrap_or_default();
    let section = key.and_then(|k| k.split('.').next()).filter(|s| SECTIONS.contains(s));
    let hint = match section {
        Some(section) => format!("[{section}] takes: {}", keys_of(section).join(", ")),
        None => format!("variables are {ENV_PREFIX}<SECTION>__<KEY>, sections: {}", SECTIONS.join(", ")),
    };
    format!("sets no known key{typo}; {hint}")
}

fn suggestion(key: &str) -> Option<&'static str> {
    closest(key, SCHEMA.iter().map(|(path, _)| *path))
}

/// The key as messages name it.
fn shown_key(key: &str) -> String {
    match property_name(key) {
        Some(name) => property_path(name),
        None => key.to_owned(),
    }
}

fn property_name(key: &str) -> Option<&str> {
    key.strip_prefix(PROPERTIES).and_then(|rest| rest.strip_prefix('.')).map(|name| name.trim_matches('"'))
}

enum SetError {
    Unknown,
    Invalid(String),
}

/// Writes `text`, which `source` gave, over `key`.
fn set(draft: &mut Draft, key: &str, text: &str, source: &Source) -> Result<(), SetError> {
    if let Some(name) = property_name(key) {
        if name.is_empty() {
            return Err(SetError::Unknown);
        }
        draft.kafka.properties.insert(name.to_owned(), given(text.to_owned(), source));
        return Ok(());
    }
    let kind = kind_of(key).ok_or(SetError::Unknown)?;
    let d = draft;
    match kind {
        Kind::Text => {
            let value = Some(given(text.to_owned(), source));
            match key {
                "kafka.group_id" => d.kafka.group_id = value,
                "kafka.input_topic" => d.kafka.input_topic = value,
                "kafka.rewards_topic" => d.kafka.rewards_topic = value,
                "kafka.dead_letter_topic" => d.kafka.dead_letter_topic = value,
                "redis.url" => d.redis.url = value,
                "redis.key_prefix" => d.redis.key_prefix = value,
                "redis.tls_ca_file" => d.redis.tls_ca_file = value,
                "redis.tls_cert_file" => d.redis.tls_cert_file = value,
                "redis.tls_key_file" => d.redis.tls_key_file = value,
                "admin.listen" => d.admin.listen = value,
                "logging.level" => d.logging.level = value,
                "logging.format" => d.logging.format = value,
                _ => return Err(SetError::Unknown),
            }
        }
        Kind::Integer => {
            let number =
                text.trim().parse::<i64>().map_err(|_| SetError::Invalid(format!("expected {}", kind.expected())))?;
            let value = Some(given(number, source));
            match key {
                "kafka.max_message_bytes" => d.kafka.max_message_bytes = value,
                "redis.retention_days" => d.redis.retention_days = value,
                "batching.max_batch_events" => d.batching.max_batch_events = value,
                "batching.max_batch_wait_ms" => d.batching.max_batch_wait_ms = value,
                "batching.max_in_flight_events" => d.batching.max_in_flight_events = value,
                "batching.lanes" => d.batching.lanes = value,
                "daemon.shutdown_timeout_ms" => d.daemon.shutdown_timeout_ms = value,
                _ => return Err(SetError::Unknown),
            }
        }
        Kind::Boolean => {
            let flag = match text.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(SetError::Invalid(format!("expected {}", kind.expected()))),
            };
            match key {
                "programs.reload_on_sighup" => d.programs.reload_on_sighup = Some(given(flag, source)),
                _ => return Err(SetError::Unknown),
            }
        }
        Kind::List => {
            // An empty text is an empty list, which validation then names.
            let items: Vec<String> = if text.trim().is_empty() {
                Vec::new()
            } else {
                text.split(',').map(|s| s.trim().to_owned()).collect()
            };
            let value = Some(given(items, source));
            match key {
                "kafka.brokers" => d.kafka.brokers = value,
                "programs.rules" => d.programs.rules = value,
                _ => return Err(SetError::Unknown),
            }
        }
    }
    Ok(())
}

fn given<T>(value: T, source: &Source) -> Given<T> {
    Given { value, source: source.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_name_keys() {
        assert_eq!(key_of_var("LOYALTY_SCORER__REDIS__URL").as_deref(), Some("redis.url"));
        assert_eq!(key_of_var("LOYALTY_SCORER__KAFKA__GROUP_ID").as_deref(), Some("kafka.group_id"));
        assert_eq!(
            key_of_var("LOYALTY_SCORER__KAFKA__PROPERTIES__SASL_PASSWORD").as_deref(),
            Some("kafka.properties.sasl.password")
        );
        assert_eq!(key_of_var("LOYALTY_SCORER__KAFKA"), None);
        assert_eq!(key_of_var("LOYALTY_SCORER__KAFKA____X"), None);
        assert_eq!(key_of_var("LOYALTY_SCORER__A__B__C"), None);
    }

    #[test]
    fn every_key_has_a_variable_and_back() {
        for (key, _) in SCHEMA {
            assert_eq!(key_of_var(&env_var(key)).as_deref(), Some(*key));
        }
        assert_eq!(env_var("kafka.properties.ssl.key.password"), "LOYALTY_SCORER__KAFKA__PROPERTIES__SSL_KEY_PASSWORD");
    }

    #[test]
    fn every_key_can_be_set() {
        for (key, kind) in SCHEMA {
            let text = match kind {
                Kind::Text => "x",
                Kind::Integer => "1",
                Kind::Boolean => "true",
                Kind::List => "a,b",
            };
            let source = Source::Override { text: text.to_owned() };
            assert!(set(&mut Draft::default(), key, text, &source).is_ok(), "{key}");
        }
    }
}
