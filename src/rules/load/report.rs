//! Problems found in a rules file, collected while reading it.
//!
//! Readers record a problem with the byte span of the key or value at fault
//! and carry on, so one pass reports everything. Byte offsets become 1-based
//! line and column (in characters) only at the end, and the problems are
//! sorted by position there: the order readers visit tables in (the parser
//! sorts keys) never leaks into the output.
//!
//! The position, typo and value-folding helpers are shared with the daemon's
//! configuration loader (`crate::config`), so both files read alike.

use std::ops::Range;

use super::Diagnostic;

/// A byte range of the rules text.
pub(super) type Span = Range<usize>;

#[derive(Debug)]
pub(super) struct Report<'t> {
    text: &'t str,
    found: Vec<(usize, String)>,
}

impl<'t> Report<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        Self { text, found: Vec::new() }
    }

    /// Records a problem located at the start of `span`.
    pub(super) fn at(&mut self, span: &Span, message: impl Into<String>) {
        self.found.push((span.start, message.into()));
    }

    /// The source text of `span`, as the operator wrote it.
    pub(super) fn src(&self, span: &Span) -> &'t str {
        self.text.get(span.clone()).unwrap_or("")
    }

    pub(super) fn is_empty(&self) -> bool {
        self.found.is_empty()
    }

    pub(super) fn into_diagnostics(mut self, file: &str) -> Vec<Diagnostic> {
        // Stable: two problems at one position keep the order they were found in.
        self.found.sort_by_key(|(offset, _)| *offset);
        let text = self.text;
        self.found
            .into_iter()
            .map(|(offset, message)| {
                let (line, column) = line_column(text, offset);
                Diagnostic { file: file.to_owned(), line, column, message }
            })
            .collect()
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// A value as written, fit for a one-line message: a multi-line array or
/// inline table is folded and a long value shortened.
pub(crate) fn one_line(written: &str) -> String {
    const LIMIT: usize = 60;
    let folded = written.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= LIMIT {
        // Keep the value exactly as written when it already fits, spaces
        // inside strings included.
        return if written.contains('\n') { folded } else { written.to_owned() };
    }
    let mut short: String = folded.chars().take(LIMIT).collect();
    short.push_str("...");
    short
}

/// The known word closest to `word`, when it is close enough to be a typo.
pub(crate) fn closest<'k>(word: &str, known: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let word = word.to_ascii_lowercase();
    known
        .into_iter()
        .map(|k| (distance(&word, k), k))
        // Distance 0 is a case difference: `Multiplier` for `multiplier`.
        .filter(|&(d, k)| d <= 2 && d * 3 <= k.chars().count().max(3))
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// Edit distance with adjacent transpositions (optimal string alignment):
/// `treshold`, `thershold` and `threshhold` are all one edit from `threshold`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best =
                (d[(i - 1) * width + j] + 1).min(d[i * width + j - 1] + 1).min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_in_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        // `é` is two bytes but one column.
        assert_eq!(line_column(text, 12), (2, 6));
        assert_eq!(line_column(text, 999), (3, 1));
    }

    #[test]
    fn typos_find_their_key() {
        let keys = ["name", "threshold", "multiplier", "discount_percent"];
        assert_eq!(closest("treshold", keys), Some("threshold"));
        assert_eq!(closest("thershold", keys), Some("threshold"));
        assert_eq!(closest("Multiplier", keys), Some("multiplier"));
        assert_eq!(closest("colour", keys), None);
        // Short words need a close match, not any two edits.
        assert_eq!(closest("id", ["kind"]), None);
    }
}
