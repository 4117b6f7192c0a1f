//! `simulate`: scores a file in memory and prints the cost report, or, with
//! `--compare`, scores it under two rule sets at once and prints the
//! differences.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::commands::{SimulateArgs, each_line, load_programs, open_input, score_file, settings};
use crate::pipeline::Scorer;
use crate::rules::ProgramSet;
use crate::simulate::compare::{self, Run};
use crate::simulate::text::render_comparison;
use crate::simulate::{Collector, render_text};
use crate::state::memory::MemoryStore;

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let programs = load_programs(&args.stream.rules)?;
    if !args.compare.is_empty() {
        return run_comparison(args, programs);
    }
    let input = open_input(&args.input)?;
    let mut collector = Collector::new(&programs);
    let mut scorer =
        Scorer::new(programs.clone(), settings(&args.stream), args.stream.max_message_bytes, MemoryStore::new());
    score_file(&mut scorer, input, &mut collector)?;
    let report = collector.finish(&programs, scorer.store());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("encoding the report")?);
    } else {
        print!("{}", render_text(&report, &programs));
    }
    Ok(ExitCode::SUCCESS)
}

/// The candidate program set: the current one with each `--compare` program
/// in place of the current program of the same id.
fn candidate_programs(args: &SimulateArgs, current: &ProgramSet) -> anyhow::Result<ProgramSet> {
    let replacements = load_programs(&args.compare)?;
    for program in replacements.iter() {
        if current.resolve(Some(&program.id)).is_none() {
            let ids: Vec<&str> = current.iter().map(|p| p.id.as_str()).collect();
            bail!(
                "--compare program {:?} matches no --rules program ({}); a candidate replaces the program with its id",
                program.id,
                ids.join(", ")
            );
        }
    }
    let programs: Vec<Arc<_>> =
        current.iter().map(|p| replacements.iter().find(|r| r.id == p.id).unwrap_or(p).clone()).collect();
    ProgramSet::new(programs).context("building the candidate programs")
}

fn run_comparison(args: &SimulateArgs, current: ProgramSet) -> anyhow::Result<ExitCode> {
    let candidate = candidate_programs(args, &current)?;
    let input = open_input(&args.input)?;
    let new_scorer = |programs: &ProgramSet| {
        Scorer::new(programs.clone(), settings(&args.stream), args.stream.max_message_bytes, MemoryStore::new())
    };
    let (mut scorer_a, mut scorer_b) = (new_scorer(&current), new_scorer(&candidate));
    let mut collector_a = Collector::new(&current).with_members();
    let mut collector_b = Collector::new(&candidate).with_members();
    // One pass over the history: each line is scored under both rule sets.
    each_line(input, |number, line| {
        scorer_a.score(number, line, &mut collector_a)?;
        scorer_b.score(number, line, &mut collector_b)
    })?;
    let (report_a, members_a) = collector_a.finish_with_members(&current, scorer_a.store());
    let (report_b, members_b) = collector_b.finish_with_members(&candidate, scorer_b.store());
    let comparison = compare::compare(
        Run { programs: &current, report: report_a, store: scorer_a.store(), members: members_a },
        Run { programs: &candidate, report: report_b, store: scorer_b.store(), members: members_b },
    );
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison).context("encoding the report")?);
    } else {
        print!("{}", render_comparison(&comparison));
    }
    Ok(ExitCode::SUCCESS)
}
