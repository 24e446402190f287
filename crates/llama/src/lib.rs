//! The Llama family of decoder-only transformers: LlamaForCausalLM (Llama 2, 3, 3.1+ with
//! "llama3" rope scaling), MistralForCausalLM and Qwen2ForCausalLM (Qwen 2 and 2.5).
//!
//! The study's real models (Llama-3.2-1B, Qwen2.5-1.5B, their instruct versions, up to 8B) and
//! the tiny study's from-scratch models are all of this family. The three architectures share
//! one decoder ([`Llama`]): RMSNorm pre-norm layers, grouped-query attention with rotary
//! positions, a SwiGLU MLP, optionally tied embeddings; they differ in biases (Qwen2's q/k/v
//! biases, Llama's `attention_bias`/`mlp_bias`) and sliding attention windows, which
//! [`Config`] resolves from `config.json`. Parameters sit in a tch `VarStore` under their
//! Hugging Face names, so checkpoints load and save 1:1, and loading fails on any missing or
//! unexpected tensor. [`families`] hands the three `model_type`s to the registry in
//! entangle-models; this crate sits between entangle-model (the runtime it implements) and
//! that registry.
//!
//! ```no_run
//! use entangle_model::{Placement, Registry, Weights};
//!
//! # fn main() -> anyhow::Result<()> {
//! let registry = Registry::new(entangle_llama::families());
//! let model = registry.load(std::path::Path::new("models/Llama-3.2-1B"), Placement::cpu())?;
//! let config = serde_json::json!({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
//!     "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 256});
//! let fresh = registry.build(&config, Weights::Fresh { seed: 42 }, Placement::cpu())?;
//! # Ok(()) }
//! ```

mod config;
#[cfg(test)]
mod fidelity;
mod model;
mod rope;

pub use config::{Config, RopeScaling, Variant};
pub use model::{Init, Llama};

use anyhow::{Context, Result};
use entangle_model::{copy_tensors, load_checkpoint, CausalLm, Family, Placement, Weights};

/// The families this crate implements, for the registry.
pub fn families() -> Vec<Family> {
    vec![
        Family { model_type: "llama", build: build_llama },
        Family { model_type: "mistral", build: build_mistral },
        Family { model_type: "qwen2", build: build_qwen2 },
    ]
}

fn build_llama(json: &serde_json::Value, weights: Weights, placement: Placement) -> Result<Box<dyn CausalLm>> {
    build(Variant::Llama, json, weights, placement)
}

fn build_mistral(json: &serde_json::Value, weights: Weights, placement: Placement) -> Result<Box<dyn CausalLm>> {
    build(Variant::Mistral, json, weights, placement)
}

fn build_qwen2(json: &serde_json::Value, weights: Weights, placement: Placement) -> Result<Box<dyn CausalLm>> {
    build(Variant::Qwen2, json, weights, placement)
}

/// A model of `variant` from `config.json` and `weights`; loading checks that every
/// parameter is given with its shape and that nothing else is.
pub fn build(
    variant: Variant,
    json: &serde_json::Value,
    weights: Weights,
    placement: Placement,
) -> Result<Box<dyn CausalLm>> {
    let config = Config::from_json(variant, json)?;
    let init = match weights {
        Weights::Fresh { seed } => Init::Fresh { seed },
        Weights::Checkpoint(_) | Weights::Tensors(_) => Init::Empty,
    };
    let model = Llama::new(json, config, placement, init)?;
    let report = match weights {
        Weights::Fresh { .. } => None,
        Weights::Checkpoint(checkpoint) => Some((
            load_checkpoint(model.var_store(), checkpoint, |n| model.ignored(n))?,
            format!("checkpoint {}", checkpoint.dir.display()),
        )),
        Weights::Tensors(tensors) => {
            Some((copy_tensors(model.var_store(), tensors, |n| model.ignored(n))?, "the given tensors".to_owned()))
        }
    };
    if let Some((report, source)) = report {
        report.check(&source).context("loading the weights")?;
    }
    Ok(Box::new(model))
}
