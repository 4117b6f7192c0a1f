//! `simulate`: scores a file in memory and prints the cost report.

use std::process::ExitCode;

use anyhow::Context;

use crate::commands::{SimulateArgs, load_programs, open_input, score_file, settings};
use crate::pipeline::Scorer;
use crate::simulate::{Collector, render_text};
use crate::state::memory::MemoryStore;

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let programs = load_programs(&args.stream.rules)?;
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
