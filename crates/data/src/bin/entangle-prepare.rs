//! `entangle-prepare`: stage `prepare` of a run.

use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::StageArgs;

/// Writes every data set of the run to data/<set>.parquet, as the pipeline's [data] section
/// says: generated from the synthetic world (with its tokenizer in tokenizer/) for the tiny
/// study, or read from the upstream datasets for a paper pipeline.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        let options = entangle_data::Options { force: args.stage.force };
        entangle_data::run(&RunDir::new(&args.stage.run), &options).map(|_| ())
    })
}
