//! Shared by the `decode_*` integration tests: a hand-built program set.

use std::sync::Arc;

use loyalty_scorer::rules::model::{Basis, Caps, Downgrade, Expiry, Program, ProgramSet, Qualification, Rounding};
use rust_decimal::Decimal;

/// A program with only what the decoder reads (its id and currency) set.
pub fn program(id: &str, currency: &str) -> Arc<Program> {
    Arc::new(Program {
        id: id.to_owned(),
        currency: currency.to_owned(),
        timezone: chrono_tz::Tz::UTC,
        points_per_unit: Decimal::ONE,
        rounding: Rounding::Floor,
        excluded_categories: Vec::new(),
        point_value: Decimal::ZERO,
        tiers: Vec::new(),
        qualification: Qualification { basis: Basis::Lifetime, downgrade: Downgrade::Never },
        partners: Vec::new(),
        rules: Vec::new(),
        caps: Caps::default(),
        expiry: Expiry::default(),
        version: String::new(),
    })
}

/// One program set, or a test failure.
pub fn programs(list: Vec<Arc<Program>>) -> ProgramSet {
    match ProgramSet::new(list) {
        Some(set) => set,
        None => panic!("program ids must be unique and non-empty"),
    }
}
