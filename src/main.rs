//! The `loyalty-scorer` command line: parses arguments, sets up logging, and
//! hands over to the library's commands.

use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

use loyalty_scorer::commands::{self, Cli, Command};

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon sets its logging up from its configuration (`[logging]`);
    // the offline commands only warn.
    let default = match cli.command {
        Command::Run(_) => None,
        // The demo passes consumer settings to its producer too.
        Command::Demo(_) => Some("warn,librdkafka=error"),
        _ => Some("warn"),
    };
    if let Some(default) = default {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("LOYALTY_SCORER_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
            )
            .with_writer(std::io::stderr)
            .init();
    }
    let result = match cli.command {
        Command::Score(args) => commands::score::run(&args),
        Command::CheckRules(args) => commands::check_rules::run(&args),
        Command::Simulate(args) => commands::simulate::run(&args),
        Command::Run(args) => commands::run::run(&args),
        Command::Demo(args) => commands::demo::run(&args),
        Command::Probe(args) => commands::probe::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
