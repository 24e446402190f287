//! `entangle-train --run DIR --job NAME [--force]`: run one training job of the pipeline.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;

/// Train one job of the run's pipeline (`[train.NAME]`) into models/NAME/.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The run directory (holding pipeline.toml).
    #[arg(long)]
    run: PathBuf,
    /// The training job to run.
    #[arg(long)]
    job: String,
    /// Retrain even when the manifest says the job is up to date, overwriting models/NAME/.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        entangle_train::run(&RunDir::new(&args.run), &args.job, args.force, &entangle_models::registry())
    })
}
