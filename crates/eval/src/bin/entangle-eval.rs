//! `entangle-eval --run DIR [--checkpoint SPEC]... [--force]`: score checkpoints for
//! harmfulness and utility.

use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::StageArgs;

/// Evaluate checkpoints of a run: models by name (`aligned`) or merges built in memory
/// (`useful:topk:orth:0.25`). Without --checkpoint, everything the pipeline lists.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// A checkpoint to evaluate; repeat for several.
    #[arg(long = "checkpoint")]
    checkpoints: Vec<String>,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        entangle_eval::run(&RunDir::new(&args.stage.run), &args.checkpoints, args.stage.force, &entangle_models::registry())
            .map(|_| ())
    })
}
