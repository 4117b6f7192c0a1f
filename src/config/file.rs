//! The file layer: TOML text -> the draft's sections, every problem located.
//!
//! The document is parsed once with spans ([`DeTable`]) and each section is
//! deserialized on its own with serde, so a problem in `[kafka]` does not
//! hide those of `[redis]`. Serde stops at a section's first error (an
//! unknown key, a value of the wrong type); the reader reports it at the
//! key or value the error's span names, removes that entry and deserializes
//! the section again, until it passes. That way every unknown key and every
//! wrong type is reported in one run, and the section's good keys still
//! reach validation.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::draft::{Draft, Kind, PROPERTIES, SECTIONS, Source, keys_of, kind_of};
use super::report::{Report, property_path, shown};
use crate::rules::load::report::closest;

/// Reads `text` into `draft`; problems go to `report`.
pub(super) fn read(text: &str, draft: &mut Draft, report: &mut Report<'_>) {
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            // One problem: after a syntax error the rest of the file is
            // guesswork, as in the rules loader.
            let offset = error.span().map_or(0, |s| s.start);
            report.at_offset(offset, format!("TOML syntax error: {}", error.message().trim_end()));
            // Nothing of the file is known, so nothing is "missing" either.
            draft.rejected.extend(SECTIONS.iter().map(|s| (*s).to_owned()));
            return;
        }
    };
    for (name, value) in document.into_inner() {
        let name_span = name.span();
        match name.get_ref().as_ref() {
            "kafka" => draft.kafka = section("kafka", value, draft, report),
            "redis" => draft.redis = section("redis", value, draft, report),
            "programs" => draft.programs = section("programs", value, draft, report),
            "batching" => draft.batching = section("batching", value, draft, report),
            "admin" => draft.admin = section("admin", value, draft, report),
            "logging" => draft.logging = section("logging", value, draft, report),
            "daemon" => draft.daemon = section("daemon", value, draft, report),
            other => {
                let noun = if value.get_ref().is_table() { "section" } else { "key" };
                let typo = closest(other, SECTIONS.iter().copied())
                    .map(|t| format!(" (did you mean [{t}]?)"))
                    .unwrap_or_default();
                let all: Vec<String> = SECTIONS.iter().map(|s| format!("[{s}]")).collect();
                report.at_offset(
                    name_span.start,
                    format!("{other}: unknown {noun}{typo}; the file takes the sections {}", all.join(", ")),
                );
            }
        }
    }
}

/// Deserializes the section `name`, reporting and dropping each entry serde
/// rejects until the rest deserializes.
fn section<T: DeserializeOwned + Default>(
    name: &str,
    mut value: Spanned<DeValue<'_>>,
    draft: &mut Draft,
    report: &mut Report<'_>,
) -> T {
    loop {
        let error = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(section) => return section,
            Err(error) => error,
        };
        let located = match (error.span(), value.get_ref()) {
            (Some(span), DeValue::Table(table)) => locate(table, &span, &mut Vec::new()),
            _ => None,
        };
        let Some((keys, hit)) = located else {
            // The section itself is wrong (`kafka = 5`), or serde named no
            // place: report it whole and keep none of it. Serde's message is
            // not shown: it may quote a value, and the value may be a secret.
            let message = if value.get_ref().is_table() {
                format!("{name}: the section cannot be read; compare its keys with docs/configuration.md")
            } else {
                let written = report.written(&Source::File(value.span()));
                format!("{name} = {written}: expected a table; write the keys under [{name}]")
            };
            report.at_offset(value.span().start, message);
            draft.rejected.insert(name.to_owned());
            return T::default();
        };
        let path = path_of(name, &keys);
        match hit {
            Hit::Key(span) => {
                let key = keys.last().map_or("", String::as_str);
                let known = keys_of(name);
                let typo =
                    closest(key, known.iter().copied()).map(|t| format!(" (did you mean {t}?)")).unwrap_or_default();
                report
                    .at_offset(span.start, format!("{path}: unknown key{typo}; [{name}] takes: {}", known.join(", ")));
            }
            Hit::Value { at, value: whole, found } => {
                let expected = if path == PROPERTIES {
                    "a table of librdkafka properties, e.g. [kafka.properties]"
                } else if path.starts_with(PROPERTIES) {
                    "a string (librdkafka takes every value as a string, e.g. \"45000\")"
                } else {
                    kind_of(&path).map_or("another type", Kind::expected)
                };
                let written = report.written(&Source::File(whole));
                let mut reason = format!("expected {expected}, found {found}");
                if found == "a string" && expected == Kind::Integer.expected() {
                    reason.push_str("; write numbers without quotes");
                }
                report.at_offset(at.start, format!("{path} = {}: {reason}", shown(&path, &written)));
            }
        }
        draft.rejected.insert(path);
        if !remove(&mut value, &keys) {
            draft.rejected.insert(name.to_owned());
            return T::default();
        }
    }
}

/// What a serde error's span points at.
enum Hit {
    /// A key (`deny_unknown_fields`).
    Key(Range<usize>),
    /// A value, or an element of a list (at `at`), of the wrong type.
    Value { at: Range<usize>, value: Range<usize>, found: String },
}

/// The keys from `table` down to the entry whose key or value holds `span`.
fn locate(table: &DeTable<'_>, span: &Range<usize>, keys: &mut Vec<String>) -> Option<(Vec<String>, Hit)> {
    for (key, value) in table.iter() {
        keys.push(key.get_ref().to_string());
        if key.span() == *span {
            return Some((keys.clone(), Hit::Key(key.span())));
        }
        if let DeValue::Table(inner) = value.get_ref() {
            if let Some(found) = locate(inner, span, keys) {
                return Some(found);
            }
        }
        if value.span().contains(&span.start) || value.span() == *span {
            let element = match value.get_ref() {
                DeValue::Array(items) => items.iter().find(|item| item.span().contains(&span.start)),
                _ => None,
            };
            let found = match element {
                Some(item) => format!("{} in the list", type_name(item.get_ref())),
                None => type_name(value.get_ref()).to_owned(),
            };
            return Some((keys.clone(), Hit::Value { at: span.clone(), value: value.span(), found }));
        }
        keys.pop();
    }
    None
}

/// Removes the entry at `keys` below the section; false when there is none.
fn remove(section: &mut Spanned<DeValue<'_>>, keys: &[String]) -> bool {
    let Some((last, parents)) = keys.split_last() else { return false };
    let mut table = match section.get_mut() {
        DeValue::Table(table) => table,
        _ => return false,
    };
    for key in parents {
        table = match table.get_mut(key.as_str()).map(Spanned::get_mut) {
            Some(DeValue::Table(inner)) => inner,
            _ => return false,
        };
    }
    table.remove(last.as_str()).is_some()
}

/// `kafka.brokers`, or `kafka.properties."sasl.password"`.
fn path_of(section: &str, keys: &[String]) -> String {
    match keys {
        [table, name] if format!("{section}.{table}") == PROPERTIES => property_path(name),
        _ => std::iter::once(section).chain(keys.iter().map(String::as_str)).collect::<Vec<_>>().join("."),
    }
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}
