//! Hugging Face model directories, the on-disk form of every model in a run.
//!
//! Each model of the study (base, aligned, the fine-tunes, a materialised merge) is a directory
//! in Hugging Face layout: `config.json`, weights in safetensors (one file, or shards with a
//! `model.safetensors.index.json`), and tokenizer files. This crate finds such a directory
//! ([`resolve`]: a local path, or a hub id fetched into the standard hub cache, [`HubSettings`]), opens it
//! without reading the weights ([`Checkpoint::open`] maps the files), hands out one tensor at a
//! time as a tch `Tensor` ([`Checkpoint::load`]), and writes new checkpoints atomically in a
//! form transformers loads unchanged ([`write_checkpoint`]). The model runtime, trainer and
//! subspace math all read and write weights through it.
//!
//! ```no_run
//! use entangle_checkpoint::{resolve, Checkpoint};
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = resolve("runs/tiny/models/aligned")?;
//! let ckpt = Checkpoint::open(&dir)?;
//! for info in ckpt.tensors() {
//!     println!("{} {:?} {:?}", info.name, info.dtype, info.shape);
//! }
//! let embed = ckpt.load("model.embed_tokens.weight", tch::Kind::Float)?;
//! # Ok(()) }
//! ```

mod dtype;
mod hub;
mod read;
mod resolve;
#[cfg(any(test, feature = "test-hub"))]
pub mod test_hub;
mod write;

pub use dtype::{dtype_of_kind, kind_of_dtype};
pub use read::{read_config, tensor_from_map, Checkpoint, TensorInfo};
pub use hub::HubSettings;
pub use resolve::{resolve, resolve_with};
pub use safetensors::Dtype;
pub use write::{write_checkpoint, WriteOptions, TOKENIZER_FILES};
