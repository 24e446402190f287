//! `entangle-prepare`: stage `prepare` of a run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;

/// Writes every data set of the run to data/<set>.parquet, as the pipeline's [data] section
/// says: generated from the synthetic world (with its tokenizer in tokenizer/) for the tiny
/// study, or read from the upstream datasets for a paper pipeline.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The run directory, holding pipeline.toml.
    #[arg(long)]
    run: PathBuf,
    /// Redo the stage even when the manifest says its sets are up to date.
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        entangle_data::run(&RunDir::new(&args.run), args.force)
    })
}
