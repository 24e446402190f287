//! GGUF files, llama.cpp's model format, read into what a Hugging Face checkpoint holds: the
//! importer behind `entangle-infer import-gguf`.
//!
//! A GGUF file carries a model's configuration and tokenizer as metadata and its tensors
//! quantized in ggml's block formats. This crate parses the file (versions 2 and 3,
//! memory-mapped: [`GgufFile`], [`Header`], [`MetaValue`], [`TensorInfo`]), dequantizes tensors
//! to f32 ([`dequantize`]: F32, F16, BF16, Q4_0, Q4_1, Q8_0; any other [`GgmlType`] is one error
//! naming the tensor and the type), and builds the transformers view of a Llama
//! (`general.architecture = llama`, [`hf_model`]): `config.json`, `generation_config.json`,
//! `tokenizer.json` and `tokenizer_config.json` from a byte-level BPE vocabulary, and a
//! [`TensorPlan`] per tensor with its transformers name and shape, whose [`TensorPlan::read`]
//! undoes llama.cpp's q/k row permutation. Everything is checked before a tensor is read, so a
//! file we cannot import fails at once with one error. It has no tch: entangle-models turns the
//! planned tensors into a safetensors checkpoint with `entangle_checkpoint::write_checkpoint`.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let file = entangle_gguf::GgufFile::open(std::path::Path::new("model.gguf"))?;
//! let model = entangle_gguf::hf_model(&file.header)?;
//! println!("{}", model.config["num_hidden_layers"]);
//! for plan in &model.tensors {
//!     let values: Vec<f32> = plan.read(&file)?; // row-major in plan.shape
//!     println!("{} {:?} {}", plan.hf_name, plan.shape, values.len());
//! }
//! # Ok(()) }
//! ```

mod llama;
mod quant;
mod read;
mod tokenizer;

pub use llama::{hf_config, hf_model, hf_tensor_name, permute_rows, unpermute_rows, HfModel, LlamaDims, TensorPlan};
pub use quant::{dequantize, GgmlType, SUPPORTED};
pub use read::{GgufFile, Header, MetaValue, TensorInfo, DEFAULT_ALIGNMENT};
pub use tokenizer::{byte_alphabet, hf_tokenizer, HfTokenizer};
