//! Running prompt sets through a model and keeping every layer's hidden state at each prompt's
//! last real token.

use std::path::Path;

use anyhow::{bail, Context, Result};
use entangle_artifacts::{ActivationWriter, Activations};
use entangle_model::{last_token_states, CausalLm, PromptFormat, Tokenizer};
use entangle_pipeline::CaptureConfig;

use tch::{Kind, Tensor};

/// A prompt set: its data-set name and its prompts with their item ids.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSet {
    pub name: String,
    pub items: Vec<String>,
    pub prompts: Vec<String>,
}

/// The activations of the depth window, kept for the overlaps: `vectors[set][i]` is the
/// `[prompts, hidden]` f32 matrix of set `set` at hidden-state index `layers[i]`.
pub struct Captured {
    pub sets: Vec<String>,
    pub layers: Vec<usize>,
    pub vectors: Vec<Vec<Tensor>>,
}

/// Captures `sets` with `model`: every layer's last-token state streamed to the activation
/// table at `out`, and the depth window's states returned.
pub fn capture(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    format: PromptFormat,
    sets: &[PromptSet],
    config: &CaptureConfig,
    out: &Path,
) -> Result<Captured> {
    let dims = model.dims();
    let layers = config.layers(dims.num_layers);
    let mut writer = ActivationWriter::create(out, dims.hidden_size)?;
    let total: usize = sets.iter().map(|s| s.prompts.len()).sum();
    let progress = entangle_artifacts::progress_bar(total as u64, "prompts");
    let mut vectors = Vec::with_capacity(sets.len());
    for set in sets {
        let ids = encode(tokenizer, format, set, dims.vocab_size)?;
        let mut window: Vec<Vec<Tensor>> = layers.iter().map(|_| Vec::new()).collect();
        for (start, chunk) in (0..).step_by(config.batch_size.max(1)).zip(ids.chunks(config.batch_size.max(1))) {
            let states = last_token_states(model, chunk, tokenizer.pad_token_id())?.hidden_states;
            writer.write(&rows(set, start, &states)?)?;
            for (slot, &layer) in window.iter_mut().zip(&layers) {
                slot.push(states.f_select(1, layer as i64)?);
            }
            progress.inc(chunk.len() as u64);
        }
        vectors.push(window.iter().map(|parts| Tensor::f_cat(parts, 0)).collect::<Result<Vec<_>, _>>()?);
    }
    progress.finish_and_clear();
    writer.finish()?;
    Ok(Captured { sets: sets.iter().map(|s| s.name.clone()).collect(), layers, vectors })
}

/// The prompts of `set` as token ids, checked against the model's vocabulary.
fn encode(tokenizer: &Tokenizer, format: PromptFormat, set: &PromptSet, vocab_size: usize) -> Result<Vec<Vec<u32>>> {
    let ids = set
        .prompts
        .iter()
        .map(|prompt| format.encode(tokenizer, prompt))
        .collect::<Result<Vec<_>>>()
        .with_context(|| format!("encoding prompt set {}", set.name))?;
    if let Some(&id) = ids.iter().flatten().find(|&&id| id as usize >= vocab_size) {
        bail!("the tokenizer produces token id {id} but the model's vocabulary has {vocab_size} entries: model and tokenizer do not match");
    }
    Ok(ids)
}

/// Table rows of one batch: `states` is `[batch, layers + 1, hidden]`, prompts from `start`.
fn rows(set: &PromptSet, start: usize, states: &Tensor) -> Result<Activations> {
    let (batch, layers, dim) = states.size3().context("hidden states must be [batch, layers, hidden]")?;
    let vectors: Vec<f32> = Vec::try_from(states.f_to_kind(Kind::Float)?.f_flatten(0, -1)?).context("copying activations")?;
    let mut out = Activations { dim: dim as usize, vectors, ..Activations::default() };
    for b in 0..batch as usize {
        for layer in 0..layers as u32 {
            out.prompt_set.push(set.name.clone());
            out.item.push(set.items[start + b].clone());
            out.layer.push(layer);
        }
    }
    Ok(out)
}

