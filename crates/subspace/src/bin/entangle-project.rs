//! `entangle-project`: stage `project@<r>` of a run, or one merged model saved to disk.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::{ReplicateArg, StageArgs};
use entangle_pipeline::{parse_svd_mode, MergeSpec, SvdMode};
use entangle_subspace::project::{self, ProjectOptions};
use entangle_subspace::Merge;

/// Projects the fine-tunes' weight updates onto the alignment subspace (METHOD.md, experiment
/// 1) in one replicate: caches the SVD bases in subspace/ (the random kinds in replicates/R/) and
/// writes replicates/R/projection/diagnostics.parquet and per_tensor.parquet. With --write,
/// saves one merged model of that replicate instead.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    replicate: ReplicateArg,
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
        Merge::open(&run, spec, args.replicate.replicate, args.svd)?.write(out, args.stage.force)?;
        tracing::info!("wrote {spec} to {}", out.display());
        return Ok(());
    }
    project::run(&run, &ProjectOptions { replicate: args.replicate.replicate, svd: args.svd, force: args.stage.force })?;
    Ok(())
}
