//! `entangle-eval --run DIR [--checkpoint SPEC]... [--force]`: score checkpoints for
//! harmfulness and utility.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;

/// Evaluate checkpoints of a run: models by name (`aligned`) or merges built in memory
/// (`useful:topk:orth:0.25`). Without --checkpoint, everything the pipeline lists.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The run directory (holding pipeline.toml).
    #[arg(long)]
    run: PathBuf,
    /// A checkpoint to evaluate; repeat for several.
    #[arg(long = "checkpoint")]
    checkpoints: Vec<String>,
    /// Re-evaluate checkpoints that already have results.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        entangle_eval::run(&RunDir::new(&args.run), &args.checkpoints, args.force, &entangle_models::registry())
    })
}
