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
    /// Finish, and record the stage, although some LLM judgments failed or are invalid (they
    /// are counted in the summary's invalid_judgments); without it the stage fails until a
    /// rerun has judged them all.
    #[arg(long)]
    accept_failed: bool,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        let options =
            entangle_eval::Options { checkpoints: args.checkpoints, force: args.stage.force, accept_failed: args.accept_failed };
        entangle_eval::run(&RunDir::new(&args.stage.run), &options, &entangle_models::registry()).map(|_| ())
    })
}
