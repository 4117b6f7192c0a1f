//! `simulate`: scores a file in memory and prints the cost report.

use std::process::ExitCode;

use anyhow::Context;

use crate::commands::{SimulateArgs, load_programs, open_input, progress_bar, settings};
use crate::pipeline::{Scorer, score_lines};
use crate::simulate::{Collector, render_text};
use crate::state::memory::MemoryStore;

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let programs = load_programs(&args.stream.rules)?;
    let (input, len) = open_input(&args.input)?;
    let mut collector = Collector::new(&programs);
    let mut scorer =
        Scorer::new(programs.clone(), settings(&args.stream), args.stream.max_message_bytes, MemoryStore::new());
    let bar = progress_bar(len);
    score_lines(&mut scorer, input, &mut collector, |read| {
        if let Some(bar) = &bar {
            bar.set_position(read);
        }
    })
    .with_context(|| format!("scoring {}", args.input.display()))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = collector.finish(&programs, scorer.store());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("encoding the report")?);
    } else {
        print!("{}", render_text(&report, &programs));
    }
    Ok(ExitCode::SUCCESS)
}
