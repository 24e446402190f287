//! `[eval]`: which checkpoints are scored for harmfulness and utility, with which generation
//! settings and judges (METHOD.md, evaluation).

use serde::{Deserialize, Serialize};

/// A harmfulness judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeKind {
    /// Refusal-substring matching: refusal rate and attack success rate.
    Keyword,
    /// An OpenAI-compatible chat-completions endpoint scoring 1–5 (`[eval.llm]`).
    Llm,
    /// A local judge model run by our runtime (`[eval.guard]`).
    Model,
}

/// A benchmark every checkpoint is scored on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Benchmark {
    /// Harmful requests: refusal rate, attack success rate and the judges' verdicts.
    Harmful,
    /// Questions with reference answers: accuracy and the reference answers' NLL.
    Utility,
    /// Benign requests with alarming words: over-refusal rate.
    Overrefusal,
}

impl Benchmark {
    /// Every benchmark, in the order they are run and reported.
    pub const ALL: [Benchmark; 3] = [Benchmark::Harmful, Benchmark::Utility, Benchmark::Overrefusal];

    /// Its name in the `benchmark` column of `eval/responses.parquet` and `eval/summary.parquet`.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::Harmful => "harmful",
            Benchmark::Utility => "utility",
            Benchmark::Overrefusal => "overrefusal",
        }
    }

    /// The prepared data set it reads (`data/<set>.parquet`).
    pub fn data_set(self) -> &'static str {
        match self {
            Benchmark::Harmful => "eval_harmful",
            Benchmark::Utility => "eval_utility",
            Benchmark::Overrefusal => "eval_overrefusal",
        }
    }
}

/// The data set lm-evaluation-harness's `gsm8k` layout takes its exemplars from (`[data.utility_shots]`,
/// GSM8K's train split).
pub const UTILITY_SHOTS: &str = "utility_shots";

/// How utility questions are laid out (`[eval] utility_prompt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UtilityPrompt {
    /// The pipeline's prompt format, after `utility_shots` rows of the `useful` set.
    #[default]
    Format,
    /// lm-evaluation-harness's `gsm8k` task: plain `Question: …\nAnswer:` text after
    /// `utility_shots` exemplars of the `utility_shots` set, stopping at the next `Question:`.
    Gsm8k,
}

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Checkpoints scored by `entangle-eval` without `--checkpoint`: model names of the run and
    /// merge specs (`useful:topk:orth:0.25`). Empty: `base`, `aligned`, every fine-tune of
    /// `[projection]`, and every merge the projection section defines.
    pub checkpoints: Vec<String>,
    /// Whether the default list includes the projection merges.
    pub merges: bool,
    /// Greedy decoding stops after this many new tokens (or at EOS or a prompt-format marker).
    pub max_new_tokens: usize,
    /// The same limit for the utility benchmark alone (`max_new_tokens` when unset): a worked
    /// answer needs more tokens than a refusal or a compliance needs to show itself.
    pub utility_max_new_tokens: Option<usize>,
    /// Prompts generated together.
    pub batch_size: usize,
    /// Judges of the harmful benchmark; the keyword judge always runs.
    pub judges: Vec<JudgeKind>,
    /// Worked examples shown before each utility question (k-shot).
    pub utility_shots: usize,
    /// How utility questions and their examples are laid out.
    pub utility_prompt: UtilityPrompt,
    /// Score at most this many items of each benchmark (all when unset).
    pub limit: Option<usize>,
    pub llm: Option<LlmJudgeConfig>,
    pub guard: Option<ModelJudgeConfig>,
}

impl EvalConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        for (field, value) in [
            ("max_new_tokens", Some(self.max_new_tokens)),
            ("utility_max_new_tokens", self.utility_max_new_tokens),
            ("batch_size", Some(self.batch_size)),
            ("limit", self.limit),
        ] {
            anyhow::ensure!(value != Some(0), "eval.{field}: expected at least 1");
        }
        match (self.judges.contains(&JudgeKind::Llm), &self.llm) {
            (true, None) => anyhow::bail!("eval.judges: llm needs an [eval.llm] table (base_url, model)"),
            (_, Some(llm)) => llm.validate()?,
            _ => {}
        }
        match (self.judges.contains(&JudgeKind::Model), &self.guard) {
            (true, None) => anyhow::bail!("eval.judges: model needs an [eval.guard] table (model, template)"),
            (_, Some(guard)) => guard.validate()?,
            _ => {}
        }
        Ok(())
    }

    /// Checks that the LLM judge's key is in the environment when the judge is used and needs
    /// one; `cargo xtask reproduce` (and its `--dry-run`) checks it before the first stage.
    pub fn check_judge_key(&self) -> anyhow::Result<()> {
        let Some(name) = self.llm.as_ref().and_then(|llm| llm.api_key_env.as_ref()) else { return Ok(()) };
        if self.judges.contains(&JudgeKind::Llm) && std::env::var(name).map_or(true, |key| key.is_empty()) {
            anyhow::bail!("eval.llm.api_key_env: the environment variable {name} holding the judge's API key is not set");
        }
        Ok(())
    }

    /// The new-token limit of `benchmark`.
    pub fn max_new_tokens_of(&self, benchmark: Benchmark) -> usize {
        match (benchmark, self.utility_max_new_tokens) {
            (Benchmark::Utility, Some(limit)) => limit,
            _ => self.max_new_tokens,
        }
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            checkpoints: Vec::new(),
            merges: true,
            max_new_tokens: 512,
            utility_max_new_tokens: None,
            batch_size: 16,
            judges: vec![JudgeKind::Keyword],
            utility_shots: 1,
            utility_prompt: UtilityPrompt::Format,
            limit: None,
            llm: None,
            guard: None,
        }
    }
}

/// `[eval.llm]`: an OpenAI-compatible chat-completions endpoint used as judge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmJudgeConfig {
    /// Base URL, e.g. `https://api.openai.com/v1`; requests go to `<base_url>/chat/completions`.
    pub base_url: String,
    /// The judge model, e.g. `gpt-4o-mini` (the paper's).
    pub model: String,
    /// Name of the environment variable that holds the API key (the key itself never appears
    /// in a pipeline file, log or artifact).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Requests in flight at once.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Retries after a 429, a 5xx or a transport error.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First back-off; doubled at each retry.
    #[serde(default = "default_backoff_s")]
    pub backoff_s: f64,
}

impl LlmJudgeConfig {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.base_url.starts_with("http://") || self.base_url.starts_with("https://"),
            "eval.llm.base_url: expected an http:// or https:// URL, got {:?}",
            self.base_url
        );
        anyhow::ensure!(!self.model.trim().is_empty(), "eval.llm.model: expected the judge model's name");
        anyhow::ensure!(self.api_key_env.as_ref().is_none_or(|name| !name.is_empty()), "eval.llm.api_key_env: expected a variable name");
        anyhow::ensure!(self.concurrency >= 1, "eval.llm.concurrency: expected at least 1");
        crate::check_number("eval.llm.timeout_s", self.timeout_s, self.timeout_s > 0.0, "seconds > 0")?;
        crate::check_number("eval.llm.backoff_s", self.backoff_s, self.backoff_s >= 0.0, "seconds ≥ 0")
    }
}

impl ModelJudgeConfig {
    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.model.trim().is_empty(), "eval.guard.model: expected a model directory or hub id");
        anyhow::ensure!(
            self.template.contains("{instruction}") && self.template.contains("{response}"),
            "eval.guard.template: expected the placeholders {{instruction}} and {{response}}"
        );
        anyhow::ensure!(!self.unsafe_word.is_empty(), "eval.guard.unsafe_word: expected a word");
        anyhow::ensure!(self.max_new_tokens >= 1, "eval.guard.max_new_tokens: expected at least 1");
        Ok(())
    }
}

fn default_concurrency() -> usize {
    4
}
fn default_timeout_s() -> f64 {
    60.0
}
fn default_max_retries() -> u32 {
    5
}
fn default_backoff_s() -> f64 {
    1.0
}

/// `[eval.guard]`: a local judge model (for example a guard model) that reads each
/// (instruction, response) pair in its prompt template and answers whether it is unsafe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelJudgeConfig {
    /// Local directory or hub id of the judge model.
    pub model: String,
    /// The judge's prompt, with `{instruction}` and `{response}` placeholders.
    pub template: String,
    /// The pair is judged harmful when the judge's answer contains this word (case-insensitive)
    /// and not the `safe_word` first.
    #[serde(default = "default_unsafe_word")]
    pub unsafe_word: String,
    #[serde(default = "default_max_new_tokens_guard")]
    pub max_new_tokens: usize,
}

fn default_unsafe_word() -> String {
    "unsafe".to_owned()
}
fn default_max_new_tokens_guard() -> usize {
    10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_utility_limit_applies_to_the_utility_benchmark_alone() {
        let eval: EvalConfig = toml::from_str("max_new_tokens = 64\nutility_max_new_tokens = 256\n").unwrap();
        assert_eq!(Benchmark::ALL.map(|b| eval.max_new_tokens_of(b)), [64, 256, 64]);
        let eval: EvalConfig = toml::from_str("max_new_tokens = 64\n").unwrap();
        assert_eq!(eval.max_new_tokens_of(Benchmark::Utility), 64);
    }
}
