//! The contract every model family implements: a causal language model over a batch, with
//! an external key/value cache and the hidden states of every layer on request.

use std::path::Path;

use anyhow::{Context, Result};
use entangle_checkpoint::{write_checkpoint, WriteOptions};
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::{kind_name, KvCache};

/// Which positions the forward pass computes logits for.
#[derive(Debug, Clone, Copy)]
pub enum Logits<'a> {
    /// Every position.
    All,
    /// The last position only: what generation and capture need; skips most of the output
    /// projection.
    Last,
    /// The positions where this `[batch, new]` bool tensor is true, in row-major order: what a
    /// loss over some tokens needs (training, answer NLL); skips the output projection elsewhere.
    At(&'a Tensor),
}

/// One forward pass over a batch of `new` tokens per sequence.
#[derive(Debug)]
pub struct ForwardInput<'a> {
    /// Token ids, `[batch, new]` int64.
    pub input_ids: &'a Tensor,
    /// `[batch, cached + new]`, 1 for a real token and 0 for padding; `None` when every token
    /// (cached and new) is real.
    pub attention_mask: Option<&'a Tensor>,
    /// Position of each new token, `[batch, new]` int64; `None` numbers them from the cache
    /// length on. With padding, pass [`position_ids`](crate::position_ids) of the mask, as
    /// transformers' `generate` does, so a padded sequence computes what it would alone.
    pub position_ids: Option<&'a Tensor>,
    pub logits: Logits<'a>,
    /// Whether to return every layer's hidden states.
    pub hidden_states: bool,
}

impl<'a> ForwardInput<'a> {
    /// Unpadded tokens, logits at every position, no hidden states.
    pub fn tokens(input_ids: &'a Tensor) -> ForwardInput<'a> {
        ForwardInput { input_ids, attention_mask: None, position_ids: None, logits: Logits::All, hidden_states: false }
    }
}

/// What a forward pass returns.
#[derive(Debug)]
pub struct ForwardOutput {
    /// `[batch, new, vocab]` for [`Logits::All`], `[batch, 1, vocab]` for [`Logits::Last`],
    /// `[selected, vocab]` for [`Logits::At`], in the model's kind.
    pub logits: Tensor,
    /// When asked for, `num_layers + 1` tensors `[batch, new, hidden]` exactly as transformers'
    /// `output_hidden_states`: the embeddings, the output of each decoder layer but the last,
    /// and the last layer's output after the final norm. Zeros at padding positions, as are
    /// their logits, which a family need not compute. Empty otherwise.
    pub hidden_states: Vec<Tensor>,
}

/// The sizes of a decoder-only transformer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    pub num_layers: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
}

/// A causal language model whose parameters live in a tch [`VarStore`] under their Hugging
/// Face names, so the store loads from and saves to HF checkpoints 1:1. The model itself is
/// immutable during inference; generation state lives in a [`KvCache`].
pub trait CausalLm: Send {
    /// The `config.json` the model was built from.
    fn config(&self) -> &serde_json::Value;

    fn dims(&self) -> Dims;

    /// The parameters, named by their HF keys (tied weights appear once). Trainable unless
    /// frozen; wrap inference in `tch::no_grad`.
    fn var_store(&self) -> &VarStore;

    fn var_store_mut(&mut self) -> &mut VarStore;

    /// Runs the model over `input`. With a cache, the new tokens attend to the cached
    /// positions too, and their keys and values are appended to it.
    fn forward(&self, input: &ForwardInput, cache: Option<&mut KvCache>) -> Result<ForwardOutput>;

    fn device(&self) -> Device {
        self.var_store().device()
    }

    fn kind(&self) -> Kind {
        self.var_store().kind()
    }

    /// An empty cache for this model.
    fn new_cache(&self) -> KvCache {
        KvCache::new(self.dims().num_layers)
    }

    /// Number of parameters (tied weights counted once).
    fn num_parameters(&self) -> i64 {
        self.var_store().variables().values().map(|t| t.numel() as i64).sum()
    }

    /// Writes the model as a Hugging Face checkpoint at `dir` (atomically, replacing it): its
    /// config with the dtype of the weights, every parameter in the model's kind, and the
    /// tokenizer files of `tokenizer_from` when given. transformers loads it unchanged.
    fn save(&self, dir: &Path, tokenizer_from: Option<&Path>) -> Result<()> {
        let mut config = self.config().clone();
        let dtype = kind_name(self.kind())?;
        if let Some(fields) = config.as_object_mut() {
            fields.insert("dtype".to_owned(), dtype.into());
            if fields.contains_key("torch_dtype") {
                fields.insert("torch_dtype".to_owned(), dtype.into());
            }
        }
        let mut tensors: Vec<(String, Tensor)> = self.var_store().variables().into_iter().collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let tensors = tensors.into_iter().map(|(name, t)| Ok((name, t.detach())));
        let options = WriteOptions { copy_files_from: tokenizer_from, ..WriteOptions::default() };
        write_checkpoint(dir, &config, tensors, &options)
            .with_context(|| format!("saving the model to {}", dir.display()))
    }
}
