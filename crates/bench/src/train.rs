//! `entangle-bench train`: training throughput of the trainer.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use entangle_model::Sequence;
use entangle_pipeline::{Schedule, TrainJob, TrainKind};
use serde::Serialize;

use crate::{load_with_threads, read_field};

/// Seed of the trainer's batch order (every sequence has the same length, so the order does not
/// change the work).
const SEED: u64 = 42;

/// What [`train`] runs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The model directory to start from.
    pub model: PathBuf,
    /// JSON `{"ids": [[token id, …], …]}`: sequences of one length, every token a target.
    pub data: PathBuf,
    pub threads: usize,
    /// Sequences per optimiser step.
    pub batch_size: usize,
    /// Leading steps left out of the timing.
    pub warmup_steps: usize,
}

/// Throughput of training.
#[derive(Debug, Clone, Serialize)]
pub struct TrainResult {
    pub steps: usize,
    pub timed_steps: usize,
    /// Input tokens of one step: batch size × sequence length.
    pub tokens_per_step: usize,
    pub train_tokens_per_s: f64,
    pub final_loss: f64,
}

/// Trains the model on every whole batch of the data, one optimiser step per batch, with
/// [`recipe`], and times the steps after the warm-up from the loss curve's clock.
pub fn train(options: &TrainOptions) -> Result<TrainResult> {
    ensure!(options.warmup_steps > 0, "at least one warm-up step is needed to start the clock");
    let mut loaded = load_with_threads(&options.model, options.threads)?;
    let ids: Vec<Vec<i64>> = read_field(&options.data, "ids")?;
    let seq_len = ids.first().map(Vec::len).context("the training data has no sequences")?;
    ensure!(ids.iter().all(|s| s.len() == seq_len), "the training sequences must have one length");
    let steps = ids.len() / options.batch_size.max(1);
    ensure!(steps > options.warmup_steps, "{} sequences make {steps} steps: too few to time after {} warm-up steps", ids.len(), options.warmup_steps);
    let sequences: Vec<Sequence> =
        ids.into_iter().take(steps * options.batch_size).map(|ids| Sequence { targets: vec![true; ids.len()], ids }).collect();
    let pad = i64::from(loaded.tokenizer.pad_token_id());
    let curve = entangle_train::train(loaded.model.as_mut(), &sequences, &recipe(options.batch_size, seq_len), SEED, pad)?;
    let start = curve.get(options.warmup_steps - 1).context("training took fewer steps than the warm-up")?;
    let end = curve.last().context("training took no step")?;
    let timed_steps = curve.len() - options.warmup_steps;
    let tokens_per_step = options.batch_size * seq_len;
    Ok(TrainResult {
        steps: curve.len(),
        timed_steps,
        tokens_per_step,
        train_tokens_per_s: (timed_steps * tokens_per_step) as f64 / (end.seconds - start.seconds),
        final_loss: end.loss,
    })
}

/// The baseline's recipe: one epoch, one micro-batch per step, AdamW (lr 1e-4, betas 0.9 /
/// 0.999, eps 1e-8, no weight decay), cosine schedule after 10% warm-up, gradient norm 1.0.
fn recipe(batch_size: usize, max_seq_len: usize) -> TrainJob {
    TrainJob {
        kind: TrainKind::Sft,
        from: None,
        architecture: None,
        data: Vec::new(),
        epochs: 1.0,
        max_steps: None,
        lr: 1e-4,
        weight_decay: 0.0,
        betas: [0.9, 0.999],
        eps: 1e-8,
        warmup_ratio: 0.1,
        schedule: Schedule::Cosine,
        batch_size,
        grad_accum: 1,
        max_seq_len,
        max_grad_norm: 1.0,
        seed: None,
        save_every: None,
    }
}
