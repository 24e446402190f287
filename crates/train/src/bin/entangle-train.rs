//! `entangle-train --run DIR --job NAME [--force] [--resume]`: run one training job of the pipeline.

use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::StageArgs;

/// Train one job of the run's pipeline (`[train.NAME]`) into models/NAME/.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// The training job to run.
    #[arg(long)]
    job: String,
    /// Continue the job from the state it saved (`save_every`) in train/NAME.state/.
    #[arg(long)]
    resume: bool,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        entangle_train::run(&RunDir::new(&args.stage.run), &args.job, args.stage.force, args.resume, &entangle_models::registry())
            .map(|_| ())
    })
}
