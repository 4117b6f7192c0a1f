//! Shared by the `decode_*` integration tests: a minimal program set.

use std::sync::Arc;

use loyalty_scorer::rules::load::load_str;
use loyalty_scorer::rules::model::{Program, ProgramSet};

/// A program with only what the decoder reads (its id and currency) set.
pub fn program(id: &str, currency: &str) -> Arc<Program> {
    let text = format!("[program]\nid = \"{id}\"\ncurrency = \"{currency}\"\n");
    match load_str("test.toml", &text) {
        Ok(program) => Arc::new(program),
        Err(problems) => panic!("test program: {problems:?}"),
    }
}

/// One program set, or a test failure.
pub fn programs(list: Vec<Arc<Program>>) -> ProgramSet {
    match ProgramSet::new(list) {
        Some(set) => set,
        None => panic!("program ids must be unique and non-empty"),
    }
}
