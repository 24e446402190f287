//! `entangle-capture --run DIR --model NAME [--force]`: capture a model's activations on the
//! pipeline's prompt sets and compare their subspaces.

use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::{ReplicateArg, StageArgs};

/// Capture every layer's last-token hidden state of the prompt sets with one model, then the
/// activation-space overlap of the sets in the pipeline's depth window.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// For a fine-tune of the aligned model; base and aligned are captured once.
    #[command(flatten)]
    replicate: ReplicateArg,
    /// The model to capture (a model of the run or of [models]).
    #[arg(long)]
    model: String,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        let options = entangle_capture::Options { model: &args.model, replicate: args.replicate.replicate, force: args.stage.force };
        entangle_capture::run(&RunDir::new(&args.stage.run), &options, &entangle_models::registry())
            .map(|_| ())
    })
}
