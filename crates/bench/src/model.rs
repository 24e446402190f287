//! `entangle-bench model`: forward and greedy-generation throughput of the model runtime.

use std::path::PathBuf;

use anyhow::Result;
use entangle_model::{generate, Batch, GenerateOptions, Logits, Sampling};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::{fastest, load_with_threads, read_field};

/// What [`model`] runs.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// The model directory.
    pub model: PathBuf,
    /// JSON `{"ids": [[token id, …], …]}`: the prompts, run as one batch.
    pub prompts: PathBuf,
    pub threads: usize,
    /// Tokens generated for every prompt, EOS or not.
    pub new_tokens: usize,
    /// Timed runs after a warm-up run; the fastest counts.
    pub repeats: usize,
}

/// Throughput of the forward pass and of generation.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    /// Real (not padding) tokens of the batch.
    pub forward_tokens: usize,
    pub forward_tokens_per_s: f64,
    pub generated_tokens: usize,
    pub generation_tokens_per_s: f64,
}

/// Times one left-padded forward pass over all prompts with logits at every position, and
/// greedy generation of exactly `new_tokens` per prompt with the KV cache (no EOS, no stop
/// strings), all prompts in one batch.
pub fn model(options: &ModelOptions) -> Result<ModelResult> {
    let loaded = load_with_threads(&options.model, options.threads)?;
    let model = loaded.model.as_ref();
    let prompts: Vec<Vec<u32>> = read_field(&options.prompts, "ids")?;
    let _no_grad = tch::no_grad_guard();
    let batch = Batch::left_padded(&prompts, loaded.tokenizer.pad_token_id(), model.device())?;
    let (forward_s, _) = fastest(options.repeats, || model.forward(&batch.input(Logits::All, false), None))?;
    let generation = GenerateOptions {
        max_new_tokens: options.new_tokens,
        sampling: Sampling::Greedy,
        stop_strings: Vec::new(),
        eos_token_ids: Vec::new(),
        batch_size: prompts.len(),
    };
    let (generate_s, generations) =
        fastest(options.repeats, || generate(model, &loaded.tokenizer, &prompts, &generation, &ProgressBar::hidden()))?;
    let forward_tokens = prompts.iter().map(Vec::len).sum();
    let generated_tokens = generations.iter().map(|g| g.token_ids.len()).sum();
    Ok(ModelResult {
        forward_tokens,
        forward_tokens_per_s: forward_tokens as f64 / forward_s,
        generated_tokens,
        generation_tokens_per_s: generated_tokens as f64 / generate_s,
    })
}
