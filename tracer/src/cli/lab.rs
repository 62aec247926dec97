//! Arguments of `tracer lab list | run NAME` (the labs themselves are in the library's `lab`).

use clap::{Args, Subcommand};
use tracer::lab::{self, LABS};

/// `tracer lab list | run NAME`.
#[derive(Clone, Debug, Subcommand)]
pub enum LabCommand {
    /// The labs, one line each.
    List,
    /// Run one lab.
    Run(LabRunArgs),
}

/// Options of `tracer lab run`.
#[derive(Clone, Debug, Args)]
pub struct LabRunArgs {
    /// The lab (see `tracer lab list`).
    pub name: String,
    /// A few seconds instead of 10-30 (for CI and a first look).
    #[arg(long)]
    pub short: bool,
    /// One JSON object with every measured number and the claims checked.
    #[arg(long)]
    pub json: bool,
    /// Print model answers to the questions, computed from the measured numbers.
    #[arg(long)]
    pub answers: bool,
    /// Also record each phase's raw events (FILE.<phase>.trc) for `tracer report`.
    #[arg(long, value_name = "FILE")]
    pub record: Option<std::path::PathBuf>,
}

pub async fn run(command: LabCommand, verbose: bool) -> anyhow::Result<()> {
    match command {
        LabCommand::List => {
            for lab in LABS {
                tracer::outln!("{:<10} {}", lab.name, lab.summary);
            }
            Ok(())
        }
        LabCommand::Run(args) => {
            let options = lab::RunOptions {
                name: args.name,
                short: args.short,
                json: args.json,
                answers: args.answers,
                record: args.record,
            };
            lab::run(&options, verbose).await
        }
    }
}
