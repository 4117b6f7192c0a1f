//! `simulate`: placeholder.

use std::process::ExitCode;

use crate::commands::SimulateArgs;

pub fn run(args: &SimulateArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("simulate is not available yet")
}
