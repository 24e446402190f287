//! Teacher forcing: token sequences whose chosen positions carry loss, collated into padded
//! batches, and the summed next-token cross-entropy over those positions. The trainer
//! optimises it; the evaluator measures the per-token NLL of reference answers with it.

use anyhow::{Context, Result};
use tch::{Device, Kind, Reduction, Tensor};

use crate::{CausalLm, ForwardInput, Logits, PromptFormat, Tokenizer};

/// Label value of positions that contribute no loss (prompt tokens, padding), as in PyTorch's
/// `cross_entropy(ignore_index = -100)`.
pub const IGNORE_INDEX: i64 = -100;

/// A tokenized example with its loss targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub ids: Vec<i64>,
    /// `targets[i]`: whether token `i` is predicted with loss (response tokens in SFT, every
    /// token in pretraining).
    pub targets: Vec<bool>,
}

impl Sequence {
    /// The prompt-then-response example of `format`, with targets on the response only.
    pub fn response_only(
        format: PromptFormat,
        tokenizer: &Tokenizer,
        prompt: &str,
        response: &str,
    ) -> Result<Sequence> {
        let example = format.encode_example(tokenizer, prompt, response)?;
        let targets = (0..example.ids.len()).map(|i| i >= example.prompt_len).collect();
        Ok(Sequence { ids: example.ids.into_iter().map(i64::from).collect(), targets })
    }

    /// The sequence cut to its first `max_len` tokens.
    pub fn truncated(mut self, max_len: usize) -> Sequence {
        self.ids.truncate(max_len);
        self.targets.truncate(max_len);
        self
    }

    /// Tokens whose prediction carries loss: targets after the first position (the first token
    /// is never predicted).
    pub fn target_count(&self) -> usize {
        self.targets.iter().skip(1).filter(|&&t| t).count()
    }
}

/// A padded batch: `input_ids` and `attention_mask` `[B, T]`, and `labels` `[B, T]` holding
/// the token where loss applies and [`IGNORE_INDEX`] elsewhere. Padding goes on the right:
/// with causal attention it never affects the real tokens.
pub struct TargetBatch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub labels: Tensor,
    /// Number of positions that carry loss.
    pub target_count: usize,
}

/// Collates `sequences` into one right-padded batch on `device`.
pub fn collate(sequences: &[&Sequence], pad_id: i64, device: Device) -> TargetBatch {
    let width = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(sequences.len() * width);
    let mut mask = Vec::with_capacity(sequences.len() * width);
    let mut labels = Vec::with_capacity(sequences.len() * width);
    for seq in sequences {
        for i in 0..width {
            let real = i < seq.ids.len();
            ids.push(if real { seq.ids[i] } else { pad_id });
            mask.push(i64::from(real));
            labels.push(if real && seq.targets[i] { seq.ids[i] } else { IGNORE_INDEX });
        }
    }
    let shape = [sequences.len() as i64, width as i64];
    let tensor = |values: &[i64]| Tensor::from_slice(values).reshape(shape).to_device(device);
    TargetBatch {
        input_ids: tensor(&ids),
        attention_mask: tensor(&mask),
        labels: tensor(&labels),
        target_count: sequences.iter().map(|s| s.target_count()).sum(),
    }
}

/// Next-token cross-entropy at every position, `[B, T - 1]` in f32: entry `(b, i)` is the loss
/// of predicting token `i + 1` of row `b`, and 0 where the label is [`IGNORE_INDEX`].
/// `logits` is `[B, T, vocab]`, `labels` `[B, T]`.
pub fn token_losses(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let (batch, width, vocab) = logits.size3().context("logits must be [batch, seq, vocab]")?;
    let predicted = logits.f_narrow(1, 0, width - 1)?.f_reshape([-1, vocab])?.f_to_kind(Kind::Float)?;
    let targets = labels.f_narrow(1, 1, width - 1)?.f_reshape([-1])?;
    let losses = predicted.f_cross_entropy_loss::<Tensor>(&targets, None, Reduction::None, IGNORE_INDEX, 0.0)?;
    Ok(losses.f_reshape([batch, width - 1])?)
}

/// Sum of the next-token cross-entropy over every labelled position (labels equal to
/// [`IGNORE_INDEX`] contribute nothing).
pub fn loss_sum(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    Ok(token_losses(logits, labels)?.f_sum(Kind::Float)?)
}

/// The model's logits at every position of `batch` (bf16 autocast on CUDA).
pub fn batch_logits(model: &dyn CausalLm, batch: &TargetBatch) -> Result<Tensor> {
    let input = ForwardInput {
        input_ids: &batch.input_ids,
        attention_mask: Some(&batch.attention_mask),
        position_ids: None,
        logits: Logits::All,
        hidden_states: false,
    };
    Ok(tch::autocast(model.device().is_cuda(), || model.forward(&input, None))?.logits)
}

/// Mean negative log-likelihood per token of each `(prompt, response)` pair's response given
/// its prompt in `format` (response tokens and the closing EOS), teacher forced, in batches.
pub fn response_nll(
    model: &dyn CausalLm,
    tokenizer: &Tokenizer,
    format: PromptFormat,
    pairs: &[(&str, &str)],
    batch_size: usize,
) -> Result<Vec<f64>> {
    let _no_grad = tch::no_grad_guard();
    let sequences = pairs
        .iter()
        .map(|(prompt, response)| Sequence::response_only(format, tokenizer, prompt, response))
        .collect::<Result<Vec<_>>>()?;
    let pad = i64::from(tokenizer.pad_token_id());
    let mut out = Vec::with_capacity(sequences.len());
    for chunk in sequences.chunks(batch_size.max(1)) {
        let batch = collate(&chunk.iter().collect::<Vec<_>>(), pad, model.device());
        let sums =
            token_losses(&batch_logits(model, &batch)?, &batch.labels)?.f_sum_dim_intlist(1, false, Kind::Double)?;
        let sums = Vec::<f64>::try_from(sums).context("copying the losses")?;
        out.extend(chunk.iter().zip(sums).map(|(seq, sum)| sum / seq.target_count().max(1) as f64));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(ids: &[i64], targets: &[bool]) -> Sequence {
        Sequence { ids: ids.to_vec(), targets: targets.to_vec() }
    }

    #[test]
    fn truncation_cuts_ids_and_targets_together() {
        let s = seq(&[1, 2, 3, 4], &[false, false, true, true]).truncated(3);
        assert_eq!(s, seq(&[1, 2, 3], &[false, false, true]));
        assert_eq!(s.target_count(), 1);
    }

    #[test]
    fn collation_pads_right_and_masks_labels() {
        let a = seq(&[5, 6, 7], &[false, true, true]);
        let b = seq(&[8], &[true]);
        let batch = collate(&[&a, &b], 0, Device::Cpu);
        let rows = |t: &Tensor| Vec::<Vec<i64>>::try_from(t).unwrap();
        assert_eq!(rows(&batch.input_ids), vec![vec![5, 6, 7], vec![8, 0, 0]]);
        assert_eq!(rows(&batch.attention_mask), vec![vec![1, 1, 1], vec![1, 0, 0]]);
        assert_eq!(rows(&batch.labels), vec![vec![-100, 6, 7], vec![8, -100, -100]]);
        assert_eq!(batch.target_count, 2);
    }

    #[test]
    fn masked_positions_contribute_nothing_to_the_loss() {
        // Two positions predict tokens 1 and 2 of a 3-token vocabulary; the second is masked.
        let logits = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 0.5, 0.5, 0.5, 9.0, 9.0, 9.0]).reshape([1, 3, 3]);
        let labels = Tensor::from_slice(&[IGNORE_INDEX, 1, IGNORE_INDEX]).reshape([1, 3]);
        let loss = loss_sum(&logits, &labels).unwrap().double_value(&[]);
        let log_softmax_1 = 1.0 - (1f64.exp() + 2f64.exp() + 1.0).ln();
        assert!((loss + log_softmax_1).abs() < 1e-6, "{loss}");
        let all = Tensor::from_slice(&[IGNORE_INDEX, 1, 2]).reshape([1, 3]);
        let with_second = loss_sum(&logits, &all).unwrap().double_value(&[]);
        assert!((with_second - loss - 3f64.ln()).abs() < 1e-6, "{with_second}");
    }
}
