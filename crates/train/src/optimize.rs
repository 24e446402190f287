//! The optimisation loop: micro-batches accumulated into optimiser steps, AdamW with the
//! scheduled learning rate, gradient-norm clipping, and the loss curve.

use std::time::Instant;

use anyhow::{ensure, Result};
use entangle_artifacts::LossPoint;
use entangle_model::{CausalLm, Sequence};
use entangle_pipeline::TrainJob;

use crate::adamw::{clip_factor, grad_norm, AdamW};
use crate::batches::length_grouped_batches;
use crate::schedule::LrSchedule;
use crate::shards::{self, Gradients};
use crate::state::{Saved, StateDir};

/// Number of optimiser steps a job takes over `n` sequences.
pub fn total_steps(job: &TrainJob, n: usize) -> u64 {
    let micro_batches = n.div_ceil(job.batch_size);
    let per_epoch = micro_batches.div_ceil(job.grad_accum) as f64;
    let steps = (per_epoch * job.epochs).ceil().max(1.0) as u64;
    job.max_steps.map_or(steps, |max| steps.min(max))
}

/// Trains `model` in place on `sequences` with `job`'s recipe; returns the loss curve.
pub fn train(model: &mut dyn CausalLm, sequences: &[Sequence], job: &TrainJob, seed: u64, pad_id: i64) -> Result<Vec<LossPoint>> {
    train_resumable(model, sequences, job, seed, pad_id, None)
}

/// A job's state: where [`train_resumable`] saves it every `save_every` steps (a failed save is
/// logged and training goes on), and what was saved before when the job resumes (the model then
/// already holds the saved weights).
pub struct Resumable<'a> {
    pub state: StateDir<'a>,
    pub saved: Option<Saved>,
}

/// [`train`], saving the job's state on the way and, when `resumable` holds a saved state,
/// continuing from it: the steps it took are skipped, in data order too.
pub(crate) fn train_resumable(
    model: &mut dyn CausalLm,
    sequences: &[Sequence],
    job: &TrainJob,
    seed: u64,
    pad_id: i64,
    resumable: Option<Resumable>,
) -> Result<Vec<LossPoint>> {
    let steps = total_steps(job, sequences.len());
    let schedule = LrSchedule::new(job.lr, steps, job.warmup_ratio, job.schedule);
    ensure!(
        (0..steps).any(|step| schedule.lr_at(step) > 0.0),
        "the learning rate is 0 at every one of the job's {steps} optimiser steps (lr {}, warmup_ratio {}): \
         training would change nothing; give it more data, epochs or max_steps, or lower warmup_ratio",
        job.lr,
        job.warmup_ratio
    );
    let params = model.var_store().trainable_variables();
    let mut optimizer = AdamW::new(&params, job)?;
    let lengths: Vec<usize> = sequences.iter().map(|s| s.ids.len()).collect();
    let mut batches = MicroBatches { lengths: &lengths, batch_size: job.batch_size, seed, epoch: 0, queue: Vec::new() };
    let mut curve = Vec::with_capacity(steps as usize);
    if let Some(Resumable { state, saved: Some(saved) }) = &resumable {
        ensure!(saved.step < steps, "{}: the saved state is at step {} of the job's {steps}", state.dir.display(), saved.step);
        state.restore(&mut optimizer, saved)?;
        curve.extend_from_slice(&saved.curve);
        (0..saved.step * job.grad_accum as u64).for_each(|_| drop(batches.next()));
    }
    let first = curve.len() as u64;
    let (mut tokens, seconds_before) = curve.last().map_or((0, 0.0), |p: &LossPoint| (p.tokens, p.seconds));
    let progress = entangle_artifacts::progress_bar(steps, "steps");
    progress.set_position(first);
    let started = Instant::now();
    for step in first..steps {
        let lr = schedule.lr_at(step);
        let group: Vec<Vec<&Sequence>> =
            (0..job.grad_accum).map(|_| batches.next().into_iter().map(|i| &sequences[i]).collect()).collect();
        let step_targets: usize = group.iter().flatten().map(|s| s.target_count()).sum();
        // The loss is averaged over every target token of the step, so k micro-batches of one
        // sequence make the same update as one batch of k.
        let micro_batches = group
            .iter()
            .map(|rows| shards::gradients(model, &params, rows, pad_id, step_targets, shards::count(model.device(), rows.len())));
        let Gradients { loss, grads } = shards::sum(micro_batches)?;
        let norm = grad_norm(&grads)?;
        ensure!(
            loss.is_finite() && norm.is_finite(),
            "step {} of {steps}: the loss is {loss} and the gradient norm {norm}: training diverged and nothing is \
             saved (lower lr, raise warmup_ratio or set max_grad_norm)",
            step + 1
        );
        let grad_scale = if job.max_grad_norm > 0.0 { clip_factor(norm, job.max_grad_norm) } else { 1.0 };
        optimizer.step(&grads, grad_scale, lr)?;
        tokens += step_targets as u64;
        let seconds = seconds_before + started.elapsed().as_secs_f64();
        progress.set_message(format!("loss {loss:.4}  lr {lr:.2e}  {:.0} tok/s", tokens as f64 / seconds.max(1e-9)));
        progress.inc(1);
        curve.push(LossPoint { step: step + 1, loss, lr, tokens, seconds, replicate: entangle_pipeline::FIXED });
        let save_now = job.save_every.is_some_and(|every| (step + 1) % every == 0 && step + 1 < steps);
        if let (true, Some(resumable)) = (save_now, &resumable) {
            if let Err(err) = progress.suspend(|| resumable.state.save(model, &optimizer, &curve)) {
                tracing::warn!("{err:#}; training goes on from the last state saved");
            }
        }
    }
    progress.finish_and_clear();
    Ok(curve)
}

/// Endless micro-batches: each epoch a new seeded length-grouped order.
struct MicroBatches<'a> {
    lengths: &'a [usize],
    batch_size: usize,
    seed: u64,
    epoch: u64,
    queue: Vec<Vec<usize>>,
}

impl MicroBatches<'_> {
    fn next(&mut self) -> Vec<usize> {
        if self.queue.is_empty() {
            self.queue = length_grouped_batches(self.lengths, self.batch_size, self.seed.wrapping_add(self.epoch));
            self.queue.reverse();
            self.epoch += 1;
        }
        self.queue.pop().unwrap_or_default()
    }
}

