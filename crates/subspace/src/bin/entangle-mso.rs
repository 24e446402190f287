//! `entangle-mso`: stage `mso@<r>` of a run.

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::{ReplicateArg, StageArgs};
use entangle_pipeline::SvdMode;
use entangle_subspace::mso::{self, MsoOptions};
use entangle_pipeline::parse_svd_mode;

/// Measures how much the useful and harmful weight updates share their directions (METHOD.md,
/// experiment 2): Mode Subspace Overlap per tensor and per layer at every energy fraction, with
/// its random baseline, to replicates/R/mso/update_spaces.parquet.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    replicate: ReplicateArg,
    /// `exact` or `reference` (the authors' procedure); overrides the pipeline's mso.svd.
    #[arg(long, value_parser = parse_svd_mode)]
    svd: Option<SvdMode>,
}

fn main() -> ExitCode {
    entangle_cli::main(|| run(Args::parse()))
}

fn run(args: Args) -> Result<()> {
    mso::run(&RunDir::new(&args.stage.run), &MsoOptions { replicate: args.replicate.replicate, svd: args.svd, force: args.stage.force })?;
    Ok(())
}
