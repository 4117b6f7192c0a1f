//! Rules file loading (placeholder, replaced by the real loader).

use crate::rules::model::Program;

/// One problem of a rules file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

/// Validates `text` (named `file` in diagnostics) into a program.
pub fn load_str(file: &str, text: &str) -> Result<Program, Vec<Diagnostic>> {
    let _ = text;
    Err(vec![Diagnostic { file: file.to_owned(), line: 1, column: 1, message: "not implemented".into() }])
}

/// One-line summary of a valid program.
pub fn summary(program: &Program) -> String {
    program.id.clone()
}
