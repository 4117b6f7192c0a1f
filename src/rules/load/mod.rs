//! Rules file loading: TOML text -> a validated, immutable [`Program`].
//!
//! This module owns the contract's section 3: every key, type, range and
//! default of a rules file, and what `check-rules` rejects. Its invariant is
//! the model's: a [`Program`] exists only when the whole file is valid, so the
//! engine never re-checks (tiers ordered from 0, ids unique, filters well
//! formed, lists non-empty). It does no I/O but [`load_file`]'s one read.
//!
//! The file is parsed once into TOML values with spans ([`toml::de::DeTable`])
//! and read key by key (`fields`), not deserialized with serde: that way
//! every problem is found in one pass and located at its key or value, and
//! keys that depend on a value (a rule's `kind`) are checked like the others.
//! Each section has its reader (`program`, `rules`); a later key or
//! section of the contract is one more `get` in its reader, a later rule kind
//! one more entry in `rules::KINDS`.

mod fields;
mod program;
pub(crate) mod report;
mod rules;
mod scalar;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::de::DeTable;

use self::fields::Fields;
use self::report::{Report, line_column};
use crate::rules::model::{Caps, Expiry, ExpiryMode, Program};

/// One problem of a rules file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Why a rules file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read rules file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, in file order.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics.iter().map(Diagnostic::to_string).collect::<Vec<_>>().join("\n")
}

/// Validates `text` (named `file` in diagnostics) into a program.
///
/// On failure, returns every problem found, sorted by position.
pub fn load_str(file: &str, text: &str) -> Result<Program, Vec<Diagnostic>> {
    let version = version_of(text.as_bytes());
    let document = match DeTable::parse(text) {
        Ok(document) => document,
        Err(error) => {
            // One diagnostic: after a syntax error the rest of the file is
            // guesswork, and a guess would point operators at the wrong line.
            let (line, column) = line_column(text, error.span().map_or(0, |s| s.start));
            return Err(vec![Diagnostic {
                file: file.to_owned(),
                line,
                column,
                message: format!("TOML syntax error: {}", error.message().trim_end()),
            }]);
        }
    };
    let mut report = Report::new(text);
    let program = read_document(&document, &mut report, version);
    match program {
        Some(program) if report.is_empty() => Ok(program),
        _ => Err(report.into_diagnostics(file)),
    }
}

/// Reads and validates the rules file at `path`; diagnostics name it as given.
pub fn load_file(path: &Path) -> Result<Program, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })?;
    let name = path.display().to_string();
    match std::str::from_utf8(&bytes) {
        Ok(text) => load_str(&name, text).map_err(LoadError::Invalid),
        Err(error) => {
            let valid = String::from_utf8_lossy(&bytes[..error.valid_up_to()]);
            let (line, column) = line_column(&valid, valid.len());
            Err(LoadError::Invalid(vec![Diagnostic {
                file: name,
                line,
                column,
                message: "the file is not valid UTF-8 here; save it as UTF-8".to_owned(),
            }]))
        }
    }
}

/// The one-line summary `check-rules` prints for a valid file.
pub fn summary(program: &Program) -> String {
    let count = |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    format!(
        "{}: {}, {}, {}, {}, {}, rules_version {}",
        program.id,
        program.currency,
        program.timezone.name(),
        count(program.tiers.len(), "tier", "tiers"),
        count(program.rules.len(), "rule", "rules"),
        count(program.partners.len(), "partner", "partners"),
        program.version
    )
}

/// First 16 hex digits of the SHA-256 of the file's bytes: what
/// `sha256sum rules.toml | cut -c1-16` prints.
fn version_of(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Reads every section; `None` when the file has no `[program]` at all.
fn read_document(document: &toml::Spanned<DeTable<'_>>, r: &mut Report<'_>, version: String) -> Option<Program> {
    let mut root = Fields::new(String::new(), "a rules file".to_owned(), 0..0, document.get_ref());
    let header = match root.get("program") {
        Some(e) => e.table(r, "[program]").map(|f| program::header(f, r)),
        None => {
            r.at(root.span(), "missing [program]: a rules file starts with [program] and at least its id and currency");
            None
        }
    };
    let tiers = root.get("tiers").map_or_else(program::default_tiers, |e| program::tiers(&e, r));
    let qualification = root
        .get("tier_qualification")
        .and_then(|e| e.table(r, "[tier_qualification]"))
        .map_or(program::DEFAULT_QUALIFICATION, |f| program::qualification(f, r));
    let partners = root.get("partners").map(|e| program::partners(&e, r)).unwrap_or_default();
    let rules = root.get("rules").map(|e| rules::rules(&e, &tiers, r)).unwrap_or_default();
    let caps = root.get("caps").and_then(|e| e.table(r, "[caps]")).map_or(Caps::default(), |f| program::caps(f, r));
    let expiry =
        root.get("expiry").and_then(|e| e.table(r, "[expiry]")).map_or(Expiry::default(), |f| program::expiry(f, r));
    let pending = root.get("pending").and_then(|e| e.table(r, "[pending]")).and_then(|f| program::pending(f, r));
    if let (Some((days, e)), ExpiryMode::Rolling { ttl_days }) = (&pending, expiry.mode) {
        if *days >= ttl_days {
            e.complain(
                r,
                format!(
                    "must be below expiry.points_ttl_days ({ttl_days}), or points would expire before they are released; shorten the pending period or lengthen points_ttl_days"
                ),
            );
        }
    }
    root.finish(r);
    let header = header?;
    Some(Program {
        id: header.id,
        currency: header.currency,
        timezone: header.timezone,
        points_per_unit: header.points_per_unit,
        rounding: header.rounding,
        excluded_categories: header.excluded_categories,
        point_value: header.point_value,
        tiers,
        qualification,
        partners,
        rules,
        caps,
        expiry,
        pending_days: pending.map(|(days, _)| days),
        version,
    })
}
