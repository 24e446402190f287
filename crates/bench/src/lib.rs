//! The entangle side of `cargo xtask bench`: the throughput of the model runtime, the trainer
//! and the evaluator's generation path, measured in-process on the inputs that
//! `bench/make_inputs.py` writes, while the Python/transformers baselines in `bench/` do the
//! same work on the same checkpoint, tokens and thread count.
//!
//! [`model`] times one batched forward pass and greedy generation of a fixed number of tokens;
//! [`train`] runs `entangle_train::train` and reads its loss curve's clock; [`eval`] runs a
//! harmful-benchmark pass as `entangle-eval` does (instruction format, batched greedy
//! generation with the format's stop strings, keyword judge) and writes the prompts and
//! settings it used for the baseline to repeat. Timing leaves out process start-up and model
//! loading. The binary `entangle-bench` prints each result as one JSON line, which xtask reads
//! next to the baseline's line. The subspace benchmark runs the stage binaries themselves, so it
//! has no code here. Benchmarks measure speed; they are never tests.
//!
//! ```no_run
//! use entangle_bench::{model, ModelOptions};
//!
//! # fn main() -> anyhow::Result<()> {
//! let options = ModelOptions {
//!     model: "target/bench/inputs/llama-20m".into(),
//!     prompts: "target/bench/inputs/prompts.json".into(),
//!     threads: 2,
//!     new_tokens: 64,
//!     repeats: 3,
//! };
//! println!("{:.0} generated tokens/s", model(&options)?.generation_tokens_per_s);
//! # Ok(()) }
//! ```

mod eval;
mod model;
mod train;

use std::path::Path;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use entangle_model::Placement;
use entangle_models::Loaded;
use serde::de::DeserializeOwned;

pub use eval::{eval, EvalOptions, EvalResult};
pub use model::{model, ModelOptions, ModelResult};
pub use train::{train, TrainOptions, TrainResult};

/// Uses `threads` threads for intra-op parallelism (the baselines call `torch.set_num_threads`),
/// then loads the model directory `dir` on the CPU in f32.
fn load_with_threads(dir: &Path, threads: usize) -> Result<Loaded> {
    ensure!(threads > 0, "the thread count must be at least 1");
    tch::set_num_threads(threads as i32);
    entangle_models::load(&dir.to_string_lossy(), Placement::cpu())
}

/// Field `field` of the JSON object in the file at `path`.
fn read_field<T: DeserializeOwned>(path: &Path, field: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut value: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let field_value = value.get_mut(field).with_context(|| format!("{} has no field `{field}`", path.display()))?.take();
    serde_json::from_value(field_value).with_context(|| format!("reading field `{field}` of {}", path.display()))
}

/// Runs `work` once to warm up, then `repeats` times: the fastest run's seconds and the last
/// result.
fn fastest<T>(repeats: usize, mut work: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut result = work()?;
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let started = Instant::now();
        result = work()?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok((best, result))
}
