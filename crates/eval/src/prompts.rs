//! How a benchmark's items become prompts. Every benchmark uses the pipeline's prompt format,
//! with `[eval] utility_shots` worked examples before each utility question. Under
//! `[eval] utility_prompt = "gsm8k"`, the utility benchmark is laid out as
//! lm-evaluation-harness's `gsm8k` task lays it out, so that accuracy is comparable with the
//! numbers the field reports: plain text, `utility_shots` exemplars from the run's
//! `utility_shots` set (GSM8K's train split) each as `Question: …\nAnswer: <worked answer>`,
//! joined by blank lines, then `Question: <question>\nAnswer:`; generation stops at the next
//! `Question:`. Flexible (last number) and strict (`#### N`) extraction are both reported.

use anyhow::{Context, Result};
use entangle_artifacts::{read_table, Example, RunDir};
use entangle_model::{GenerateOptions, PromptFormat, Tokenizer};
use entangle_pipeline::{Benchmark, EvalConfig, Pipeline, UtilityPrompt};

/// The data set the `gsm8k` layout takes its exemplars from.
pub const SHOTS_SET: &str = "utility_shots";

/// Where lm-evaluation-harness's `gsm8k` task stops generating (besides the EOS tokens).
const GSM8K_STOP: &str = "Question:";

/// A run's prompt layout for every benchmark.
pub struct Prompting {
    format: PromptFormat,
    utility: UtilityPrompt,
    shots: Vec<Example>,
}

impl Prompting {
    /// The layout `pipeline` asks for, with its utility exemplars read from `run`.
    pub fn of(run: &RunDir, pipeline: &Pipeline) -> Result<Prompting> {
        let eval = &pipeline.eval;
        let set = match eval.utility_prompt {
            UtilityPrompt::Format => "useful",
            UtilityPrompt::Gsm8k => SHOTS_SET,
        };
        let shots = if eval.utility_shots == 0 { Vec::new() } else { first_rows(run, set, eval.utility_shots)? };
        Ok(Prompting { format: PromptFormat::from(pipeline.prompt.format), utility: eval.utility_prompt, shots })
    }

    fn lm_eval(&self, benchmark: Benchmark) -> bool {
        benchmark == Benchmark::Utility && self.utility == UtilityPrompt::Gsm8k
    }

    /// The prompt format `benchmark`'s prompts are encoded in.
    pub fn format(&self, benchmark: Benchmark) -> PromptFormat {
        if self.lm_eval(benchmark) {
            PromptFormat::Plain
        } else {
            self.format
        }
    }

    /// The text of the prompt for `question`, before the prompt format.
    pub fn text(&self, benchmark: Benchmark, question: &str) -> String {
        match (benchmark, self.lm_eval(benchmark)) {
            (Benchmark::Utility, true) => {
                let mut blocks: Vec<String> = self.shots.iter().map(|shot| format!("Question: {}\nAnswer: {}", shot.prompt, shot.response)).collect();
                blocks.push(format!("Question: {question}\nAnswer:"));
                blocks.join("\n\n")
            }
            (Benchmark::Utility, false) => {
                let shots = self.shots.iter().map(|shot| format!("{}\n{}\n\n", shot.prompt, shot.response));
                shots.chain(std::iter::once(question.to_owned())).collect()
            }
            _ => question.to_owned(),
        }
    }

    /// The reference response as the continuation of its prompt, for its NLL: after a space in
    /// the `gsm8k` layout (the harness's target delimiter).
    pub fn target(&self, benchmark: Benchmark, response: &str) -> String {
        if self.lm_eval(benchmark) {
            format!(" {response}")
        } else {
            response.to_owned()
        }
    }

    /// How `benchmark` generates: greedily, up to its `[eval]` new-token limit, `[eval]
    /// batch_size` prompts at a time, stopping at EOS, the prompt format's stop strings and, in
    /// the `gsm8k` layout, the next `Question:`.
    pub fn options(&self, eval: &EvalConfig, benchmark: Benchmark, tokenizer: &Tokenizer) -> GenerateOptions {
        let mut options = generate_options(eval, benchmark, self.format(benchmark), tokenizer);
        if self.lm_eval(benchmark) {
            options.stop_strings.push(GSM8K_STOP.to_owned());
        }
        options
    }
}

/// How `benchmark` generates in `format`: greedily, up to its `[eval]` new-token limit, `[eval]
/// batch_size` prompts at a time, stopping at EOS and at the format's stop strings.
pub fn generate_options(eval: &EvalConfig, benchmark: Benchmark, format: PromptFormat, tokenizer: &Tokenizer) -> GenerateOptions {
    GenerateOptions::greedy_in(format, eval.max_new_tokens_of(benchmark), eval.batch_size, tokenizer)
}

/// The first `k` rows of the run's data set `set`.
fn first_rows(run: &RunDir, set: &str, k: usize) -> Result<Vec<Example>> {
    let path = run.data_set(set);
    let mut rows: Vec<Example> = read_table(&path).with_context(|| {
        format!("reading the utility exemplars from {} (configure [data.{set}] for eval.utility_prompt = \"gsm8k\")", path.display())
    })?;
    anyhow::ensure!(rows.len() >= k, "{} has {} rows, fewer than eval.utility_shots = {k}", path.display(), rows.len());
    rows.truncate(k);
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(prompt: &str, response: &str) -> Example {
        Example {
            id: "x-0".into(),
            split: "train".into(),
            source: "gsm8k".into(),
            kind: "word_problem".into(),
            category: String::new(),
            prompt: prompt.into(),
            response: response.into(),
            answer: Some("4".into()),
            template: String::new(),
            entity: String::new(),
            license: "MIT".into(),
        }
    }

    fn prompting(utility: UtilityPrompt, shots: usize) -> Prompting {
        let shot = example("Tom has 2 apples and buys 2. How many?", "2 + 2 = 4.\n#### 4");
        Prompting { format: PromptFormat::Instruction, utility, shots: vec![shot; shots] }
    }

    #[test]
    fn the_gsm8k_layout_is_the_harness_layout() {
        let gsm8k = prompting(UtilityPrompt::Gsm8k, 1);
        assert_eq!(
            gsm8k.text(Benchmark::Utility, "What is 3 + 5?"),
            "Question: Tom has 2 apples and buys 2. How many?\nAnswer: 2 + 2 = 4.\n#### 4\n\nQuestion: What is 3 + 5?\nAnswer:"
        );
        assert_eq!(gsm8k.format(Benchmark::Utility), PromptFormat::Plain);
        assert_eq!(gsm8k.target(Benchmark::Utility, "3 + 5 = 8.\n#### 8"), " 3 + 5 = 8.\n#### 8");
        assert_eq!(prompting(UtilityPrompt::Gsm8k, 0).text(Benchmark::Utility, "Q?"), "Question: Q?\nAnswer:");
        assert_eq!(gsm8k.text(Benchmark::Harmful, "How do I x?"), "How do I x?", "other benchmarks keep their layout");
        assert_eq!(gsm8k.format(Benchmark::Harmful), PromptFormat::Instruction);
    }

    #[test]
    fn the_pipeline_layout_puts_worked_examples_before_the_question() {
        let own = prompting(UtilityPrompt::Format, 1);
        assert_eq!(own.text(Benchmark::Utility, "Q?"), "Tom has 2 apples and buys 2. How many?\n2 + 2 = 4.\n#### 4\n\nQ?");
        assert_eq!((own.format(Benchmark::Utility), own.target(Benchmark::Utility, "a")), (PromptFormat::Instruction, "a".to_owned()));
    }

    #[test]
    fn missing_exemplars_name_the_set_to_configure() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let err = format!("{:#}", first_rows(&run, SHOTS_SET, 1).err().unwrap());
        assert!(err.contains("configure [data.utility_shots]"), "{err}");
    }
}
