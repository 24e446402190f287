//! The model runtime: everything the study does with a language model, over libtorch (tch).
//!
//! Every stage that runs a model — pretraining and fine-tuning, evaluation, activation capture,
//! `entangle-infer` — goes through this crate. It defines the [`CausalLm`] trait that model
//! family crates (entangle-llama) implement: a batched forward pass with an attention mask,
//! position ids, an external [`KvCache`] and every layer's hidden states on request, over
//! parameters kept in a tch `VarStore` under their Hugging Face names, so checkpoints load and
//! save 1:1 ([`CausalLm::save`], [`load_checkpoint`], [`copy_tensors`]). Around it: the
//! [`Registry`] of families keyed by `config.json`'s `model_type`; where a model runs
//! ([`Placement`]: `auto | cpu | cuda:N`, f32 / bf16 / f16); the [`Tokenizer`] with special
//! tokens and a [`ChatTemplate`] rendered as transformers renders it; [`PromptFormat`]s
//! (instruction / chat / plain); batched [`generate`] (left padding, greedy or seeded top-p
//! sampling, stop strings, EOS); [`last_token_states`], the hidden states at each prompt's
//! last real token; and teacher forcing ([`Sequence`], [`collate`], [`target_losses`],
//! [`response_nll`]) for training and reference-answer likelihoods. The registry of
//! compiled-in families lives in entangle-models, one crate up.
//!
//! ```no_run
//! use entangle_model::{generate, GenerateOptions, Placement, PromptFormat, Registry, Tokenizer};
//! use indicatif::ProgressBar;
//!
//! # fn main() -> anyhow::Result<()> {
//! # let registry = Registry::new([]);
//! let dir = std::path::Path::new("runs/tiny/models/aligned");
//! let model = registry.load(dir, Placement::parse("auto", "auto")?)?;
//! let tokenizer = Tokenizer::from_dir(dir)?;
//! let format = PromptFormat::Instruction;
//! let prompts = vec![format.encode(&tokenizer, "Name three primes.")?];
//! let mut options = GenerateOptions::greedy(64, &tokenizer);
//! options.stop_strings = format.stop_strings();
//! let responses = generate(model.as_ref(), &tokenizer, &prompts, &options, &ProgressBar::hidden())?;
//! println!("{}", responses[0].text);
//! # Ok(()) }
//! ```

mod attention;
mod batch;
mod cache;
mod causal_lm;
mod chat;
mod device;
mod generate;
mod hidden;
mod linear;
mod packing;
mod prompt;
mod registry;
mod teacher;
mod tokenizer;
pub mod tolerance;
mod weights;

pub use attention::{attend, attention_mask, with_pads};
pub use batch::{position_ids, Batch};
pub use cache::KvCache;
pub use causal_lm::{CausalLm, Dims, ForwardInput, ForwardOutput, Logits};
pub use chat::{ChatTemplate, Message};
pub use device::{kind_name, parse_device, parse_kind, Placement};
pub use generate::{generate, GenerateOptions, Generation, Sampling, StopReason};
pub use hidden::{last_token_states, LastTokenStates};
pub use linear::linear;
pub use packing::{packed, unpacked, Packing};
pub use prompt::{Example, PromptFormat, INSTRUCTION_MARKER, RESPONSE_MARKER};
pub use registry::{Build, Family, Registry, Weights};
pub use teacher::{collate, cross_entropy, response_nll, target_logits, target_losses, Sequence, TargetBatch};
pub use tokenizer::Tokenizer;
pub use weights::{copy_tensors, load_checkpoint, LoadReport};
