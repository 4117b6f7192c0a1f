//! `check-rules`: validates rules files as the scorer would load them.

use std::process::ExitCode;

use crate::commands::CheckRulesArgs;
use crate::rules::load;

/// Prints one summary line per valid file, every problem of the others;
/// fails when any file is invalid.
pub fn run(args: &CheckRulesArgs) -> anyhow::Result<ExitCode> {
    let mut ok = true;
    for path in &args.files {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!("{name}: cannot read: {error}");
                ok = false;
                continue;
            }
        };
        match load::load_str(&name, &text) {
            Ok(program) => println!("{name}: ok: {}", load::summary(&program)),
            Err(diagnostics) => {
                ok = false;
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                eprintln!("{name}: {} problem{}", diagnostics.len(), if diagnostics.len() == 1 { "" } else { "s" });
            }
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
