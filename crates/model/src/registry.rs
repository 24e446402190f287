//! The registry of model families: `config.json`'s `model_type` → the function that builds
//! that family's [`CausalLm`].

use std::path::Path;

use anyhow::{Context, Result};
use entangle_checkpoint::Checkpoint;
use tch::Tensor;

use crate::{CausalLm, Placement};

/// Where a model's parameter values come from.
pub enum Weights<'a> {
    /// Fresh random values, initialised as transformers does, from this seed.
    Fresh { seed: i64 },
    /// Every parameter from an open checkpoint.
    Checkpoint(&'a Checkpoint),
    /// Every parameter from tensors made in memory (e.g. merged weights), by HF name.
    Tensors(Box<dyn Iterator<Item = Result<(String, Tensor)>> + 'a>),
}

/// Builds a model of one family from its `config.json`, weights and placement.
pub type Build = fn(config: &serde_json::Value, weights: Weights, placement: Placement) -> Result<Box<dyn CausalLm>>;

/// A model family: the `model_type` it handles and its builder.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub model_type: &'static str,
    pub build: Build,
}

/// The model families a program knows, looked up by `model_type`.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    families: Vec<Family>,
}

impl Registry {
    pub fn new(families: impl IntoIterator<Item = Family>) -> Registry {
        Registry { families: families.into_iter().collect() }
    }

    /// The supported `model_type`s, sorted.
    pub fn model_types(&self) -> Vec<&'static str> {
        let mut types: Vec<_> = self.families.iter().map(|f| f.model_type).collect();
        types.sort_unstable();
        types
    }

    /// The family of `config`, by its `model_type`; an unknown type is an error listing the
    /// supported ones.
    pub fn family(&self, config: &serde_json::Value) -> Result<&Family> {
        let model_type = config.get("model_type").and_then(|t| t.as_str()).context("config.json has no model_type")?;
        self.families.iter().find(|f| f.model_type == model_type).with_context(|| {
            format!("unsupported model_type `{model_type}`; supported: {}", self.model_types().join(", "))
        })
    }

    /// Builds `config`'s model from `weights`.
    pub fn build(
        &self,
        config: &serde_json::Value,
        weights: Weights,
        placement: Placement,
    ) -> Result<Box<dyn CausalLm>> {
        (self.family(config)?.build)(config, weights, placement)
    }

    /// Loads the model of checkpoint directory `dir`.
    pub fn load(&self, dir: &Path, placement: Placement) -> Result<Box<dyn CausalLm>> {
        let checkpoint = Checkpoint::open(dir)?;
        self.build(&checkpoint.config, Weights::Checkpoint(&checkpoint), placement)
            .with_context(|| format!("loading the model in {}", dir.display()))
    }
}
