//! What-if: the same history scored under the current rules and under a
//! candidate, and the differences a loyalty manager weighs before changing a
//! program.
//!
//! Both runs see every line of the history once, side by side (the caller
//! reads the file once and scores each line twice); this module only turns
//! their two reports and end states into differences.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::Serialize;

use crate::rules::ProgramSet;
use crate::simulate::{ProgramReport, Report};
use crate::state::memory::MemoryStore;

/// How many members the comparison lists, by largest difference.
pub const TOP_MEMBERS: usize = 20;

/// One figure under both rule sets.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Delta<T> {
    pub current: T,
    pub candidate: T,
    pub difference: T,
}

impl Delta<i64> {
    fn of(current: i64, candidate: i64) -> Self {
        Self { current, candidate, difference: candidate.saturating_sub(current) }
    }
}

impl Delta<Decimal> {
    fn of(current: Decimal, candidate: Decimal) -> Self {
        Self { current, candidate, difference: candidate.checked_sub(current).unwrap_or(Decimal::MAX) }
    }
}

/// The `rules_version` of each side.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Versions {
    pub current: String,
    pub candidate: String,
}

/// A member among the largest differences.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MemberDelta {
    pub member_id: String,
    /// Points issued to the member.
    pub points_issued: Delta<i64>,
    pub tier_current: String,
    pub tier_candidate: String,
}

/// The comparison for one program.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProgramComparison {
    pub program: String,
    pub currency: String,
    pub rules_version: Versions,
    pub points_issued: Delta<i64>,
    pub points_outstanding: Delta<i64>,
    pub points_pending: Delta<i64>,
    /// Money value of outstanding and pending points.
    pub liability: Delta<Decimal>,
    /// Points issued by breakdown line, over the rules of both sets.
    pub by_rule: BTreeMap<String, Delta<i64>>,
    /// Points issued by the member's tier at the time of the purchase.
    pub by_tier: BTreeMap<String, Delta<i64>>,
    /// Members per tier at the end.
    pub tiers_at_end: BTreeMap<String, Delta<i64>>,
    /// Members who end in another tier under the candidate.
    pub members_changing_tier: u64,
    /// `"<current tier> -> <candidate tier>"` -> members.
    pub tier_moves: BTreeMap<String, u64>,
    /// The members with the largest differences in points issued.
    pub top_members: Vec<MemberDelta>,
}

/// The what-if report: the comparison, and both full reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    pub programs: Vec<ProgramComparison>,
    pub current: Report,
    pub candidate: Report,
}

/// Points issued per member: program id -> member id -> points.
pub type MemberPoints = hashbrown::HashMap<String, hashbrown::HashMap<String, i64>>;

/// One side of the comparison: what a run produced.
#[derive(Debug)]
pub struct Run<'a> {
    pub programs: &'a ProgramSet,
    pub report: Report,
    pub store: &'a MemoryStore,
    pub members: MemberPoints,
}

fn section<'r>(report: &'r Report, program: &str) -> Option<&'r ProgramReport> {
    report.programs.iter().find(|p| p.program == program)
}

fn deltas(current: &BTreeMap<String, i64>, candidate: &BTreeMap<String, i64>) -> BTreeMap<String, Delta<i64>> {
    let keys: BTreeSet<&String> = current.keys().chain(candidate.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let get = |m: &BTreeMap<String, i64>| m.get(k).copied().unwrap_or(0);
            (k.clone(), Delta::<i64>::of(get(current), get(candidate)))
        })
        .collect()
}

fn counts(map: &BTreeMap<String, u64>) -> BTreeMap<String, i64> {
    map.iter().map(|(k, v)| (k.clone(), i64::try_from(*v).unwrap_or(i64::MAX))).collect()
}

/// Member id -> tier held at the end, for one program.
fn tiers_of<'s>(store: &'s MemoryStore, program: &str) -> hashbrown::HashMap<&'s str, &'s str> {
    store.iter().filter(|(p, _, _)| *p == program).map(|(_, m, s)| (m, s.tier.as_str())).collect()
}

/// Compares the two runs program by program.
pub fn compare(current: Run<'_>, candidate: Run<'_>) -> Comparison {
    let mut programs = Vec::new();
    for program in current.programs.iter() {
        let (Some(a), Some(b)) = (section(&current.report, &program.id), section(&candidate.report, &program.id))
        else {
            continue;
        };
        let version = |set: &ProgramSet| set.iter().find(|p| p.id == program.id).map(|p| p.version.clone());
        let rules_version = Versions {
            current: version(current.programs).unwrap_or_default(),
            candidate: version(candidate.programs).unwrap_or_default(),
        };
        let (tiers_a, tiers_b) = (tiers_of(current.store, &program.id), tiers_of(candidate.store, &program.id));
        let lowest = |set: &ProgramSet| {
            set.iter().find(|p| p.id == program.id).and_then(|p| p.tiers.first()).map(|t| t.name.clone())
        };
        let (lowest_a, lowest_b) =
            (lowest(current.programs).unwrap_or_default(), lowest(candidate.programs).unwrap_or_default());
        let named = |tier: Option<&&str>, lowest: &str| -> String {
            match tier {
                Some(t) if !t.is_empty() => (*t).to_owned(),
                _ => lowest.to_owned(),
            }
        };

        let mut tier_moves: BTreeMap<String, u64> = BTreeMap::new();
        let members: BTreeSet<&str> = tiers_a.keys().chain(tiers_b.keys()).copied().collect();
        for member in &members {
            let (ta, tb) = (named(tiers_a.get(member), &lowest_a), named(tiers_b.get(member), &lowest_b));
            if ta != tb {
                *tier_moves.entry(format!("{ta} -> {tb}")).or_default() += 1;
            }
        }

        let empty = hashbrown::HashMap::new();
        let issued_a = current.members.get(&program.id).unwrap_or(&empty);
        let issued_b = candidate.members.get(&program.id).unwrap_or(&empty);
        let mut top: Vec<MemberDelta> = members
            .iter()
            .map(|member| MemberDelta {
                member_id: (*member).to_owned(),
                points_issued: Delta::<i64>::of(
                    issued_a.get(*member).copied().unwrap_or(0),
                    issued_b.get(*member).copied().unwrap_or(0),
                ),
                tier_current: named(tiers_a.get(member), &lowest_a),
                tier_candidate: named(tiers_b.get(member), &lowest_b),
            })
            .filter(|m| m.points_issued.difference != 0 || m.tier_current != m.tier_candidate)
            .collect();
        // Largest absolute difference first; ties by member id, so the list is stable.
        top.sort_by(|x, y| {
            y.points_issued
                .difference
                .unsigned_abs()
                .cmp(&x.points_issued.difference.unsigned_abs())
                .then_with(|| x.member_id.cmp(&y.member_id))
        });
        top.truncate(TOP_MEMBERS);

        programs.push(ProgramComparison {
            program: program.id.clone(),
            currency: program.currency.clone(),
            rules_version,
            points_issued: Delta::<i64>::of(a.points_issued, b.points_issued),
            points_outstanding: Delta::<i64>::of(a.points_outstanding, b.points_outstanding),
            points_pending: Delta::<i64>::of(a.points_pending, b.points_pending),
            liability: Delta::<Decimal>::of(a.liability, b.liability),
            by_rule: deltas(&a.points_by_rule, &b.points_by_rule),
            by_tier: deltas(&a.points_by_tier, &b.points_by_tier),
            tiers_at_end: deltas(&counts(&a.tiers), &counts(&b.tiers)),
            members_changing_tier: tier_moves.values().sum(),
            tier_moves,
            top_members: top,
        });
    }
    Comparison { programs, current: current.report, candidate: candidate.report }
}
