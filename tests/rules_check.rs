//! `check-rules`: every kind of broken rules file is rejected with the file,
//! line, column and key at fault; the example files load into the model.

use std::path::Path;

use loyalty_scorer::event::Micros;
use loyalty_scorer::rules::load::{Diagnostic, LoadError, load_file, load_str, summary};
use loyalty_scorer::rules::model::{
    Basis, Downgrade, Expiry, ExpiryMode, Period, Program, Rounding, RuleKind, StampCount,
};
use rust_decimal::Decimal;

const FILE: &str = "rules.toml";

#[track_caller]
fn load(text: &str) -> Program {
    match load_str(FILE, text) {
        Ok(program) => program,
        Err(problems) => panic!("expected a valid file, got {problems:#?}"),
    }
}

#[track_caller]
fn problems(text: &str) -> Vec<String> {
    match load_str(FILE, text) {
        Ok(program) => panic!("expected problems, loaded {program:#?}"),
        Err(problems) => problems.iter().map(Diagnostic::to_string).collect(),
    }
}

/// Asserts the problems, in order: each at `line:column` and saying `text`.
#[track_caller]
fn assert_problems(text: &str, expected: &[(&str, &str)]) {
    let got = problems(text);
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (problem, (at, says)) in got.iter().zip(expected) {
        let prefix = format!("{FILE}:{at}: ");
        assert!(
            problem.starts_with(&prefix) && problem.contains(says),
            "expected `{prefix}...{says}...`, got {got:#?}"
        );
    }
}

#[track_caller]
fn assert_problem(text: &str, at: &str, says: &str) {
    assert_problems(text, &[(at, says)]);
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A valid `[program]` (lines 1-3) followed by `rest` (from line 4).
fn with_program(rest: &str) -> String {
    format!("[program]\nid = \"acme\"\ncurrency = \"EUR\"\n{rest}")
}

// ---- syntax and structure ----

#[test]
fn toml_syntax_error_is_one_located_problem() {
    assert_problem("[program]\nid = \"acme\"\ncurrency = EUR\n", "3:12", "TOML syntax error");
    assert_problem("[program]\nid = \"a\"\nid = \"b\"\n", "3:1", "duplicate key");
}

#[test]
fn missing_program_table() {
    assert_problem("", "1:1", "missing [program]");
    assert_problem("[[tiers]]\nname = \"basic\"\nthreshold = \"0\"\n", "1:1", "missing [program]");
}

#[test]
fn missing_program_id_and_currency_are_both_reported() {
    assert_problems(
        "# acme\n[program]\ntimezone = \"UTC\"\n",
        &[("2:1", "program: missing required key id"), ("2:1", "program: missing required key currency")],
    );
}

#[test]
fn unknown_top_level_table() {
    assert_problem(
        &with_program("[pendng]\ndays = 14\n"),
        "4:2",
        "pendng: unknown table (did you mean pending?); a rules file takes: program, tiers, tier_qualification, partners, rules, caps, expiry, pending",
    );
}

#[test]
fn unknown_key_suggests_the_likely_one() {
    assert_problems(
        &with_program("[[tiers]]\nname = \"basic\"\ntreshold = \"0\"\n"),
        &[
            ("4:1", "tiers.basic: missing required key threshold"),
            ("6:1", "tiers.basic.treshold: unknown key (did you mean threshold?)"),
        ],
    );
    let text = with_program("[[tiers]]\nname = \"basic\"\nthreshold = \"0\"\nmultipler = \"1\"\n");
    assert_problem(
        &text,
        "7:1",
        "tiers.basic.multipler: unknown key (did you mean multiplier?); [[tiers]] takes: name, threshold, multiplier, discount_percent",
    );
    assert_problem(
        &with_program("[caps]\nmax_points_per_day = 5\n"),
        "5:1",
        "caps.max_points_per_day: unknown key; [caps] takes: max_points_per_event, max_points_per_member_per_day",
    );
}

#[test]
fn array_of_tables_written_as_a_table() {
    assert_problem(
        &with_program("[tiers]\nname = \"basic\"\nthreshold = \"0\"\n"),
        "4:1",
        "tiers: written as a single table; write [[tiers]]",
    );
}

// ---- [program] ----

#[test]
fn currency_must_be_an_iso_code() {
    assert_problem(
        "[program]\nid = \"acme\"\ncurrency = \"eur\"\n",
        "3:12",
        "program.currency = \"eur\": write currency codes in upper case: \"EUR\"",
    );
    assert_problem(
        "[program]\nid = \"acme\"\ncurrency = \"EURO\"\n",
        "3:12",
        "program.currency = \"EURO\": not an ISO 4217 currency code",
    );
}

#[test]
fn timezone_must_be_an_iana_name() {
    assert_problem(
        &with_program("timezone = \"CET+1\"\n"),
        "4:12",
        "program.timezone = \"CET+1\": not an IANA time zone name",
    );
}

#[test]
fn rounding_must_be_a_known_mode() {
    assert_problem(
        &with_program("rounding = \"half-up\"\n"),
        "4:12",
        "program.rounding = \"half-up\": unknown value (did you mean \"half_up\"?); write one of floor, half_up, half_even",
    );
}

#[test]
fn float_decimal_gets_a_hint_to_quote_it() {
    assert_problem(
        &with_program("points_per_unit = 1.5\n"),
        "4:19",
        "points_per_unit = 1.5: write decimals as strings, e.g. points_per_unit = \"1.5\"",
    );
}

#[test]
fn integer_decimal_gets_a_hint_to_quote_it() {
    assert_problem(
        &with_program("point_value = 1\n"),
        "4:15",
        "program.point_value = 1: write decimals as strings, e.g. point_value = \"1\"",
    );
}

#[test]
fn decimal_string_that_is_not_a_decimal() {
    for bad in ["abc", "1e3", "1,5", "+1", " 1", ".5"] {
        assert_problem(&with_program(&format!("points_per_unit = \"{bad}\"\n")), "4:19", "not a decimal");
    }
}

#[test]
fn negative_decimal_is_reported_as_negative() {
    assert_problem(
        &with_program("point_value = \"-0.01\"\n"),
        "4:15",
        "program.point_value = \"-0.01\": must not be negative",
    );
}

#[test]
fn excluded_categories_must_be_a_list() {
    assert_problem(
        &with_program("excluded_categories = \"tobacco\"\n"),
        "4:23",
        "program.excluded_categories = \"tobacco\": expected a list of strings",
    );
}

// ---- tiers ----

#[test]
fn unordered_tiers_are_reported_on_the_offending_threshold() {
    let text = with_program(
        "[[tiers]]\nname = \"basic\"\nthreshold = \"0\"\n\
         [[tiers]]\nname = \"gold\"\nthreshold = \"5000\"\n\
         [[tiers]]\nname = \"silver\"\nthreshold = \"3000\"\n",
    );
    assert_problem(
        &text,
        "12:13",
        "tiers.silver.threshold = \"3000\": must be above the previous tier's threshold (\"5000\" of gold)",
    );
}

#[test]
fn equal_thresholds_are_not_increasing() {
    let text = with_program(
        "[[tiers]]\nname = \"basic\"\nthreshold = \"0\"\n\
         [[tiers]]\nname = \"gold\"\nthreshold = \"0.00\"\n",
    );
    assert_problem(&text, "9:13", "tiers.gold.threshold = \"0.00\": must be above");
}

#[test]
fn first_threshold_must_be_zero() {
    assert_problem(
        &with_program("[[tiers]]\nname = \"silver\"\nthreshold = \"100\"\n"),
        "6:13",
        "tiers.silver.threshold = \"100\": the first tier must have threshold \"0\"",
    );
}

#[test]
fn tier_names_must_be_unique() {
    let text = with_program(
        "[[tiers]]\nname = \"basic\"\nthreshold = \"0\"\n\
         [[tiers]]\nname = \"basic\"\nthreshold = \"10\"\n",
    );
    assert_problem(&text, "8:8", "tiers[2].name = \"basic\": another tier has this name");
}

#[test]
fn tier_multiplier_and_discount_ranges() {
    let text = with_program(
        "[[tiers]]\nname = \"basic\"\nthreshold = \"0\"\nmultiplier = \"0.5\"\ndiscount_percent = \"100.5\"\n",
    );
    assert_problems(
        &text,
        &[
            ("7:14", "tiers.basic.multiplier = \"0.5\": must be 1 or more"),
            ("8:20", "tiers.basic.discount_percent = \"100.5\": must be between 0 and 100"),
        ],
    );
}

#[test]
fn an_empty_tier_list_is_rejected() {
    // Before [program]: after it, the key would belong to [program].
    assert_problem(
        "tiers = []\n[program]\nid = \"acme\"\ncurrency = \"EUR\"\n",
        "1:9",
        "tiers = []: a program needs at least one tier",
    );
}

// ---- tier_qualification ----

#[test]
fn qualification_values_and_ranges() {
    let text = with_program("[tier_qualification]\nbasis = \"monthly\"\nwindow_months = 121\ndowngrade = \"soft\"\n");
    assert_problems(
        &text,
        &[
            ("5:9", "tier_qualification.basis = \"monthly\": unknown value; write one of lifetime, rolling"),
            ("6:17", "tier_qualification.window_months = 121: must be between 1 and 120"),
            ("7:13", "tier_qualification.downgrade = \"soft\": unknown value; write one of never, immediate, grace"),
        ],
    );
    assert_problem(&with_program("[tier_qualification]\nwindow_months = 0\n"), "5:17", "must be between 1 and 120");
}

// ---- partners ----

#[test]
fn partners_need_a_unique_merchant_id_and_a_rate() {
    let text = with_program(
        "[[partners]]\npoints_per_unit = \"2\"\n\
         [[partners]]\nmerchant_id = \"fuel-co\"\npoints_per_unit = \"2\"\n\
         [[partners]]\nmerchant_id = \"fuel-co\"\npoints_per_unit = 2\n\
         [[partners]]\nmerchant_id = \"pharma\"\n",
    );
    assert_problems(
        &text,
        &[
            ("4:1", "partners[1]: missing required key merchant_id"),
            ("10:15", "partners[3].merchant_id = \"fuel-co\": another partner has this merchant_id"),
            ("11:19", "partners[3].points_per_unit = 2: write decimals as strings"),
            ("12:1", "partners.pharma: missing required key points_per_unit"),
        ],
    );
}

// ---- rules: identity and kind ----

#[test]
fn rules_need_id_and_kind() {
    assert_problems(
        &with_program("[[rules]]\nbonus_points = 5\n"),
        &[("4:1", "rules[1]: missing required key id"), ("4:1", "rules[1]: missing required key kind")],
    );
}

#[test]
fn rule_ids_must_be_unique() {
    let text = with_program(
        "[[rules]]\nid = \"welcome\"\nkind = \"first_purchase\"\n\
         [[rules]]\nid = \"welcome\"\nkind = \"first_purchase\"\n",
    );
    assert_problem(&text, "8:6", "rules[2].id = \"welcome\": another rule has this id; rule ids must be unique");
}

#[test]
fn rule_ids_must_not_be_breakdown_names() {
    for (id, col) in [("base", "6"), ("expired", "6"), ("adjust", "6"), ("tier:gold", "6")] {
        let text = with_program(&format!("[[rules]]\nid = \"{id}\"\nkind = \"first_purchase\"\n"));
        assert_problem(&text, &format!("5:{col}"), "reserved: reward breakdowns use");
    }
}

#[test]
fn unknown_kind_lists_the_kinds() {
    assert_problem(
        &with_program("[[rules]]\nid = \"bday\"\nkind = \"anniversary\"\nbonus_points = 100\n"),
        "6:8",
        "rules.bday.kind = \"anniversary\": unknown rule kind; write one of category_multiplier, basket_threshold, stamp_card, first_purchase, milestone, birthday",
    );
}

#[test]
fn a_key_of_another_kind_is_unknown() {
    let text =
        with_program("[[rules]]\nid = \"big\"\nkind = \"basket_threshold\"\nmin_spend = \"100\"\nmultiplier = \"2\"\n");
    assert_problem(
        &text,
        "8:1",
        "rules.big.multiplier: unknown key (multiplier is for category_multiplier rules); a basket_threshold rule takes: id, kind, min_spend, bonus_points, gift",
    );
}

// ---- rules: per kind ----

#[test]
fn category_multiplier_needs_categories_and_a_multiplier_of_at_least_one() {
    assert_problems(
        &with_program("[[rules]]\nid = \"c\"\nkind = \"category_multiplier\"\n"),
        &[("4:1", "rules.c: missing required key categories"), ("4:1", "rules.c: missing required key multiplier")],
    );
    let text =
        with_program("[[rules]]\nid = \"c\"\nkind = \"category_multiplier\"\ncategories = []\nmultiplier = \"0.9\"\n");
    assert_problems(
        &text,
        &[
            ("7:14", "rules.c.categories = []: must not be empty"),
            ("8:14", "rules.c.multiplier = \"0.9\": must be 1 or more"),
        ],
    );
}

#[test]
fn basket_threshold_needs_min_spend() {
    assert_problem(
        &with_program("[[rules]]\nid = \"b\"\nkind = \"basket_threshold\"\nbonus_points = 5\n"),
        "4:1",
        "rules.b: missing required key min_spend",
    );
}

#[test]
fn bonus_points_must_not_be_negative() {
    assert_problem(
        &with_program("[[rules]]\nid = \"w\"\nkind = \"first_purchase\"\nbonus_points = -500\n"),
        "7:16",
        "rules.w.bonus_points = -500: must not be negative",
    );
}

#[test]
fn stamp_card_ranges_and_values() {
    let text = with_program(
        "[[rules]]\nid = \"s\"\nkind = \"stamp_card\"\nstamps_required = 0\ncount = \"item\"\ncategories = []\n",
    );
    assert_problems(
        &text,
        &[
            ("7:19", "rules.s.stamps_required = 0: must be at least 1"),
            ("8:9", "rules.s.count = \"item\": unknown value (did you mean \"items\"?); write one of purchases, items"),
            (
                "9:14",
                "rules.s.categories = []: must not be empty; omit categories for a card that counts every purchase",
            ),
        ],
    );
    assert_problem(
        &with_program("[[rules]]\nid = \"s\"\nkind = \"stamp_card\"\nstamps_required = \"5\"\n"),
        "7:19",
        "rules.s.stamps_required = \"5\": write whole numbers without quotes, e.g. stamps_required = 5",
    );
    assert_problem(
        &with_program("[[rules]]\nid = \"s\"\nkind = \"stamp_card\"\nstamps_required = 5.0\n"),
        "7:19",
        "rules.s.stamps_required = 5.0: must be a whole number",
    );
}

#[test]
fn milestone_thresholds_must_increase_from_one() {
    assert_problem(
        &with_program("[[rules]]\nid = \"m\"\nkind = \"milestone\"\nthresholds = []\n"),
        "7:14",
        "rules.m.thresholds = []: must list at least one value",
    );
    assert_problems(
        &with_program("[[rules]]\nid = \"m\"\nkind = \"milestone\"\nthresholds = [100, 100, 0]\n"),
        &[("7:20", "rules.m.thresholds: 100 must be above 100"), ("7:25", "rules.m.thresholds: 0 must be at least 1")],
    );
}

// ---- rules: filters ----

fn rule_with(filters: &str) -> String {
    // The filters start on line 7.
    with_program(&format!("[[rules]]\nid = \"r\"\nkind = \"first_purchase\"\n{filters}"))
}

#[test]
fn validity_needs_rfc3339_with_offset_and_from_before_to() {
    assert_problem(
        &rule_with("valid_from = \"2026-11-01T00:00:00\"\n"),
        "7:14",
        "rules.r.valid_from = \"2026-11-01T00:00:00\": not an RFC 3339 timestamp with an offset",
    );
    assert_problem(
        &rule_with("valid_from = \"2026-12-01T00:00:00Z\"\nvalid_to = \"2026-12-01T01:00:00+01:00\"\n"),
        "8:12",
        "rules.r.valid_to = \"2026-12-01T01:00:00+01:00\": must be later than valid_from",
    );
}

#[test]
fn days_must_be_distinct_weekday_names() {
    assert_problems(
        &rule_with("days = [\"sat\", \"Sunday\", \"sat\"]\n"),
        &[
            ("7:16", "rules.r.days: \"Sunday\" is not a day; write mon, tue, wed, thu, fri, sat or sun"),
            ("7:26", "rules.r.days: \"sat\" is listed twice"),
        ],
    );
    assert_problem(&rule_with("days = []\n"), "7:8", "rules.r.days = []: must not be empty");
}

#[test]
fn hours_must_be_an_increasing_local_range() {
    assert_problem(
        &rule_with("hours = \"7-10\"\n"),
        "7:9",
        "rules.r.hours = \"7-10\": write a local time range as \"HH:MM-HH:MM\"",
    );
    assert_problem(
        &rule_with("hours = \"22:00-02:00\"\n"),
        "7:9",
        "rules.r.hours = \"22:00-02:00\": the start must be before the end",
    );
    assert_problem(&rule_with("hours = \"10:00-24:30\"\n"), "7:9", "times run from 00:00 to 24:00");
}

#[test]
fn filter_lists_must_not_be_empty() {
    assert_problems(
        &rule_with("stores = []\nchannels = []\nmerchants = [\"a\", 1]\n"),
        &[
            ("7:10", "rules.r.stores = []: must not be empty"),
            ("8:12", "rules.r.channels = []: must not be empty"),
            ("9:19", "rules.r.merchants: 1 is an integer; the list holds strings"),
        ],
    );
}

#[test]
fn tier_filter_must_name_existing_tiers() {
    assert_problem(
        &rule_with("tiers = [\"basic\", \"gold\"]\n"),
        "7:19",
        "rules.r.tiers: \"gold\" is not a tier; the tiers are basic",
    );
}

#[test]
fn budget_must_be_positive() {
    assert_problem(&rule_with("budget_points = 0\n"), "7:17", "rules.r.budget_points = 0: must be at least 1");
}

// ---- caps and expiry ----

#[test]
fn caps_and_expiry_ranges() {
    let text = with_program(
        "[caps]\nmax_points_per_event = -1\nmax_points_per_member_per_day = \"5\"\n[expiry]\npoints_ttl_days = 0\n",
    );
    assert_problems(
        &text,
        &[
            ("5:24", "caps.max_points_per_event = -1: must not be negative"),
            ("6:33", "caps.max_points_per_member_per_day = \"5\": write whole numbers without quotes"),
            ("8:19", "expiry.points_ttl_days = 0: must be at least 1"),
        ],
    );
}

// ---- the member lifecycle: grace, birthday, expiry modes, pending ----

#[test]
fn grace_without_grace_days_points_at_downgrade() {
    assert_problem(
        &with_program("[tier_qualification]\ndowngrade = \"grace\"\n"),
        "5:13",
        "tier_qualification.downgrade = \"grace\": grace needs grace_days (how long a member keeps a tier they no longer qualify for); add e.g. grace_days = 30",
    );
}

#[test]
fn grace_days_without_grace_points_at_grace_days() {
    assert_problem(
        &with_program("[tier_qualification]\ngrace_days = 30\n"),
        "5:14",
        "tier_qualification.grace_days = 30: grace_days is only used with downgrade = \"grace\" and downgrade is not set (never); add downgrade = \"grace\" or remove grace_days",
    );
    assert_problem(
        &with_program("[tier_qualification]\ndowngrade = \"immediate\"\ngrace_days = 30\n"),
        "6:14",
        "tier_qualification.grace_days = 30: grace_days is only used with downgrade = \"grace\" and downgrade is \"immediate\"; add downgrade = \"grace\" or remove grace_days",
    );
    // A downgrade already reported is not blamed twice.
    assert_problem(
        &with_program("[tier_qualification]\ndowngrade = \"gracee\"\ngrace_days = 30\n"),
        "5:13",
        "tier_qualification.downgrade = \"gracee\": unknown value (did you mean \"grace\"?)",
    );
}

#[test]
fn grace_with_grace_days_loads() {
    let program = load(&with_program("[tier_qualification]\ndowngrade = \"grace\"\ngrace_days = 30\n"));
    assert_eq!(program.qualification.downgrade, Downgrade::Grace { grace_days: 30 });
    assert_eq!(program.qualification.basis, Basis::Lifetime);
    assert_problem(
        &with_program("[tier_qualification]\ndowngrade = \"grace\"\ngrace_days = 0\n"),
        "6:14",
        "tier_qualification.grace_days = 0: must be at least 1",
    );
}

fn birthday_with(keys: &str) -> String {
    // The rule's own keys start on line 7.
    with_program(&format!("[[rules]]\nid = \"b\"\nkind = \"birthday\"\n{keys}"))
}

#[test]
fn birthday_window_days_0_is_rejected() {
    assert_problem(&birthday_with("window_days = 0\n"), "7:15", "rules.b.window_days = 0: must be between 1 and 31");
}

#[test]
fn birthday_window_days_32_is_rejected() {
    assert_problem(&birthday_with("window_days = 32\n"), "7:15", "rules.b.window_days = 32: must be between 1 and 31");
}

#[test]
fn birthday_window_days_is_required() {
    assert_problem(
        &birthday_with("bonus_points = 100\n"),
        "4:1",
        "rules.b: missing required key window_days; add e.g. window_days = 7 (the birthday and the days after it, 1 to 31)",
    );
}

#[test]
fn birthday_takes_filters_and_a_budget() {
    let program =
        load(&birthday_with("window_days = 31\ndays = [\"sat\"]\nchannels = [\"store\"]\nbudget_points = 1000\n"));
    let rule = &program.rules[0];
    assert_eq!(rule.kind, RuleKind::Birthday { bonus_points: 0, window_days: 31, gift: None });
    assert_eq!(rule.filters.days, Some(0b010_0000));
    assert_eq!(rule.filters.channels, Some(vec!["store".into()]));
    assert_eq!(rule.budget_points, Some(1000));
    let program = load(&birthday_with("window_days = 1\nbonus_points = 50\ngift = \"cake\"\n"));
    assert_eq!(
        program.rules[0].kind,
        RuleKind::Birthday { bonus_points: 50, window_days: 1, gift: Some("cake".into()) }
    );
}

#[test]
fn window_days_belongs_to_birthday_rules() {
    assert_problem(
        &with_program("[[rules]]\nid = \"w\"\nkind = \"first_purchase\"\nwindow_days = 7\n"),
        "7:1",
        "rules.w.window_days: unknown key (window_days is for birthday rules); a first_purchase rule takes: id, kind, bonus_points",
    );
}

#[test]
fn period_with_rolling_is_rejected() {
    assert_problem(
        &with_program("[expiry]\nmode = \"rolling\"\npoints_ttl_days = 365\nperiod = \"year\"\n"),
        "7:10",
        "expiry.period = \"year\": period is only used with mode = \"end_of_period\" and mode is \"rolling\"; add mode = \"end_of_period\" or remove period",
    );
    // Rolling is the default mode.
    assert_problem(
        &with_program("[expiry]\nperiod = \"month\"\n"),
        "5:10",
        "expiry.period = \"month\": period is only used with mode = \"end_of_period\" and mode is not set (rolling)",
    );
}

#[test]
fn periods_with_rolling_is_rejected() {
    assert_problem(
        &with_program("[expiry]\nmode = \"rolling\"\nperiods = 1\n"),
        "6:11",
        "expiry.periods = 1: periods is only used with mode = \"end_of_period\" and mode is \"rolling\"; add mode = \"end_of_period\" or remove periods",
    );
}

#[test]
fn points_ttl_days_with_end_of_period_is_rejected() {
    assert_problem(
        &with_program("[expiry]\nmode = \"end_of_period\"\nperiod = \"year\"\nperiods = 1\npoints_ttl_days = 365\n"),
        "8:19",
        "expiry.points_ttl_days = 365: points_ttl_days is only used with mode = \"rolling\" (with end_of_period points expire when a period ends); remove points_ttl_days or write mode = \"rolling\"",
    );
}

#[test]
fn end_of_period_without_period_is_rejected() {
    assert_problem(
        &with_program("[expiry]\nmode = \"end_of_period\"\nperiods = 1\n"),
        "5:8",
        "expiry.mode = \"end_of_period\": end_of_period needs period, the calendar period points are counted in; add e.g. period = \"year\" (month, quarter or year)",
    );
}

#[test]
fn end_of_period_without_periods_is_rejected() {
    assert_problem(
        &with_program("[expiry]\nmode = \"end_of_period\"\nperiod = \"year\"\n"),
        "5:8",
        "expiry.mode = \"end_of_period\": end_of_period needs periods, how many periods after the one they were earned in points expire; add e.g. periods = 1",
    );
    assert_problems(
        &with_program("[expiry]\nmode = \"end_of_period\"\n"),
        &[("5:8", "end_of_period needs period,"), ("5:8", "end_of_period needs periods,")],
    );
}

#[test]
fn unknown_expiry_mode_is_rejected() {
    // Nothing else is blamed on a mode that is not one.
    assert_problem(
        &with_program("[expiry]\nmode = \"end-of-period\"\nperiod = \"year\"\n"),
        "5:8",
        "expiry.mode = \"end-of-period\": unknown value (did you mean \"end_of_period\"?); write one of rolling, end_of_period",
    );
}

#[test]
fn unknown_expiry_period_is_rejected() {
    assert_problem(
        &with_program("[expiry]\nmode = \"end_of_period\"\nperiod = \"week\"\nperiods = 1\n"),
        "6:10",
        "expiry.period = \"week\": unknown value; write one of month, quarter, year",
    );
    assert_problem(
        &with_program("[expiry]\nmode = \"end_of_period\"\nperiod = \"years\"\nperiods = 1\n"),
        "6:10",
        "expiry.period = \"years\": unknown value (did you mean \"year\"?)",
    );
}

#[test]
fn expiry_modes_load() {
    let program = load(&with_program("[expiry]\nmode = \"end_of_period\"\nperiod = \"quarter\"\nperiods = 0\n"));
    assert_eq!(
        program.expiry,
        Expiry { mode: ExpiryMode::EndOfPeriod { period: Period::Quarter, periods: 0 }, inactivity_days: None }
    );
    let program = load(&with_program("[expiry]\nmode = \"rolling\"\npoints_ttl_days = 90\ninactivity_days = 180\n"));
    assert_eq!(program.expiry, Expiry { mode: ExpiryMode::Rolling { ttl_days: 90 }, inactivity_days: Some(180) });
    // Rolling without points_ttl_days: no expiry by age, only by inactivity.
    let program = load(&with_program("[expiry]\ninactivity_days = 365\n"));
    assert_eq!(program.expiry, Expiry { mode: ExpiryMode::Never, inactivity_days: Some(365) });
    let program = load(&with_program("[expiry]\nmode = \"end_of_period\"\nperiod = \"month\"\nperiods = 2\n"));
    assert_eq!(program.expiry.mode, ExpiryMode::EndOfPeriod { period: Period::Month, periods: 2 });
}

#[test]
fn unknown_expiry_key_lists_the_new_keys() {
    assert_problem(
        &with_program("[expiry]\nttl_days = 30\n"),
        "5:1",
        "expiry.ttl_days: unknown key; [expiry] takes: mode, points_ttl_days, period, periods, inactivity_days",
    );
    assert_problem(
        &with_program("[tier_qualification]\ngrace = 30\n"),
        "5:1",
        "tier_qualification.grace: unknown key; [tier_qualification] takes: basis, window_months, downgrade, grace_days",
    );
}

#[test]
fn pending_days_not_below_points_ttl_days_is_rejected() {
    assert_problem(
        &with_program("[pending]\ndays = 30\n[expiry]\npoints_ttl_days = 30\n"),
        "5:8",
        "pending.days = 30: must be below expiry.points_ttl_days (30), or points would expire before they are released; shorten the pending period or lengthen points_ttl_days",
    );
    assert_problem(
        &with_program("[expiry]\npoints_ttl_days = 10\n[pending]\ndays = 14\n"),
        "7:8",
        "pending.days = 14: must be below expiry.points_ttl_days (10)",
    );
    let program = load(&with_program("[pending]\ndays = 29\n[expiry]\npoints_ttl_days = 30\n"));
    assert_eq!(program.pending_days, Some(29));
    assert_eq!(program.expiry.mode, ExpiryMode::Rolling { ttl_days: 30 });
}

#[test]
fn negative_pending_days_is_rejected() {
    assert_problem(&with_program("[pending]\ndays = -14\n"), "5:8", "pending.days = -14: must be at least 1");
    assert_problem(&with_program("[pending]\ndays = 0\n"), "5:8", "pending.days = 0: must be at least 1");
}

#[test]
fn negative_values_of_the_new_keys_are_rejected() {
    assert_problems(
        &with_program(
            "[tier_qualification]\ndowngrade = \"grace\"\ngrace_days = -30\n\
             [expiry]\nmode = \"end_of_period\"\nperiod = \"year\"\nperiods = -1\ninactivity_days = -365\n",
        ),
        &[
            ("6:14", "tier_qualification.grace_days = -30: must be at least 1"),
            ("10:11", "expiry.periods = -1: must not be negative"),
            ("11:19", "expiry.inactivity_days = -365: must be at least 1"),
        ],
    );
    assert_problems(
        &birthday_with("window_days = -7\nbonus_points = -100\n"),
        &[
            ("7:15", "rules.b.window_days = -7: must be between 1 and 31"),
            ("8:16", "rules.b.bonus_points = -100: must not be negative"),
        ],
    );
}

#[test]
fn pending_needs_days_and_knows_only_days() {
    assert_problem(
        &with_program("[pending]\ndays = 14\ndayz = 3\n"),
        "6:1",
        "pending.dayz: unknown key (did you mean days?); [pending] takes: days",
    );
    assert_problem(&with_program("[pending]\n"), "4:1", "pending: missing required key days; add e.g. days = 14");
    // Under [program], `pending` is a key of [program], not the section.
    assert_problem(&with_program("pending = 14\n"), "4:1", "program.pending: unknown key");
}

// ---- every problem at once ----

#[test]
fn a_file_with_several_problems_reports_all_in_file_order() {
    let path = Path::new("tests/rules/many-problems.toml");
    let Err(LoadError::Invalid(found)) = load_file(path) else {
        panic!("{path:?} must be rejected as invalid");
    };
    let got: Vec<String> = found.iter().map(Diagnostic::to_string).collect();
    let expected = [
        ("4:12", "program.currency = \"eur\""),
        ("5:19", "program.points_per_unit = 1.5: write decimals as strings, e.g. points_per_unit = \"1.5\""),
        ("6:12", "program.rounding = \"half-up\""),
        ("18:13", "tiers.silver.threshold = \"3000\": must be above"),
        ("19:1", "tiers.silver.treshold: unknown key (did you mean threshold?)"),
        ("24:16", "rules.welcome.bonus_points = -500: must not be negative"),
        ("27:6", "rules[2].id = \"welcome\": another rule has this id"),
        ("28:8", "rules[2].kind = \"birthdays\": unknown rule kind (did you mean \"birthday\"?)"),
        ("31:24", "caps.max_points_per_event = -1"),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (problem, (at, says)) in got.iter().zip(expected) {
        let prefix = format!("tests/rules/many-problems.toml:{at}: ");
        assert!(
            problem.starts_with(&prefix) && problem.contains(says),
            "expected `{prefix}...{says}...`, got {got:#?}"
        );
    }
}

// ---- the example files ----

#[test]
fn basic_example_loads() {
    let program = match load_file(Path::new("tests/golden/basic/rules.toml")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(program.id, "acme");
    assert_eq!(program.currency, "EUR");
    assert_eq!(program.timezone, chrono_tz::Europe::Berlin);
    assert_eq!(program.points_per_unit, dec("1"));
    assert_eq!(program.rounding, Rounding::Floor);
    assert_eq!(program.excluded_categories, ["tobacco", "gift-cards"]);
    assert_eq!(program.point_value, dec("0.01"));
    let tiers: Vec<_> =
        program.tiers.iter().map(|t| (t.name.as_str(), t.threshold, t.multiplier, t.discount_percent)).collect();
    assert_eq!(
        tiers,
        [
            ("basic", dec("0"), dec("1"), dec("5")),
            ("silver", dec("3000"), dec("1.25"), dec("10")),
            ("gold", dec("5000"), dec("1.5"), dec("15")),
            ("platinum", dec("10000"), dec("2"), dec("20")),
        ]
    );
    assert_eq!(program.qualification.basis, Basis::Lifetime);
    assert_eq!(program.qualification.downgrade, Downgrade::Never);
    assert!(program.partners.is_empty());
    let ids: Vec<_> = program.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["coffee-x3", "big-basket", "fifth-coffee-free", "welcome", "miles"]);
    let coffee = &program.rules[0];
    assert_eq!(coffee.kind, RuleKind::CategoryMultiplier { categories: vec!["coffee".into()], multiplier: dec("3") });
    // 2026-11-01T00:00:00Z and 2026-12-01T00:00:00Z.
    assert_eq!(coffee.filters.valid_from, Some(Micros(1_793_491_200_000_000)));
    assert_eq!(coffee.filters.valid_to, Some(Micros(1_796_083_200_000_000)));
    assert_eq!(
        program.rules[1].kind,
        RuleKind::BasketThreshold { min_spend: dec("100"), bonus_points: 200, gift: Some("tote-bag".into()) }
    );
    assert_eq!(
        program.rules[2].kind,
        RuleKind::StampCard {
            categories: Some(vec!["coffee".into()]),
            count: StampCount::Items,
            stamps_required: 5,
            bonus_points: 0,
            gift: Some("free-coffee".into()),
        }
    );
    assert_eq!(program.rules[3].kind, RuleKind::FirstPurchase { bonus_points: 500 });
    assert_eq!(
        program.rules[4].kind,
        RuleKind::Milestone { thresholds: vec![5000, 10000], gift: Some("voucher-50".into()) }
    );
    assert_eq!(program.caps.max_points_per_event, Some(12000));
    assert_eq!(program.caps.max_points_per_member_per_day, Some(20000));
    assert_eq!(program.expiry, Expiry { mode: ExpiryMode::Rolling { ttl_days: 365 }, inactivity_days: None });
    assert_eq!(program.pending_days, None);
}

#[test]
fn coalition_example_loads() {
    let program = match load_file(Path::new("tests/golden/coalition/rules.toml")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(program.id, "citypoints");
    assert_eq!(program.currency, "PLN");
    assert_eq!(program.timezone, chrono_tz::Europe::Warsaw);
    assert_eq!(program.points_per_unit, dec("0.5"));
    assert_eq!(program.rounding, Rounding::HalfUp);
    let tiers: Vec<_> =
        program.tiers.iter().map(|t| (t.name.as_str(), t.threshold, t.multiplier, t.discount_percent)).collect();
    assert_eq!(tiers, [("member", dec("0"), dec("1"), dec("0")), ("gold", dec("2000"), dec("1.5"), dec("0")),]);
    assert_eq!(program.qualification.basis, Basis::Rolling { window_months: 12 });
    assert_eq!(program.qualification.downgrade, Downgrade::Immediate);
    let partners: Vec<_> = program.partners.iter().map(|p| (p.merchant_id.as_str(), p.points_per_unit)).collect();
    assert_eq!(partners, [("fuel-co", dec("0.2")), ("pharma", dec("1"))]);
    assert_eq!(program.earn_rate(Some("fuel-co")), dec("0.2"));
    assert_eq!(program.earn_rate(Some("grocer")), dec("0.5"));

    let breakfast = &program.rules[0];
    assert_eq!(breakfast.id, "weekend-breakfast");
    assert_eq!(breakfast.filters.days, Some(0b110_0000));
    assert_eq!(breakfast.filters.hours, Some((360, 660)));
    assert_eq!(breakfast.filters.merchants, Some(vec!["grocer".into()]));
    assert_eq!(breakfast.budget_points, Some(100));
    let visits = &program.rules[1];
    assert_eq!(
        visits.kind,
        RuleKind::StampCard {
            categories: None,
            count: StampCount::Purchases,
            stamps_required: 3,
            bonus_points: 50,
            gift: None,
        }
    );
    assert_eq!(visits.filters.channels, Some(vec!["store".into()]));
    let fuel = &program.rules[2];
    assert_eq!(fuel.filters.tiers, Some(vec![1]));
    assert_eq!(fuel.filters.merchants, Some(vec!["fuel-co".into()]));
    assert_eq!(program.caps.max_points_per_event, None);
    assert_eq!(program.caps.max_points_per_member_per_day, Some(1500));
    assert_eq!(program.expiry, Expiry { mode: ExpiryMode::Rolling { ttl_days: 30 }, inactivity_days: None });
    assert_eq!(program.pending_days, None);
}

#[test]
fn lifecycle_example_loads() {
    let program = match load_file(Path::new("tests/golden/lifecycle/rules.toml")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(program.id, "style");
    assert_eq!(program.currency, "EUR");
    assert_eq!(program.timezone, chrono_tz::Europe::Paris);
    assert_eq!(program.points_per_unit, dec("1"));
    assert_eq!(program.rounding, Rounding::HalfEven);
    assert_eq!(program.point_value, dec("0.005"));
    let tiers: Vec<_> = program.tiers.iter().map(|t| (t.name.as_str(), t.threshold, t.multiplier)).collect();
    assert_eq!(tiers, [("member", dec("0"), dec("1")), ("vip", dec("500"), dec("2"))]);
    assert_eq!(program.qualification.basis, Basis::Rolling { window_months: 1 });
    assert_eq!(program.qualification.downgrade, Downgrade::Grace { grace_days: 30 });
    assert_eq!(program.pending_days, Some(14));
    assert!(program.partners.is_empty());
    assert_eq!(program.rules.len(), 1);
    let birthday = &program.rules[0];
    assert_eq!(birthday.id, "birthday-treat");
    assert_eq!(
        birthday.kind,
        RuleKind::Birthday { bonus_points: 100, window_days: 7, gift: Some("birthday-voucher".into()) }
    );
    assert_eq!(birthday.filters, Default::default());
    assert_eq!(birthday.budget_points, None);
    assert_eq!(program.caps.max_points_per_event, None);
    assert_eq!(program.caps.max_points_per_member_per_day, None);
    assert_eq!(
        program.expiry,
        Expiry { mode: ExpiryMode::EndOfPeriod { period: Period::Year, periods: 1 }, inactivity_days: Some(365) }
    );
}

// ---- defaults, version, summary, files ----

#[test]
fn defaults_fill_what_the_file_omits() {
    let program = load("[program]\nid = \"min\"\ncurrency = \"USD\"\n");
    assert_eq!(program.timezone, chrono_tz::UTC);
    assert_eq!(program.points_per_unit, dec("1"));
    assert_eq!(program.rounding, Rounding::Floor);
    assert!(program.excluded_categories.is_empty());
    assert_eq!(program.point_value, dec("0"));
    assert_eq!(program.tiers.len(), 1);
    assert_eq!(program.tiers[0].name, "basic");
    assert_eq!(program.tiers[0].threshold, dec("0"));
    assert_eq!(program.tiers[0].multiplier, dec("1"));
    assert_eq!(program.qualification.basis, Basis::Lifetime);
    assert_eq!(program.qualification.downgrade, Downgrade::Never);
    assert!(program.partners.is_empty() && program.rules.is_empty());
    assert_eq!(program.caps.max_points_per_event, None);
    assert_eq!(program.caps.max_points_per_member_per_day, None);
    assert_eq!(program.expiry, Expiry { mode: ExpiryMode::Never, inactivity_days: None });
    assert_eq!(program.pending_days, None);

    let rolling = load(&with_program("[tier_qualification]\nbasis = \"rolling\"\n"));
    assert_eq!(rolling.qualification.basis, Basis::Rolling { window_months: 12 });
    let rules = load(&with_program(
        "[[rules]]\nid = \"s\"\nkind = \"stamp_card\"\nstamps_required = 2\n\
         [[rules]]\nid = \"b\"\nkind = \"basket_threshold\"\nmin_spend = \"0\"\n",
    ));
    assert_eq!(
        rules.rules[0].kind,
        RuleKind::StampCard {
            categories: None,
            count: StampCount::Purchases,
            stamps_required: 2,
            bonus_points: 0,
            gift: None,
        }
    );
    assert_eq!(rules.rules[1].kind, RuleKind::BasketThreshold { min_spend: dec("0"), bonus_points: 0, gift: None });
}

#[test]
fn filters_in_their_accepted_forms() {
    let program = load(&rule_with(
        "valid_from = 2026-11-01T00:00:00+01:00\nhours = \"00:00-24:00\"\ndays = [\"mon\", \"sun\"]\n",
    ));
    let filters = &program.rules[0].filters;
    // A TOML offset date-time is accepted like its quoted form.
    assert_eq!(filters.valid_from, Some(Micros(1_793_487_600_000_000)));
    assert_eq!(filters.hours, Some((0, 1440)));
    assert_eq!(filters.days, Some(0b100_0001));
}

#[test]
fn version_is_the_sha256_prefix_of_the_file() {
    let text = "[program]\nid = \"acme\"\ncurrency = \"EUR\"\n";
    let program = load(text);
    // printf '[program]\nid = "acme"\ncurrency = "EUR"\n' | sha256sum | cut -c1-16
    assert_eq!(program.version, "51b779e4203c1d9b");
    assert_eq!(program.version.len(), 16);
    let other = load(&format!("{text}# a comment changes the version\n"));
    assert_ne!(other.version, program.version);
}

#[test]
fn summary_is_one_line() {
    let program = match load_file(Path::new("tests/golden/basic/rules.toml")) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        summary(&program),
        format!("acme: EUR, Europe/Berlin, 4 tiers, 5 rules, 0 partners, rules_version {}", program.version)
    );
    let single = load("[program]\nid = \"one\"\ncurrency = \"EUR\"\n");
    assert!(summary(&single).contains("UTC, 1 tier, 0 rules, 0 partners"));
}

#[test]
fn missing_file_names_its_path() {
    let err = load_file(Path::new("tests/rules/no-such-file.toml"));
    let Err(err @ LoadError::Io { .. }) = err else {
        panic!("expected an I/O error, got {err:?}");
    };
    assert!(err.to_string().contains("tests/rules/no-such-file.toml"), "{err}");
}

#[test]
fn non_utf8_file_is_located() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    };
    let path = dir.path().join("rules.toml");
    if let Err(e) = std::fs::write(&path, b"[program]\nid = \"caf\xe9\"\n") {
        panic!("{e}");
    }
    let Err(LoadError::Invalid(found)) = load_file(&path) else {
        panic!("expected an invalid file");
    };
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].line, found[0].column), (2, 10));
    assert!(found[0].message.contains("not valid UTF-8"));
    assert_eq!(found[0].file, path.display().to_string());
}

#[test]
fn invalid_display_lists_every_diagnostic() {
    let err = LoadError::Invalid(vec![
        Diagnostic { file: "r.toml".into(), line: 1, column: 2, message: "a".into() },
        Diagnostic { file: "r.toml".into(), line: 3, column: 4, message: "b".into() },
    ]);
    assert_eq!(err.to_string(), "r.toml:1:2: a\nr.toml:3:4: b");
}

#[test]
fn multi_line_values_are_quoted_on_one_line() {
    let text = rule_with("stores = [\n  \"a\",\n  2,\n]\n");
    let got = problems(&text);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0], "rules.toml:9:3: rules.r.stores: 2 is an integer; the list holds strings");
    let text = with_program("excluded_categories = {\n  a = 1 }\n");
    assert_eq!(
        problems(&text),
        [
            "rules.toml:4:23: program.excluded_categories = { a = 1 }: expected a list of strings, found a table; e.g. excluded_categories = [\"...\"]"
        ]
    );
}
