//! A training job's resumable state, `train/<job>.state/`: written every `save_every` optimiser
//! steps when the job asks for it, read by `entangle-train --resume`, removed when the job
//! finishes. It holds what the rest of the job depends on: the model's weights (`model/`, a
//! Hugging Face checkpoint in the weights' own f32), AdamW's moments (`optimizer.safetensors`),
//! the loss curve so far (`curve.parquet`) and `state.json` with the step and the key of the job
//! and inputs that made it. Each state is written into a directory beside the last and swapped
//! in, so none is ever half-written. The data order and learning rate follow from the step, so a
//! resumed job makes the same updates as one that never stopped, bit for bit with the same
//! intra-op thread count (which sets the CPU's shards and so the order of gradient sums).

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use entangle_artifacts::{read_table, replace_dir_atomic, write_table, LossPoint};
use entangle_model::CausalLm;
use serde::{Deserialize, Serialize};

use crate::adamw::AdamW;

/// Where a job's state lives and which job it belongs to.
pub struct StateDir<'a> {
    pub dir: &'a Path,
    /// The hash of the job's configuration and inputs: only the same job resumes a state.
    pub key: &'a str,
}

/// A state read back: the optimiser steps taken and the loss curve of those steps.
pub struct Saved {
    pub step: u64,
    pub curve: Vec<LossPoint>,
}

const MODEL: &str = "model";
const OPTIMIZER: &str = "optimizer.safetensors";
const CURVE: &str = "curve.parquet";
const STATE: &str = "state.json";

#[derive(Serialize, Deserialize)]
struct StateJson {
    key: String,
    step: u64,
}

impl StateDir<'_> {
    /// The saved model, which the resumed job loads.
    pub fn model(&self) -> PathBuf {
        self.dir.join(MODEL)
    }

    /// Replaces the state with the one after the curve's last step.
    pub fn save(&self, model: &dyn CausalLm, optimizer: &AdamW, curve: &[LossPoint]) -> Result<()> {
        let step = curve.last().map_or(0, |p| p.step);
        replace_dir_atomic(self.dir, |tmp| {
            model.save(&tmp.join(MODEL), None)?;
            optimizer.save_moments(&tmp.join(OPTIMIZER))?;
            write_table(&tmp.join(CURVE), curve)?;
            let json = serde_json::to_vec_pretty(&StateJson { key: self.key.to_owned(), step })?;
            std::fs::write(tmp.join(STATE), json).with_context(|| format!("writing {STATE}"))
        })
        .with_context(|| format!("saving the training state to {}", self.dir.display()))?;
        tracing::info!("saved the state after step {step} to {}", self.dir.display());
        Ok(())
    }

    /// The saved step and curve, after checking the state belongs to this job.
    pub fn load(&self) -> Result<Saved> {
        let path = self.dir.join(STATE);
        let text = std::fs::read(&path).with_context(|| {
            format!("there is no training state to resume at {} (a job saves one every `save_every` steps)", path.display())
        })?;
        let json: StateJson = serde_json::from_slice(&text).with_context(|| format!("{}: not a training state", path.display()))?;
        ensure!(
            json.key == self.key,
            "{}: the state was saved by a different configuration or different inputs of this job; \
             pass --force without --resume to start over",
            self.dir.display()
        );
        let curve = read_table::<LossPoint>(&self.dir.join(CURVE))?;
        ensure!(curve.len() as u64 == json.step, "{}: state.json says step {} but the curve has {} steps", self.dir.display(), json.step, curve.len());
        tracing::info!("resuming from the state after step {} in {}", json.step, self.dir.display());
        Ok(Saved { step: json.step, curve })
    }

    /// Restores the saved moments into `optimizer`, as they were after `saved.step` steps.
    pub fn restore(&self, optimizer: &mut AdamW, saved: &Saved) -> Result<()> {
        optimizer.restore_moments(&self.dir.join(OPTIMIZER), saved.step)
    }
}
