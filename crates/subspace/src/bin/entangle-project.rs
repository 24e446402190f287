//! `entangle-project`: stage `project` of a run, or one merged model saved to disk.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::StageArgs;
use entangle_pipeline::{parse_svd_mode, MergeSpec, SvdMode};
use entangle_subspace::project::{self, ProjectOptions};
use entangle_subspace::Merge;

/// Projects the fine-tunes' weight updates onto the alignment subspace (METHOD.md, experiment
/// 1): caches the SVD bases in subspace/ and writes projection/diagnostics.parquet and
/// projection/per_tensor.parquet. With --write, saves one merged model instead.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// `exact` or `reference` (the authors' procedure); overrides the pipeline's projection.svd.
    #[arg(long, value_parser = parse_svd_mode)]
    svd: Option<SvdMode>,
    /// Save the merged model FINETUNE:KIND:METHOD:FRACTION (e.g. useful:topk:orth:0.25).
    #[arg(long, value_name = "SPEC", requires = "out")]
    write: Option<MergeSpec>,
    /// Directory of the Hugging Face checkpoint that --write saves; an existing one is replaced
    /// only with --force.
    #[arg(long, value_name = "DIR", requires = "write")]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    entangle_cli::main(|| run(Args::parse()))
}

fn run(args: Args) -> Result<()> {
    let run = RunDir::new(&args.stage.run);
    if let (Some(spec), Some(out)) = (&args.write, &args.out) {
        Merge::open(&run, spec, args.svd)?.write(out, args.stage.force)?;
        tracing::info!("wrote {spec} to {}", out.display());
        return Ok(());
    }
    project::run(&run, &ProjectOptions { svd: args.svd, force: args.stage.force })?;
    Ok(())
}
