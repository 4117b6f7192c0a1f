//! Problems found in any layer, collected while reading and validating so
//! one run reports all of them. Each is located where the operator can fix
//! it: a file position (1-based line and column, as the rules loader gives
//! them), an environment variable, or the command line. Every message that
//! shows a value passes it through [`Report::complain`], which redacts
//! secrets: a problem may be printed anywhere.

use super::draft::{PROPERTIES, Source};
use super::secret::is_secret_property;
use super::{Origin, Problem};
use crate::rules::load::report::{line_column, one_line};
use crate::state::redis::redact;

/// Sorts problems: the file's by position, then the environment's, then
/// the command line's (each in the order they were applied), then those no
/// layer is to blame for (a required key nobody set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    File(usize),
    Env(usize),
    CommandLine(usize),
    Nowhere(usize),
}

pub(super) struct Report<'t> {
    /// The file's name in messages, and its text (spans index it).
    file: Option<(&'t str, &'t str)>,
    found: Vec<(Rank, Problem)>,
}

impl<'t> Report<'t> {
    pub(super) fn new(file: Option<(&'t str, &'t str)>) -> Self {
        Self { file, found: Vec::new() }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    /// Records a problem at byte `offset` of the file.
    pub(super) fn at_offset(&mut self, offset: usize, message: String) {
        let (file, text) = self.file.unwrap_or_default();
        let (line, column) = line_column(text, offset);
        let origin = Origin::File { file: file.to_owned(), line, column };
        self.found.push((Rank::File(offset), Problem { origin, message }));
    }

    /// Records a problem with the layer that set a value.
    pub(super) fn at(&mut self, source: &Source, message: String) {
        let seq = self.found.len();
        match source {
            Source::File(span) => self.at_offset(span.start, message),
            Source::Env { var, .. } => {
                self.found.push((Rank::Env(seq), Problem { origin: Origin::Env { var: var.clone() }, message }))
            }
            Source::Override { .. } => {
                self.found.push((Rank::CommandLine(seq), Problem { origin: Origin::CommandLine, message }))
            }
        }
    }

    /// Records a problem that no layer is to blame for.
    pub(super) fn nowhere(&mut self, message: String) {
        let seq = self.found.len();
        self.found.push((Rank::Nowhere(seq), Problem { origin: Origin::Nowhere, message }));
    }

    /// Records `path = value: reason` at the value's source, with the value
    /// as the operator wrote it, secrets redacted.
    pub(super) fn complain(&mut self, path: &str, source: &Source, reason: impl std::fmt::Display) {
        let written = self.written(source);
        self.at(source, format!("{path} = {}: {reason}", shown(path, &written)));
    }

    /// A value as the operator wrote it: the file's text, or a variable's
    /// or override's text quoted as TOML would.
    pub(super) fn written(&self, source: &Source) -> String {
        match source {
            Source::File(span) => one_line(self.file.and_then(|(_, text)| text.get(span.clone())).unwrap_or("")),
            Source::Env { text, .. } | Source::Override { text, .. } => format!("{text:?}"),
        }
    }

    pub(super) fn into_problems(mut self) -> Vec<Problem> {
        // Stable: problems at one position keep the order they were found in.
        self.found.sort_by_key(|(rank, _)| *rank);
        self.found.into_iter().map(|(_, problem)| problem).collect()
    }
}

/// `written`, fit to be printed as the value of `path`.
pub(super) fn shown(path: &str, written: &str) -> String {
    if path == "redis.url" {
        return redact(written);
    }
    match path.strip_prefix(PROPERTIES).and_then(|rest| rest.strip_prefix('.')) {
        Some(name) if is_secret_property(name.trim_matches('"')) => "***".to_owned(),
        _ => written.to_owned(),
    }
}

/// How a property is named in messages: `kafka.properties."sasl.password"`.
pub(super) fn property_path(name: &str) -> String {
    let bare = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if bare { format!("{PROPERTIES}.{name}") } else { format!("{PROPERTIES}.{name:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_shown() {
        assert_eq!(shown("redis.url", "\"redis://:pw@h:1/\""), "\"redis://:***@h:1/\"");
        assert_eq!(shown(&property_path("sasl.password"), "\"pw\""), "***");
        assert_eq!(shown(&property_path("sasl.username"), "\"me\""), "\"me\"");
        assert_eq!(shown("kafka.group_id", "\"g\""), "\"g\"");
    }

    #[test]
    fn problems_sort_by_layer_then_position() {
        let text = "a = 1\nb = 2\n";
        let mut report = Report::new(Some(("f.toml", text)));
        report.nowhere("missing".into());
        report.at(&Source::Override { text: "v".into() }, "cli".into());
        report.at(&Source::Env { var: "V".into(), text: "v".into() }, "env".into());
        report.at_offset(6, "second".into());
        report.at_offset(0, "first".into());
        let shown: Vec<String> = report.into_problems().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["f.toml:1:1: first", "f.toml:2:1: second", "V: env", "command line: cli", "missing"]);
    }
}
