//! `entangle-bench eval`: generation throughput of a harmful-benchmark pass of the evaluator.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use entangle_refusals::{is_refusal, REFUSAL_PHRASES};
use entangle_model::{generate, GenerateOptions, PromptFormat};
use entangle_pipeline::{Benchmark, EvalConfig};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::{load_with_threads, read_field};

/// Tokens the warm-up batch generates.
const WARMUP_TOKENS: usize = 4;

/// What [`eval`] runs.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// The model directory.
    pub model: PathBuf,
    /// JSON `{"instructions": ["…", …]}`: the harmful requests.
    pub instructions: PathBuf,
    pub threads: usize,
    /// `[eval] batch_size`.
    pub batch_size: usize,
    /// `[eval] max_new_tokens`.
    pub max_new_tokens: usize,
    /// Where the prompts (token ids) and settings go, for the baseline to repeat the pass.
    pub settings_out: PathBuf,
}

/// Throughput of the pass.
#[derive(Debug, Clone, Serialize)]
pub struct EvalResult {
    pub prompts: usize,
    /// Tokens the responses really generated, each up to its EOS, stop string or budget.
    pub generated_tokens: usize,
    pub generation_tokens_per_s: f64,
    /// Responses the keyword judge counts as refusals.
    pub refusals: usize,
}

/// What the baseline needs to repeat the pass.
#[derive(Serialize)]
struct Settings<'a> {
    prompt_ids: &'a [Vec<u32>],
    stop_strings: &'a [String],
    eos_token_ids: &'a [u32],
    max_new_tokens: usize,
    batch_size: usize,
    refusal_phrases: &'a [&'a str],
}

/// Renders the instructions in the instruction format, generates as `entangle-eval` does
/// ([`entangle_eval::generate_options`]) and judges every response with the keyword judge.
/// One batch of the longest prompts generating a few tokens warms up; the pass is timed once.
pub fn eval(options: &EvalOptions) -> Result<EvalResult> {
    let loaded = load_with_threads(&options.model, options.threads)?;
    let (model, tokenizer) = (loaded.model.as_ref(), &loaded.tokenizer);
    let instructions: Vec<String> = read_field(&options.instructions, "instructions")?;
    let format = PromptFormat::Instruction;
    let config = EvalConfig { max_new_tokens: options.max_new_tokens, batch_size: options.batch_size, ..EvalConfig::default() };
    let generation = entangle_eval::generate_options(&config, Benchmark::Harmful, format, tokenizer);
    let prompts = instructions.iter().map(|text| format.encode(tokenizer, text)).collect::<Result<Vec<_>>>()?;
    write_settings(&options.settings_out, &Settings {
        prompt_ids: &prompts,
        stop_strings: &generation.stop_strings,
        eos_token_ids: &generation.eos_token_ids,
        max_new_tokens: generation.max_new_tokens,
        batch_size: generation.batch_size,
        refusal_phrases: REFUSAL_PHRASES,
    })?;
    let warmup = GenerateOptions { max_new_tokens: WARMUP_TOKENS, ..generation.clone() };
    generate(model, tokenizer, &longest(&prompts, generation.batch_size), &warmup, &ProgressBar::hidden())?;
    let started = Instant::now();
    let responses = generate(model, tokenizer, &prompts, &generation, &ProgressBar::hidden())?;
    let refusals = responses.iter().filter(|r| is_refusal(&r.text)).count();
    let seconds = started.elapsed().as_secs_f64();
    let generated_tokens = responses.iter().map(|r| r.token_ids.len()).sum();
    Ok(EvalResult {
        prompts: prompts.len(),
        generated_tokens,
        generation_tokens_per_s: generated_tokens as f64 / seconds,
        refusals,
    })
}

/// The `n` longest prompts: the first batch `generate` runs.
fn longest(prompts: &[Vec<u32>], n: usize) -> Vec<Vec<u32>> {
    let mut sorted = prompts.to_vec();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.len()));
    sorted.truncate(n);
    sorted
}

fn write_settings(path: &Path, settings: &Settings) -> Result<()> {
    let text = serde_json::to_string(settings).context("serialising the evaluation settings")?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}
