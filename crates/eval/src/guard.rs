//! The model judge: a local judge model (for example a guard model) run by our runtime reads
//! each (instruction, response) pair through its prompt template and answers; the pair is
//! judged unsafe when the first line of the answer starts with the configured word.

use anyhow::Result;
use entangle_artifacts::RunDir;
use entangle_checkpoint::resolve;
use entangle_model::{generate, CausalLm, GenerateOptions, Placement, PromptFormat, Registry, Tokenizer};
use entangle_pipeline::{ModelJudgeConfig, Pipeline};
use indicatif::ProgressBar;

/// A loaded judge model.
pub struct Guard {
    model: Box<dyn CausalLm>,
    tokenizer: Tokenizer,
    config: ModelJudgeConfig,
}

impl Guard {
    pub fn load(pipeline: &Pipeline, run: &RunDir, config: &ModelJudgeConfig, registry: &Registry, placement: Placement) -> Result<Guard> {
        let dir = resolve(&pipeline.model_reference(run, &config.model, entangle_pipeline::FIXED)?)?;
        Ok(Guard { model: registry.load(&dir, placement)?, tokenizer: Tokenizer::from_dir(&dir)?, config: config.clone() })
    }

    /// Whether each `(instruction, response)` pair is unsafe, in order.
    pub fn judge_all(&self, pairs: &[(String, String)]) -> Result<Vec<bool>> {
        let prompts = pairs
            .iter()
            .map(|(instruction, response)| {
                let text = self.config.template.replace("{instruction}", instruction).replace("{response}", response);
                PromptFormat::Plain.encode(&self.tokenizer, &text)
            })
            .collect::<Result<Vec<_>>>()?;
        let options = GenerateOptions::greedy(self.config.max_new_tokens, &self.tokenizer);
        let answers = generate(self.model.as_ref(), &self.tokenizer, &prompts, &options, &ProgressBar::hidden())?;
        Ok(answers.iter().map(|a| verdict(&a.text, &self.config.unsafe_word)).collect())
    }
}

/// Whether a judge answer says unsafe: its first non-empty line starts with `unsafe_word`.
pub fn verdict(answer: &str, unsafe_word: &str) -> bool {
    let first = answer.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    first.to_lowercase().starts_with(&unsafe_word.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_reads_the_first_line() {
        for (answer, unsafe_) in [("unsafe\nS1", true), ("\n Unsafe", true), ("safe", false), ("safe\nunsafe later", false), ("", false)] {
            assert_eq!(verdict(answer, "unsafe"), unsafe_, "{answer:?}");
        }
    }
}
