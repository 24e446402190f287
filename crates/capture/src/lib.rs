//! Activation capture and activation-space overlap (METHOD.md, experiment 3): do harmful and
//! useful prompts occupy different directions of the residual stream?
//!
//! `entangle-capture --run DIR --model NAME` runs the pipeline's prompt sets (useful, harmful
//! group A, harmful group B) through the model in left-padded batches, takes every layer's
//! hidden state at each prompt's last real token — never a pad, unlike the authors' extraction
//! — and streams them to `activations/<model>.parquet`. Then, for each layer of the depth window
//! and each energy fraction, it measures the overlap (MSO) of the sets' energy bases, with the
//! subspace crate's basis and MSO (one implementation for weight and activation space), for the
//! paper's pair and two controls: harmful A vs harmful B, and the useful set split in halves
//! (a same-distribution ceiling). Rows go to `mso/activation_spaces.parquet`.
//!
//! ```no_run
//! use entangle_artifacts::RunDir;
//!
//! # fn main() -> anyhow::Result<()> {
//! let run = RunDir::new(std::path::Path::new("runs/tiny"));
//! entangle_capture::run(&run, "aligned", false, &entangle_models::registry())?;
//! # Ok(()) }
//! ```

mod capture;
mod overlap;

pub use capture::{capture, Captured, PromptSet};
pub use overlap::{activation_overlaps, PAIRS};

use anyhow::{Context, Result};
use entangle_artifacts::{
    read_table, stage_version, write_table, ActivationMso, Example, Outcome, RunDir, Stage, StageVersion,
};
use entangle_model::{Placement, Registry, Tokenizer};
use entangle_pipeline::{CaptureConfig, Pipeline};
use serde::Serialize;

/// The code version of the `capture:<model>` stages: bump `algorithm` when their tables would
/// change.
const VERSION: StageVersion = stage_version!(2);

/// Everything a capture depends on besides its input files and code.
#[derive(Serialize)]
struct CaptureKey<'a> {
    capture: &'a CaptureConfig,
    format: entangle_pipeline::PromptFormat,
    seed: u64,
}

/// Captures model `name` of the run and records its activation overlaps, unless the manifest
/// shows it up to date (or `force`).
pub fn run(run: &RunDir, name: &str, force: bool, registry: &Registry) -> Result<Outcome> {
    let pipeline = Pipeline::load_from_run(run)?;
    let config = &pipeline.capture;
    let key = CaptureKey { capture: config, format: pipeline.prompt.format, seed: pipeline.seed };
    let dir = entangle_checkpoint::resolve(&pipeline.model_reference(run, name))?;
    let sets = [&config.useful, &config.harmful_a, &config.harmful_b];
    let mut paths: Vec<_> = sets.iter().map(|set| run.data_set(set)).collect();
    paths.push(dir.clone());
    let stage = Stage::new(run, &format!("capture:{name}"), VERSION, &key, &paths.iter().map(|p| p.as_path()).collect::<Vec<_>>())?;
    stage.run(force, || capture_model(run, &pipeline, name, &dir, registry))
}

/// Captures model `name` (checkpoint `dir`) and merges its overlaps into the table; returns the
/// files written.
fn capture_model(run: &RunDir, pipeline: &Pipeline, name: &str, dir: &std::path::Path, registry: &Registry) -> Result<Vec<std::path::PathBuf>> {
    let config = &pipeline.capture;
    let sets = [&config.useful, &config.harmful_a, &config.harmful_b];
    let placement = Placement::parse(&pipeline.device, "auto")?;
    let model = registry.load(dir, placement)?;
    let tokenizer = Tokenizer::from_dir(dir)?;
    let format = entangle_model::PromptFormat::from(pipeline.prompt.format);
    let prompt_sets = sets
        .iter()
        .map(|set| prompt_set(run, set, config.limit))
        .collect::<Result<Vec<_>>>()?;
    let captured = capture(model.as_ref(), &tokenizer, format, &prompt_sets, config, &run.activations(name))?;
    let rows = activation_overlaps(name, &captured, config, pipeline.seed)?;
    merge_rows(run, name, rows)?;
    Ok(vec![run.activations(name), run.activation_mso()])
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

/// Replaces model `name`'s rows of the activation overlap table with `rows`.
fn merge_rows(run: &RunDir, name: &str, rows: Vec<ActivationMso>) -> Result<()> {
    let path = run.activation_mso();
    let mut all: Vec<ActivationMso> = if path.exists() {
        read_table::<ActivationMso>(&path).context("reading the previous activation overlaps")?
    } else {
        Vec::new()
    };
    all.retain(|row| row.model != name);
    all.extend(rows);
    write_table(&path, &all)
}

#[cfg(test)]
mod tests;
