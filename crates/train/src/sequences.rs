//! Training rows of a prepared data set → token sequences with their loss targets.
//!
//! SFT learns only the response: prompt tokens are not targets. Pretraining learns every token:
//! a row with a prompt is a whole dialogue in the pipeline's prompt format, a row without one is
//! a plain document. Responses end with EOS (the prompt format adds it).

use anyhow::{bail, Result};
use entangle_artifacts::Example;
use entangle_model::{PromptFormat, Sequence, Tokenizer};
use entangle_pipeline::TrainKind;

/// The sequences of `rows`, truncated to `max_len`. Rows with no target left after truncation
/// are dropped; if none remains, that is an error naming `sets`.
pub fn sequences(
    rows: &[Example],
    kind: TrainKind,
    format: PromptFormat,
    tokenizer: &Tokenizer,
    max_len: usize,
    sets: &str,
) -> Result<Vec<Sequence>> {
    if rows.is_empty() {
        bail!("data sets {sets} have no rows to train on");
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let sequence = sequence(row, kind, format, tokenizer)?.truncated(max_len);
        if sequence.target_count() > 0 {
            out.push(sequence);
        }
    }
    if out.is_empty() {
        bail!("every example of data sets {sets} is longer than max_seq_len {max_len}: no response token is left to learn");
    }
    if out.len() < rows.len() {
        tracing::warn!("{} of {} examples have no response token within {max_len} tokens and are skipped", rows.len() - out.len(), rows.len());
    }
    Ok(out)
}

fn sequence(row: &Example, kind: TrainKind, format: PromptFormat, tokenizer: &Tokenizer) -> Result<Sequence> {
    let (ids, first_target) = if row.prompt.is_empty() {
        let mut ids = tokenizer.encode(&row.response, true)?;
        ids.extend(tokenizer.eos_token_ids().first());
        (ids, 0)
    } else {
        let example = format.encode_example(tokenizer, &row.prompt, &row.response)?;
        let first_target = match kind {
            TrainKind::Pretrain => 0,
            TrainKind::Sft => example.prompt_len,
        };
        (example.ids, first_target)
    };
    let targets = (0..ids.len()).map(|i| i >= first_target).collect();
    Ok(Sequence { ids: ids.into_iter().map(i64::from).collect(), targets })
}
