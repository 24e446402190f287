//! The evaluator: every model of the study — base, aligned, each fine-tune and every projected
//! merge — scored for harmfulness and utility, with 95% intervals.
//!
//! `entangle-eval --run DIR [--checkpoint SPEC]…` evaluates [`checkpoints`]: models of the run
//! by name, or merges such as `useful:topk:orth:0.25` built in memory from the cached SVD. On
//! each benchmark of the run (`harmful`, `utility`, `overrefusal`, from the prepared data sets)
//! it generates greedily in batches with the pipeline's prompt format and stop strings (utility
//! questions optionally as lm-evaluation-harness's `gsm8k` lays them out, see [`prompts`]), then
//! judges: the keyword judge (`entangle-refusals`: refusal phrases, degenerate responses) always, an [`llm`] judge (any
//! OpenAI-compatible endpoint, 1–5 rubric, cached) and a local judge model ([`guard`]) when
//! configured. Utility answers are read with [`answers`] (flexible: last number, or for a word
//! answer what follows "the answer is"; strict: after `####`), and the reference responses' per-token NLL is measured teacher-forced. Results go
//! to `eval/responses.parquet`, and [`summary`] turns them into `eval/summary.parquet` with
//! bootstrap intervals (`entangle-stats`).
//!
//! ```no_run
//! use entangle_artifacts::RunDir;
//!
//! # fn main() -> anyhow::Result<()> {
//! let run = RunDir::new(std::path::Path::new("runs/tiny"));
//! let checkpoints = vec!["aligned".to_owned(), "useful:topk:orth:0.25".to_owned()];
//! let options = entangle_eval::Options { checkpoints, ..Default::default() };
//! entangle_eval::run(&run, &options, &entangle_models::registry())?;
//! # Ok(()) }
//! ```

pub mod answers;
pub mod checkpoints;
pub mod guard;
pub mod llm;
pub mod prompts;
mod run;
pub mod summary;
#[cfg(test)]
mod test_server;

pub use prompts::generate_options;
pub use run::{run, Options};
