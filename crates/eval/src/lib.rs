//! The evaluator: every model of the study — base, aligned, each fine-tune and every projected
//! merge — scored for harmfulness and utility, with 95% intervals.
//!
//! Harmfulness: greedy generation on the harmful benchmark, judged by the [`keyword`] judge
//! (refusal phrases), an [`llm`] judge (any OpenAI-compatible endpoint, 1–5 rubric), or a local
//! judge model. Utility: k-shot answers read with [`answers`] (flexible: last number; strict:
//! after `####`). Summaries carry percentile-bootstrap intervals ([`stats`]).

pub mod answers;
pub mod keyword;
pub mod llm;
pub mod stats;
