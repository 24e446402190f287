//! `[prompt]` and `[train.<job>]`: how text is laid out for the model, and the training jobs
//! that produce the run's models (METHOD.md, paper setting; the tiny study's pretraining).

use serde::{Deserialize, Serialize};

/// How a prompt (and, in training, its response) is laid out as model input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptFormat {
    /// Our instruction template with "Instruction:" / "Response:" markers (Alpaca style).
    Instruction,
    /// The model's own chat template from tokenizer_config.json.
    Chat,
    /// Prompt and response concatenated as plain text.
    Plain,
}

impl PromptFormat {
    /// The name pipelines write: `instruction`, `chat` or `plain`.
    pub fn name(self) -> &'static str {
        match self {
            PromptFormat::Instruction => "instruction",
            PromptFormat::Chat => "chat",
            PromptFormat::Plain => "plain",
        }
    }
}

/// `[prompt]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptConfig {
    pub format: PromptFormat,
}

impl Default for PromptConfig {
    fn default() -> Self {
        PromptConfig { format: PromptFormat::Instruction }
    }
}

/// What a training job optimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainKind {
    /// A freshly initialised model, loss on every token.
    Pretrain,
    /// Supervised fine-tuning of an existing model, loss on response tokens only.
    Sft,
}

/// Learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Cosine,
    Linear,
    Constant,
}

/// `[train.<job>]`: one training job; the trained model is saved as `models/<job>/`. Defaults
/// are the paper's recipe (METHOD.md): AdamW, lr 1e-5, no weight decay, one epoch, batch 1 with
/// 32 accumulation steps, cosine schedule with 2% warm-up, 512 tokens, gradient norm 1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainJob {
    pub kind: TrainKind,
    /// sft: the model to start from, a model the run trains or imports (e.g. `aligned`) or a
    /// name listed in `[models]`.
    #[serde(default)]
    pub from: Option<String>,
    /// pretrain: the architecture, as the fields of a Hugging Face config.json.
    #[serde(default)]
    pub architecture: Option<toml::Table>,
    /// Prepared data sets (`data/<set>.parquet`) to train on, concatenated.
    pub data: Vec<String>,
    #[serde(default = "one")]
    pub epochs: f64,
    /// Stop after this many optimiser steps, whatever the epochs.
    #[serde(default)]
    pub max_steps: Option<u64>,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default = "default_warmup_ratio")]
    pub warmup_ratio: f64,
    #[serde(default = "default_schedule")]
    pub schedule: Schedule,
    /// Sequences per micro-batch.
    #[serde(default = "one_usize")]
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    #[serde(default = "default_grad_accum")]
    pub grad_accum: usize,
    /// Longer examples are truncated to this many tokens.
    #[serde(default = "default_max_seq_len")]
    pub max_seq_len: usize,
    /// Gradients are clipped to this global L2 norm (0 disables clipping).
    #[serde(default = "one")]
    pub max_grad_norm: f64,
    /// Seed of the job's initialisation and data order; default: the pipeline seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Save a resumable state (`train/<job>.state/`) every this many optimiser steps, for
    /// `entangle-train --resume` to continue from after an interruption. It does not change
    /// the trained model, so it is not part of the job's configuration hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_every: Option<u64>,
}

fn one() -> f64 {
    1.0
}
fn one_usize() -> usize {
    1
}
fn default_lr() -> f64 {
    1e-5
}
fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}
fn default_eps() -> f64 {
    1e-8
}
fn default_warmup_ratio() -> f64 {
    0.02
}
fn default_schedule() -> Schedule {
    Schedule::Cosine
}
fn default_grad_accum() -> usize {
    32
}
fn default_max_seq_len() -> usize {
    512
}

impl TrainJob {
    /// Checks the job's own fields; `job` names it in errors.
    pub fn validate(&self, job: &str) -> anyhow::Result<()> {
        let field = |name: &str| format!("train.{job}.{name}");
        match self.kind {
            TrainKind::Pretrain if self.architecture.is_none() => {
                anyhow::bail!("{}: a pretrain job needs the model architecture", field("architecture"))
            }
            // The family's own config checks the rest when the job starts; its name is needed here.
            _ if self.architecture.as_ref().is_some_and(|a| !a.get("model_type").is_some_and(toml::Value::is_str)) => {
                anyhow::bail!("{}: expected a config.json-style table naming its model_type", field("architecture"))
            }
            TrainKind::Sft if self.from.is_none() => {
                anyhow::bail!("{}: an sft job needs the model to start from", field("from"))
            }
            _ => {}
        }
        if self.data.is_empty() {
            anyhow::bail!("{}: expected at least one data set", field("data"));
        }
        if self.batch_size == 0 || self.grad_accum == 0 || self.max_seq_len < 2 {
            anyhow::bail!("train.{job}: batch_size and grad_accum must be ≥ 1 and max_seq_len ≥ 2");
        }
        if self.save_every == Some(0) {
            anyhow::bail!("{}: expected at least 1 step between saved states", field("save_every"));
        }
        if self.max_steps == Some(0) {
            anyhow::bail!("{}: expected at least 1 step", field("max_steps"));
        }
        for set in &self.data {
            crate::check_name(&field("data"), set)?;
        }
        let [beta1, beta2] = self.betas;
        for (name, value, valid, expected) in [
            ("lr", self.lr, self.lr > 0.0, "a number > 0"),
            ("epochs", self.epochs, self.epochs > 0.0, "a number > 0"),
            ("warmup_ratio", self.warmup_ratio, (0.0..1.0).contains(&self.warmup_ratio), "0 ≤ warmup_ratio < 1"),
            ("weight_decay", self.weight_decay, self.weight_decay >= 0.0, "a number ≥ 0"),
            ("betas", beta1, (0.0..1.0).contains(&beta1), "two numbers in [0, 1)"),
            ("betas", beta2, (0.0..1.0).contains(&beta2), "two numbers in [0, 1)"),
            ("eps", self.eps, self.eps > 0.0, "a number > 0"),
            ("max_grad_norm", self.max_grad_norm, self.max_grad_norm >= 0.0, "a number ≥ 0 (0: no clipping)"),
        ] {
            crate::check_number(&field(name), value, valid, expected)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Pipeline, PromptFormat, Schedule, TrainKind};

    const JOBS: &str = r#"
name = "t"
[prompt]
format = "chat"
[train.base]
kind = "pretrain"
data = ["pretrain"]
architecture = { model_type = "llama", hidden_size = 64 }
lr = 1e-3
[train.aligned]
kind = "sft"
from = "base"
data = ["align"]
schedule = "linear"
"#;

    #[test]
    fn jobs_parse_with_paper_defaults() {
        let p = Pipeline::parse(JOBS).unwrap();
        assert_eq!(p.prompt.format, PromptFormat::Chat);
        let base = &p.train["base"];
        assert_eq!(base.kind, TrainKind::Pretrain);
        assert_eq!(base.architecture.as_ref().unwrap()["hidden_size"].as_integer(), Some(64));
        let aligned = &p.train["aligned"];
        assert_eq!((aligned.lr, aligned.grad_accum, aligned.max_seq_len), (1e-5, 32, 512));
        assert_eq!((aligned.warmup_ratio, aligned.max_grad_norm, aligned.epochs), (0.02, 1.0, 1.0));
        assert_eq!(aligned.schedule, Schedule::Linear);
        assert_eq!(aligned.betas, [0.9, 0.999]);
    }

    #[test]
    fn inconsistent_jobs_are_rejected() {
        for (edit, needle) in [
            (("from = \"base\"", "from = \"nowhere\""), "train.aligned.from: \"nowhere\" is neither"),
            (("from = \"base\"\n", ""), "train.aligned.from: an sft job needs"),
            (("architecture = { model_type = \"llama\", hidden_size = 64 }\n", ""), "train.base.architecture"),
            (("data = [\"align\"]", "data = []"), "train.aligned.data: expected at least one"),
            (("lr = 1e-3", "lr = 0.0"), "train.base.lr: expected a number > 0, got 0"),
            (("lr = 1e-3", "lr = nan"), "train.base.lr: expected a number > 0, got NaN"),
            (("lr = 1e-3", "epochs = inf"), "train.base.epochs: expected a number > 0, got inf"),
            (("lr = 1e-3", "betas = [0.9, 1.0]"), "train.base.betas: expected two numbers in [0, 1), got 1"),
            (("data = [\"align\"]", "data = [\"../x\"]"), "train.aligned.data: \"../x\" is not a plain file name"),
            (("lr = 1e-3", "save_every = 0"), "train.base.save_every: expected at least 1"),
        ] {
            let text = JOBS.replacen(edit.0, edit.1, 1);
            let err = format!("{:#}", Pipeline::parse(&text).unwrap_err());
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }
}
