//! Reading one TOML table of the rules file, key by key, with spans.
//!
//! A [`Fields`] remembers every key a reader asked for; [`Fields::finish`]
//! reports the others as unknown, with the table's known keys and the likely
//! intended one. That is `deny_unknown_fields` without serde, so the check
//! holds for tables whose keys depend on a value (a rule's `kind`) and every
//! unknown key is reported, not only the first.
//!
//! Typed reads ([`Entry::decimal`], [`Entry::int`], ...) record a problem
//! and return `None` for a value that is present but wrong, so callers fall
//! back to a default and keep reading; the caller never builds a program
//! from a report that is not empty.

use rust_decimal::Decimal;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::report::{Report, Span, closest, one_line};
use super::scalar::{DecimalError, parse_decimal, parse_timestamp};
use crate::event::Micros;

/// The largest points amount (bonuses, budgets, caps, milestones) a file may
/// state: far beyond any real program, and far enough below `i64::MAX` that
/// the engine's sums of such amounts cannot overflow.
pub(super) const MAX_POINTS: i64 = 1_000_000_000_000_000;

/// One table being read.
#[derive(Debug)]
pub(super) struct Fields<'a, 'i> {
    /// Dotted path of the table in messages (`program`, `rules.coffee-x3`);
    /// empty for the document.
    path: String,
    /// How the unknown-key message names the table (`[[tiers]]`).
    what: String,
    /// The table's header, where a missing key is reported.
    span: Span,
    table: &'a DeTable<'i>,
    known: Vec<&'static str>,
}

/// A key that is present, and its value.
#[derive(Debug, Clone)]
pub(super) struct Entry<'a, 'i> {
    /// Dotted path of the key in messages.
    pub(super) path: String,
    pub(super) key: &'static str,
    pub(super) value: &'a Spanned<DeValue<'i>>,
}

impl<'a, 'i> Fields<'a, 'i> {
    pub(super) fn new(path: String, what: String, span: Span, table: &'a DeTable<'i>) -> Self {
        Self { path, what, span, table, known: Vec::new() }
    }

    pub(super) fn span(&self) -> &Span {
        &self.span
    }

    /// Renames the table in later messages, once its identity (an `id`) is known.
    pub(super) fn set_path(&mut self, path: String) {
        self.path = path;
    }

    pub(super) fn set_what(&mut self, what: String) {
        self.what = what;
    }

    /// Declares `keys` known without reading them (their table is reported
    /// otherwise, e.g. a rule whose kind is unknown).
    pub(super) fn allow(&mut self, keys: &[&'static str]) {
        self.known.extend_from_slice(keys);
    }

    /// The value of `key`, if present; `key` is known from now on.
    pub(super) fn get(&mut self, key: &'static str) -> Option<Entry<'a, 'i>> {
        self.known.push(key);
        let value = self.table.get(key)?;
        Some(Entry { path: join(&self.path, key), key, value })
    }

    /// Like [`Fields::get`], reporting a missing key with an example value.
    pub(super) fn require(
        &mut self,
        report: &mut Report<'_>,
        key: &'static str,
        example: &str,
    ) -> Option<Entry<'a, 'i>> {
        let entry = self.get(key);
        if entry.is_none() {
            report.at(&self.span, format!("{}: missing required key {key}; add e.g. {key} = {example}", self.label()));
        }
        entry
    }

    /// Reports every key no reader asked for.
    pub(super) fn finish(self, report: &mut Report<'_>) {
        self.finish_with(report, |_| None);
    }

    /// Like [`Fields::finish`]; `note` may explain an unknown key further
    /// (e.g. which other rule kind takes it).
    pub(super) fn finish_with(self, report: &mut Report<'_>, note: impl Fn(&str) -> Option<String>) {
        for (key, value) in self.table.iter() {
            let name: &str = key.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let noun = match value.get_ref() {
                DeValue::Table(_) => "table",
                DeValue::Array(a) if a.iter().all(|v| v.get_ref().is_table()) && !a.is_empty() => "table",
                _ => "key",
            };
            let mut message = format!("{}: unknown {noun}", join(&self.path, name));
            if let Some(extra) = note(name) {
                message.push_str(&format!(" ({extra})"));
            }
            if let Some(typo) = closest(name, self.known.iter().copied()) {
                message.push_str(&format!(" (did you mean {typo}?)"));
            }
            let mut listed: Vec<&str> = Vec::new();
            for k in &self.known {
                if !listed.contains(k) {
                    listed.push(k);
                }
            }
            message.push_str(&format!("; {} takes: {}", self.what, listed.join(", ")));
            report.at(&key.span(), message);
        }
    }

    /// The table as messages name it.
    fn label(&self) -> String {
        if self.path.is_empty() { self.what.clone() } else { self.path.clone() }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// How a TOML value is called in messages.
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

/// Bounds of an integer key.
#[derive(Debug, Clone, Copy)]
pub(super) struct IntRange {
    pub(super) min: i64,
    pub(super) max: i64,
}

impl IntRange {
    pub(super) const fn new(min: i64, max: i64) -> Self {
        Self { min, max }
    }

    /// `min` and up, to the points bound.
    pub(super) const fn points_from(min: i64) -> Self {
        Self::new(min, MAX_POINTS)
    }

    fn complaint(&self, value: i64) -> String {
        // A small range reads best whole; a huge bound is only ever hit by
        // mistake, so name the side that was crossed.
        if self.max <= 1000 {
            format!("must be between {} and {}", self.min, self.max)
        } else if value < self.min && self.min == 0 {
            "must not be negative".to_owned()
        } else if value < self.min {
            format!("must be at least {}", self.min)
        } else {
            format!("must be at most {}", self.max)
        }
    }
}

impl<'a> Entry<'a, '_> {
    /// Records a problem with this value: `path = value: reason`.
    pub(super) fn complain(&self, report: &mut Report<'_>, reason: impl std::fmt::Display) {
        let span = self.value.span();
        let written = one_line(report.src(&span));
        report.at(&span, format!("{} = {written}: {reason}", self.path));
    }

    /// Records a problem with one element of this (array) value.
    pub(super) fn complain_at(&self, report: &mut Report<'_>, span: &Span, reason: impl std::fmt::Display) {
        let written = one_line(report.src(span));
        report.at(span, format!("{}: {written} {reason}", self.path));
    }

    fn wrong_type(&self, report: &mut Report<'_>, expected: &str, example: &str) {
        let got = type_name(self.value.get_ref());
        self.complain(report, format!("expected {expected}, found {got}; e.g. {} = {example}", self.key));
    }

    pub(super) fn string(&self, report: &mut Report<'_>) -> Option<&'a str> {
        match self.value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong_type(report, "a string", "\"...\"");
                None
            }
        }
    }

    /// A string that is not empty (names, ids, gifts).
    pub(super) fn name(&self, report: &mut Report<'_>) -> Option<&'a str> {
        let s = self.string(report)?;
        if s.trim().is_empty() {
            self.complain(report, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A decimal string of at least `min` and, if given, at most `max`.
    pub(super) fn decimal(&self, report: &mut Report<'_>, min: Decimal, max: Option<Decimal>) -> Option<Decimal> {
        let text = match self.value.get_ref() {
            DeValue::String(s) => s.as_ref(),
            DeValue::Integer(_) | DeValue::Float(_) => {
                let written = report.src(&self.value.span()).trim_start_matches('+');
                let mut reason = format!("write decimals as strings, e.g. {} = \"{written}\"", self.key);
                if written.starts_with('-') {
                    reason.push_str(", and it must not be negative");
                }
                self.complain(report, reason);
                return None;
            }
            _ => {
                self.wrong_type(report, "a decimal string", "\"1.5\"");
                return None;
            }
        };
        let range = match max {
            Some(max) => format!("between {min} and {max}"),
            None if min.is_zero() => "0 or more".to_owned(),
            None => format!("{min} or more"),
        };
        let value = match parse_decimal(text) {
            Ok(v) => v,
            Err(DecimalError::NotDecimal) => {
                self.complain(report, "not a decimal; write digits with an optional fraction, e.g. \"1.25\"");
                return None;
            }
            Err(DecimalError::Negative) => {
                self.complain(report, format!("must not be negative; write {range}"));
                return None;
            }
            Err(DecimalError::TooPrecise) => {
                self.complain(report, "has too many digits (at most 28 are kept exactly)");
                return None;
            }
        };
        if value < min || max.is_some_and(|m| value > m) {
            self.complain(report, format!("must be {range}"));
            return None;
        }
        Some(value)
    }

    /// A TOML integer within `range`.
    pub(super) fn int(&self, report: &mut Report<'_>, range: IntRange) -> Option<i64> {
        let example = range.min.max(1);
        let value = match self.value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            DeValue::String(s) if s.trim().parse::<i64>().is_ok() => {
                self.complain(report, format!("write whole numbers without quotes, e.g. {} = {}", self.key, s.trim()));
                return None;
            }
            DeValue::Float(_) => {
                self.complain(report, format!("must be a whole number, e.g. {} = {example}", self.key));
                return None;
            }
            _ => {
                self.wrong_type(report, "a whole number", &example.to_string());
                return None;
            }
        };
        match value {
            Some(v) if v >= range.min && v <= range.max => Some(v),
            Some(v) => {
                self.complain(report, range.complaint(v));
                None
            }
            None => {
                self.complain(report, range.complaint(i64::MAX));
                None
            }
        }
    }

    /// One of `options`, by name.
    pub(super) fn choice<T: Copy>(&self, report: &mut Report<'_>, options: &[(&'static str, T)]) -> Option<T> {
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let Some(text) = (match self.value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => None,
        }) else {
            let example = format!("\"{}\"", names.first().copied().unwrap_or_default());
            self.wrong_type(report, &format!("one of {}", names.join(", ")), &example);
            return None;
        };
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == text) {
            return Some(*v);
        }
        let typo =
            closest(text, names.iter().copied()).map(|t| format!(" (did you mean \"{t}\"?)")).unwrap_or_default();
        let reason = format!("unknown value{typo}; write one of {}", names.join(", "));
        self.complain(report, reason);
        None
    }

    /// An array of strings with their spans; `Some(vec![])` only when
    /// `allow_empty`.
    pub(super) fn strings(
        &self,
        report: &mut Report<'_>,
        allow_empty: bool,
        omit_hint: &str,
    ) -> Option<Vec<(&'a str, Span)>> {
        let DeValue::Array(items) = self.value.get_ref() else {
            self.wrong_type(report, "a list of strings", "[\"...\"]");
            return None;
        };
        if items.is_empty() && !allow_empty {
            self.complain(report, format!("must not be empty; {omit_hint}"));
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.as_ref(), item.span())),
                other => {
                    ok = false;
                    self.complain_at(report, &item.span(), format!("is {}; the list holds strings", type_name(other)));
                }
            }
        }
        ok.then_some(out)
    }

    /// Like [`Entry::strings`], without the spans.
    pub(super) fn string_list(
        &self,
        report: &mut Report<'_>,
        allow_empty: bool,
        omit_hint: &str,
    ) -> Option<Vec<String>> {
        self.strings(report, allow_empty, omit_hint).map(|v| v.into_iter().map(|(s, _)| s.to_owned()).collect())
    }

    /// A non-empty array of integers with their spans: those within
    /// `range`, and whether every element was (problems are reported).
    pub(super) fn ints(&self, report: &mut Report<'_>, range: IntRange) -> Option<(Vec<(i64, Span)>, bool)> {
        let DeValue::Array(items) = self.value.get_ref() else {
            self.wrong_type(report, "a list of whole numbers", "[1000, 5000]");
            return None;
        };
        if items.is_empty() {
            self.complain(report, "must list at least one value");
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            let parsed = match item.get_ref() {
                DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
                other => {
                    ok = false;
                    self.complain_at(
                        report,
                        &item.span(),
                        format!("is {}; the list holds whole numbers", type_name(other)),
                    );
                    continue;
                }
            };
            match parsed {
                Some(v) if v >= range.min && v <= range.max => out.push((v, item.span())),
                Some(v) => {
                    ok = false;
                    self.complain_at(report, &item.span(), range.complaint(v));
                }
                None => {
                    ok = false;
                    self.complain_at(report, &item.span(), range.complaint(i64::MAX));
                }
            }
        }
        Some((out, ok))
    }

    /// An RFC 3339 timestamp with an offset, quoted or as a TOML offset date-time.
    pub(super) fn timestamp(&self, report: &mut Report<'_>) -> Option<Micros> {
        let text = match self.value.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Datetime(d) => d.to_string(),
            _ => {
                self.wrong_type(report, "an RFC 3339 timestamp", "\"2026-11-01T00:00:00Z\"");
                return None;
            }
        };
        let parsed = parse_timestamp(&text);
        if parsed.is_none() {
            self.complain(
                report,
                format!(
                    "not an RFC 3339 timestamp with an offset; write e.g. {} = \"2026-11-01T00:00:00+01:00\" or \"2026-11-01T00:00:00Z\"",
                    self.key
                ),
            );
        }
        parsed
    }
}

impl<'a, 'i> Entry<'a, 'i> {
    /// The value as a table to read.
    pub(super) fn table(&self, report: &mut Report<'_>, what: &str) -> Option<Fields<'a, 'i>> {
        match self.value.get_ref() {
            DeValue::Table(t) => Some(Fields::new(self.path.clone(), what.to_owned(), self.value.span(), t)),
            DeValue::Array(items) if items.iter().any(|i| i.get_ref().is_table()) => {
                report.at(
                    &self.value.span(),
                    format!("{}: written as a list of tables; write {what} (single brackets) once", self.path),
                );
                None
            }
            other => {
                self.complain(report, format!("expected a table, found {}; write it as {what}", type_name(other)));
                None
            }
        }
    }

    /// The value as an array of tables (`[[key]]`), each to read; the tables
    /// are named `key[n]` (1-based) until the caller renames them.
    pub(super) fn tables(&self, report: &mut Report<'_>, what: &str) -> Option<Vec<Fields<'a, 'i>>> {
        let items = match self.value.get_ref() {
            DeValue::Array(items) => items,
            DeValue::Table(_) => {
                report.at(
                    &self.value.span(),
                    format!(
                        "{}: written as a single table; write {what} (double brackets) before each entry",
                        self.path
                    ),
                );
                return None;
            }
            other => {
                self.complain(
                    report,
                    format!("expected a list of tables, found {}; write one {what} table per entry", type_name(other)),
                );
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for (n, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(t) => {
                    out.push(Fields::new(format!("{}[{}]", self.path, n + 1), what.to_owned(), item.span(), t))
                }
                other => self.complain_at(
                    report,
                    &item.span(),
                    format!("is {}; each entry must be a table", type_name(other)),
                ),
            }
        }
        Some(out)
    }
}

/// How an array entry is named once its identity is known: `rules.coffee-x3`,
/// quoted when the id is not a bare TOML key.
pub(super) fn item_path(section: &str, id: &str) -> String {
    let bare = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare { format!("{section}.{id}") } else { format!("{section}.{id:?}") }
}
