//! `entangle-train --run DIR --job NAME [--replicate R] [--force] [--resume]`: run one training job of the pipeline.

use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::{ReplicateArg, StageArgs};

/// Train one job of the run's pipeline (`[train.NAME]`) into models/NAME/ (a fine-tune of the
/// aligned model: into replicates/R/models/NAME/).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// The training job to run.
    #[arg(long)]
    job: String,
    /// For a fine-tune of the aligned model; base and aligned are trained once.
    #[command(flatten)]
    replicate: ReplicateArg,
    /// Continue the job from the state it saved (`save_every`) in train/NAME.state/.
    #[arg(long)]
    resume: bool,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        let job = entangle_train::Job { name: &args.job, replicate: args.replicate.replicate, force: args.stage.force, resume: args.resume };
        entangle_train::run(&RunDir::new(&args.stage.run), &job, &entangle_models::registry()).map(|_| ())
    })
}
