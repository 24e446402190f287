//! The trainer: pretraining and full-parameter supervised fine-tuning, the stage that makes the
//! run's models.
//!
//! `entangle-train --run DIR --job NAME` runs the pipeline's `[train.NAME]` job: a `pretrain`
//! job initialises a fresh seeded model from its architecture (the tiny study's base) and
//! learns every token of its data; an `sft` job starts from another model (`from`) and learns
//! only response tokens. The recipe is the paper's (METHOD.md): AdamW, warm-up then cosine /
//! linear / constant schedule ([`LrSchedule`]), gradient accumulation with the loss averaged
//! over every target token of the step, gradient-norm clipping, length-grouped batches, bf16
//! autocast on CUDA and f32 on the CPU. The loss curve goes to `train/<job>.parquet` and the
//! model, with its tokenizer, to `models/<job>/` as a Hugging Face checkpoint — both atomically.
//! A job with `save_every = N` saves its state to `train/<job>.state/` every N steps, from which
//! `--resume` continues an interrupted job to the model an uninterrupted run makes.
//!
//! A fine-tune of the aligned model is drawn once per replicate (`--replicate R`, stage
//! `train:<job>@R`): with the replicate's seed, into `replicates/<R>/` (see
//! [`Pipeline::is_replicated`]); base and aligned are trained once.
//!
//! ```no_run
//! use entangle_artifacts::RunDir;
//!
//! # fn main() -> anyhow::Result<()> {
//! let run = RunDir::new(std::path::Path::new("runs/tiny"));
//! let job = entangle_train::Job { name: "useful", replicate: 2, force: false, resume: false };
//! entangle_train::run(&run, &job, &entangle_models::registry())?;
//! # Ok(()) }
//! ```

mod adamw;
mod batches;
mod cpu_values;
mod cross_entropy;
mod optimize;
mod schedule;
mod sequences;
mod shards;
mod state;

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use entangle_artifacts::{read_table, stage_version, write_table, Example, Outcome, RunDir, Stage, StageVersion};
use entangle_model::{Placement, PromptFormat, Registry, Tokenizer, Weights};
use entangle_pipeline::{Pipeline, TrainJob, TrainKind};
use serde::Serialize;

use optimize::{train_resumable, Resumable};
use state::StateDir;

pub use batches::length_grouped_batches;
pub use optimize::{total_steps, train};
pub use schedule::LrSchedule;
pub use sequences::sequences;

/// The code version of the `train:<job>` stages: bump `algorithm` when a job would train to
/// another model.
const VERSION: StageVersion = stage_version!(1);

/// Everything a job's result depends on besides its input files and code.
#[derive(Serialize)]
struct JobKey<'a> {
    job: &'a TrainJob,
    format: entangle_pipeline::PromptFormat,
    seed: u64,
    device: &'a str,
}

/// One training job to run: `[train.<name>]` in replicate `replicate` (ignored for a job
/// trained once), redone when `force`, continued from its saved state when `resume`.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub name: &'a str,
    pub replicate: u32,
    pub force: bool,
    pub resume: bool,
}

/// Runs training job `job` of the run's pipeline, unless the manifest shows it already ran
/// with the same configuration and inputs (then it logs that and returns), or `force`. With
/// `resume` it continues from the state the job saved (see `save_every`); a saved state is
/// otherwise kept from being overwritten unless `force`.
pub fn run(run: &RunDir, job: &Job, registry: &Registry) -> Result<Outcome> {
    let &Job { name: job_name, replicate, force, resume } = job;
    let pipeline = Pipeline::load_from_run(run)?;
    let job = pipeline.train.get(job_name).with_context(|| {
        let jobs: Vec<&str> = pipeline.train.keys().map(String::as_str).collect();
        format!("the pipeline has no training job `{job_name}`; jobs: {}", jobs.join(", "))
    })?;
    let name = format!("train:{}", pipeline.labelled(job_name, replicate));
    let scope = pipeline.run_dir_of(run, job_name, replicate)?;
    let seed = Pipeline::replicate_seed(job.seed.unwrap_or(pipeline.seed), pipeline.replicate_of(job_name, replicate));
    let hashed_job = TrainJob { save_every: None, ..job.clone() };
    let key = JobKey { job: &hashed_job, format: pipeline.prompt.format, seed, device: &pipeline.device };
    let start_dir = start_dir(&pipeline, run, job, replicate)?;
    let mut input_paths: Vec<PathBuf> = job.data.iter().map(|set| run.data_set(set)).collect();
    input_paths.push(start_dir.clone());
    let stage = Stage::new(run, &name, VERSION, &key, &input_paths.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    let out_dir = scope.model(job_name);
    let made_elsewhere = out_dir.exists() && !force && !stage.was_recorded()?;
    let (state_dir, state_key) = (scope.train_state(job_name), stage.fingerprint()?);
    let outcome = stage.run(force, || {
        ensure!(!made_elsewhere, "{} exists but was not made by this run's {name}; pass --force to overwrite it", out_dir.display());
        let state = StateDir { dir: &state_dir, key: &state_key };
        let saved = if resume { Some(state.load()?) } else { None };
        ensure!(
            saved.is_some() || !state_dir.exists() || force,
            "{} holds a saved state of this job; pass --resume to continue from it or --force to start over",
            state_dir.display()
        );
        let job_run = JobRun { pipeline: &pipeline, job, seed, start_dir: &start_dir, out_dir: &out_dir };
        let mut curve = train_job(run, &job_run, registry, Resumable { state, saved }).with_context(|| name.clone())?;
        let column = pipeline.replicate_of(job_name, replicate);
        curve.iter_mut().for_each(|point| point.replicate = column);
        write_table(&scope.loss_curve(job_name), &curve)?;
        Ok(vec![out_dir.clone(), scope.loss_curve(job_name)])
    })?;
    if outcome == Outcome::Finished && state_dir.exists() {
        if let Err(err) = std::fs::remove_dir_all(&state_dir) {
            tracing::warn!("the job finished, but its spent state {} could not be removed: {err}", state_dir.display());
        }
    }
    Ok(outcome)
}

/// Where the job's model or tokenizer comes from: the model it starts from (sft), or the run's
/// tokenizer (pretrain).
fn start_dir(pipeline: &Pipeline, run: &RunDir, job: &TrainJob, replicate: u32) -> Result<PathBuf> {
    match (job.kind, &job.from) {
        (TrainKind::Sft, Some(from)) => entangle_checkpoint::resolve(&pipeline.model_reference(run, from, replicate)?),
        _ => Ok(run.tokenizer()),
    }
}

/// What one run of a job reads and where its model goes.
struct JobRun<'a> {
    pipeline: &'a Pipeline,
    job: &'a TrainJob,
    seed: u64,
    start_dir: &'a Path,
    out_dir: &'a Path,
}

/// Trains the job's model and saves it.
fn train_job(run: &RunDir, job_run: &JobRun, registry: &Registry, resumable: Resumable) -> Result<Vec<entangle_artifacts::LossPoint>> {
    let JobRun { pipeline, job, seed, start_dir, out_dir } = *job_run;
    let tokenizer = Tokenizer::from_dir(start_dir)?;
    let placement = Placement { device: entangle_model::parse_device(&pipeline.device)?, kind: tch::Kind::Float };
    let mut model = match (&resumable.saved, job.kind) {
        (Some(_), _) => registry.load(&resumable.state.model(), placement)?,
        (None, TrainKind::Pretrain) => {
            let config = pretrain_config(job, &tokenizer)?;
            registry.build(&config, Weights::Fresh { seed: seed as i64 }, placement)?
        }
        (None, TrainKind::Sft) => registry.load(start_dir, placement)?,
    };
    let rows = training_rows(run, &job.data)?;
    let format = PromptFormat::from(pipeline.prompt.format);
    let sets = job.data.join(", ");
    let sequences = sequences(&rows, job.kind, format, &tokenizer, job.max_seq_len, &sets)?;
    tracing::info!(
        "training {} parameters on {} sequences for {} steps",
        model.num_parameters(),
        sequences.len(),
        total_steps(job, sequences.len())
    );
    let curve = train_resumable(model.as_mut(), &sequences, job, seed, i64::from(tokenizer.pad_token_id()), Some(resumable))?;
    model.save(out_dir, Some(start_dir))?;
    Ok(curve)
}

/// The rows of every data set of the job, in order.
fn training_rows(run: &RunDir, sets: &[String]) -> Result<Vec<Example>> {
    let mut rows = Vec::new();
    for set in sets {
        rows.extend(read_table::<Example>(&run.data_set(set))?);
    }
    Ok(rows)
}

/// The `config.json` of a model pretrained from scratch: the job's architecture, with the
/// vocabulary and special tokens of the tokenizer.
fn pretrain_config(job: &TrainJob, tokenizer: &Tokenizer) -> Result<serde_json::Value> {
    let architecture = job.architecture.as_ref().context("a pretrain job needs an architecture")?;
    let mut config = serde_json::to_value(architecture).context("converting the architecture to config.json")?;
    let fields = config.as_object_mut().context("the architecture must be a table")?;
    fields.insert("vocab_size".to_owned(), tokenizer.vocab_size().into());
    for (field, token) in [("bos_token_id", "bos_token"), ("eos_token_id", "eos_token"), ("pad_token_id", "pad_token")] {
        if let Some(id) = tokenizer.special_id(token) {
            fields.insert(field.to_owned(), id.into());
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests;
