//! Generation that stages share: responses to prompts in a prompt format, as `GeneratedText`
//! rows (entangle-prepare writes the `[data.respond]` model's answers with it, the
//! `entangle-infer generate` tool its table), and small helpers for messages.

use anyhow::{Context, Result};
use entangle_artifacts::GeneratedText;
use entangle_model::{generate, GenerateOptions, PromptFormat, Tokenizer};

use crate::Loaded;

/// Generates a response to each prompt, shown to the model in `format`.
pub fn generated_texts(
    loaded: &Loaded,
    prompts: &[String],
    format: PromptFormat,
    options: &GenerateOptions,
) -> Result<Vec<GeneratedText>> {
    let encoded = encode_all(&loaded.tokenizer, prompts, format)?;
    let bar = entangle_artifacts::progress_bar(prompts.len() as u64, "prompts");
    let generations = generate(loaded.model.as_ref(), &loaded.tokenizer, &encoded, options, &bar)?;
    bar.finish_and_clear();
    Ok(prompts
        .iter()
        .zip(&encoded)
        .zip(generations)
        .enumerate()
        .map(|(item, ((prompt, ids), generation))| GeneratedText {
            item: item as u64,
            prompt: prompt.clone(),
            format: format.name().to_owned(),
            response: generation.text,
            stop_reason: generation.stop_reason.as_str().to_owned(),
            prompt_tokens: ids.len() as u64,
            new_tokens: generation.token_ids.len() as u64,
        })
        .collect())
}

/// Each prompt encoded in `format`.
pub(crate) fn encode_all(tokenizer: &Tokenizer, prompts: &[String], format: PromptFormat) -> Result<Vec<Vec<u32>>> {
    prompts
        .iter()
        .enumerate()
        .map(|(i, p)| format.encode(tokenizer, p).with_context(|| format!("prompt {i}")))
        .collect()
}

/// `n` with a comma every three digits, for messages: `1,234,567`.
pub(crate) fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
