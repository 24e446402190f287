//! Activation capture and activation-space overlap (METHOD.md, experiment 3): do harmful and
//! useful prompts occupy different directions of the residual stream?
//!
//! `entangle-capture --run DIR --model NAME` runs the pipeline's prompt sets (useful, harmful
//! group A, harmful group B) through the model in left-padded batches, takes every layer's
//! hidden state at each prompt's last real token — never a pad, unlike the authors' extraction
//! — and streams them to `activations/<model>.parquet` (a fine-tune drawn per replicate: to
//! `replicates/<r>/activations/<model>.parquet`, stage `capture:<model>@<r>`). Then, for each
//! layer of the depth window and each energy fraction, it measures the overlap (MSO) of the
//! sets' energy bases, with the subspace crate's basis and MSO (one implementation for weight
//! and activation space), for the paper's pair and two controls: harmful A vs harmful B, and the useful set split in halves
//! (a same-distribution ceiling), and, with `[capture] benign`, the intent-matched pair: harmful
//! requests against benign ones made from the same templates. Each overlap has a bootstrap
//! interval over prompts and its paired difference from the harmful-vs-harmful control. Prompts
//! are laid out in `[capture] format` (default: the pipeline's). Rows go to
//! `mso/activation_spaces.parquet`.
//!
//! ```no_run
//! use entangle_artifacts::RunDir;
//!
//! # fn main() -> anyhow::Result<()> {
//! let run = RunDir::new(std::path::Path::new("runs/tiny"));
//! let options = entangle_capture::Options { model: "aligned", replicate: 1, force: false };
//! entangle_capture::run(&run, &options, &entangle_models::registry())?;
//! # Ok(()) }
//! ```

mod capture;
mod overlap;

pub use capture::{capture, Captured, PromptSet};
pub use overlap::{activation_overlaps, PAIRS};

use anyhow::Result;
use entangle_artifacts::{
    read_table, stage_version, write_table, ActivationMso, Example, Outcome, RunDir, Stage, StageVersion,
};
use entangle_model::{Placement, Registry, Tokenizer};
use entangle_pipeline::{CaptureConfig, Pipeline};
use serde::Serialize;

/// The code version of the `capture:<model>` stages: bump `algorithm` when their tables would
/// change.
const VERSION: StageVersion = stage_version!(5);

/// Everything a capture depends on besides its input files and code.
#[derive(Serialize)]
struct CaptureKey<'a> {
    capture: &'a CaptureConfig,
    format: entangle_pipeline::PromptFormat,
    seed: u64,
}

/// One capture: model `model` of the run, in replicate `replicate` for a fine-tune drawn per
/// replicate (ignored for the fixed subject), redone when `force`.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub model: &'a str,
    pub replicate: u32,
    pub force: bool,
}

/// Captures the model `options` names and records its activation overlaps, unless the
/// manifest shows it up to date (or `force`).
pub fn run(run: &RunDir, options: &Options, registry: &Registry) -> Result<Outcome> {
    let &Options { model: name, replicate, force } = options;
    let pipeline = Pipeline::load_from_run(run)?;
    let config = &pipeline.capture;
    let key = CaptureKey { capture: config, format: pipeline.capture_format(), seed: pipeline.seed };
    let dir = entangle_checkpoint::resolve(&pipeline.model_reference(run, name, replicate)?)?;
    let mut paths: Vec<_> = prompt_set_names(config).iter().map(|set| run.data_set(set)).collect();
    paths.push(dir.clone());
    let inputs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
    let stage = Stage::new(run, &format!("capture:{}", pipeline.labelled(name, replicate)), VERSION, &key, &inputs)?;
    let model = CapturedModel { name, replicate: pipeline.replicate_of(name, replicate), dir: &dir };
    let activations = pipeline.run_dir_of(run, name, replicate)?.activations(name);
    stage.run(force, || capture_model(run, &pipeline, &model, &activations, registry))
}

/// The model a capture runs: its name, its `replicate` column and its checkpoint.
struct CapturedModel<'a> {
    name: &'a str,
    replicate: u32,
    dir: &'a std::path::Path,
}

/// Captures `model` into `activations` and merges its overlaps into the table; returns the
/// files written.
fn capture_model(
    run: &RunDir,
    pipeline: &Pipeline,
    model: &CapturedModel,
    activations: &std::path::Path,
    registry: &Registry,
) -> Result<Vec<std::path::PathBuf>> {
    let config = &pipeline.capture;
    let placement = Placement::parse(&pipeline.device, "auto")?;
    let loaded = registry.load(model.dir, placement)?;
    let tokenizer = Tokenizer::from_dir(model.dir)?;
    let format = entangle_model::PromptFormat::from(pipeline.capture_format());
    let prompt_sets = prompt_set_names(config)
        .iter()
        .map(|set| prompt_set(run, set, config.limit))
        .collect::<Result<Vec<_>>>()?;
    let captured = capture(loaded.as_ref(), &tokenizer, format, &prompt_sets, config, activations)?;
    let rows = activation_overlaps(model.name, model.replicate, &captured, config, pipeline.seed)?;
    merge_rows(run, pipeline, model, rows)?;
    Ok(vec![activations.to_path_buf(), run.activation_mso()])
}

/// The prompt sets a capture runs, in the order of the overlap roles: useful, harmful A,
/// harmful B, then benign when configured.
fn prompt_set_names(config: &CaptureConfig) -> Vec<&String> {
    [&config.useful, &config.harmful_a, &config.harmful_b].into_iter().chain(&config.benign).collect()
}

fn prompt_set(run: &RunDir, set: &str, limit: Option<usize>) -> Result<PromptSet> {
    let path = run.data_set(set);
    let mut rows: Vec<Example> = read_table(&path)?;
    rows.truncate(limit.unwrap_or(usize::MAX));
    anyhow::ensure!(!rows.is_empty(), "prompt set {} is empty", path.display());
    Ok(PromptSet {
        name: set.to_owned(),
        items: rows.iter().map(|r| r.id.clone()).collect(),
        prompts: rows.into_iter().map(|r| r.prompt).collect(),
    })
}

/// Replaces `model`'s rows of the activation overlap table with `rows`, and drops the rows of
/// replicates the pipeline no longer has.
fn merge_rows(run: &RunDir, pipeline: &Pipeline, model: &CapturedModel, rows: Vec<ActivationMso>) -> Result<()> {
    let path = run.activation_mso();
    let mut all: Vec<ActivationMso> = match read_table::<ActivationMso>(&path) {
        Ok(rows) => rows,
        Err(_) if !path.exists() => Vec::new(),
        // A table of an older schema: its capture stages are stale too (their version changed
        // with it), so each will write its rows again.
        Err(err) => {
            tracing::warn!("starting {} afresh: {err:#}", path.display());
            Vec::new()
        }
    };
    all.retain(|row| !(row.model == model.name && row.replicate == model.replicate) && row.replicate <= pipeline.replicates);
    all.extend(rows);
    write_table(&path, &all)
}

#[cfg(test)]
mod tests;
