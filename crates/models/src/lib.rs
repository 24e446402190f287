//! The model families compiled into entangle, and the `entangle-infer` tool.
//!
//! Stages never name a model family: they ask [`registry`] to build whatever `config.json`
//! describes (entangle-train, entangle-eval, entangle-capture all take the registry from
//! here). Adding a family is one crate implementing `entangle_model::CausalLm` plus one line
//! in [`registry`]. [`load`] resolves a model reference (a directory or a hub id), builds the
//! model and loads its tokenizer; [`generation`] answers prompts with it, for the stages and the
//! tool alike. The [`infer`] module is the library side of the
//! `entangle-infer` binary: `info` (architecture, parameters, dtypes, tensors), `generate`
//! (prompts from arguments or a Parquet/JSONL file → Parquet), `logits` (last-token logits
//! and every layer's last-token hidden state → Parquet) and `import-gguf` (a llama.cpp GGUF
//! file as a checkpoint directory, with `entangle_import::import_gguf`, the converter of the
//! stage `import:<name>`).
//!
//! ```no_run
//! use entangle_model::Placement;
//!
//! # fn main() -> anyhow::Result<()> {
//! let loaded = entangle_models::load("runs/tiny/models/aligned", Placement::cpu())?;
//! println!("{} layers", loaded.model.dims().num_layers);
//! # Ok(()) }
//! ```

pub mod generation;
pub mod infer;

use std::path::PathBuf;

use anyhow::Result;
use entangle_model::{CausalLm, Placement, Registry, Tokenizer};

/// Every compiled-in model family, by `model_type`.
pub fn registry() -> Registry {
    let families = [
        entangle_llama::families(), // llama, mistral, qwen2
    ];
    Registry::new(families.into_iter().flatten())
}

/// A model with its tokenizer.
pub struct Loaded {
    /// The model directory (a hub id resolves to its cached snapshot).
    pub dir: PathBuf,
    pub model: Box<dyn CausalLm>,
    pub tokenizer: Tokenizer,
}

/// Loads the model and tokenizer of `reference` (a directory or a hub id `org/name[@rev]`).
pub fn load(reference: &str, placement: Placement) -> Result<Loaded> {
    let dir = entangle_checkpoint::resolve(reference)?;
    let model = registry().load(&dir, placement)?;
    let tokenizer = Tokenizer::from_dir(&dir)?;
    Ok(Loaded { dir, model, tokenizer })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_lists_every_family() {
        assert_eq!(registry().model_types(), ["llama", "mistral", "qwen2"]);
    }

    #[test]
    fn load_brings_model_and_tokenizer() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../llama/fixtures/qwen2");
        let loaded = load(dir, Placement::cpu()).unwrap();
        assert_eq!(loaded.model.dims().num_layers, 2);
        assert_eq!(loaded.model.dims().num_kv_heads, 1);
        assert_eq!(loaded.tokenizer.vocab_size(), 300);
        let Err(err) = load("./no/such/model", Placement::cpu()) else { panic!("a missing model loads") };
        let err = format!("{err:#}");
        assert!(err.contains("./no/such/model does not exist"), "{err}");
    }
}
