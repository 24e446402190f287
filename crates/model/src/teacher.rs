//! Teacher forcing: token sequences whose chosen positions carry loss, collated into padded
//! batches, and the next-token cross-entropy of each target. The trainer optimises its sum;
//! the evaluator measures the per-token NLL of reference answers with it.

use anyhow::{Context, Result};
use tch::{Device, Kind, Reduction, Tensor};

use crate::{CausalLm, ForwardInput, Logits, PromptFormat, Tokenizer};

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

/// A padded batch: `input_ids` and `attention_mask` `[B, T]`, and which positions predict a
/// target and what. Padding goes on the right: with causal attention it never affects the real
/// tokens.
pub struct TargetBatch {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    /// `[B, T]` bool: whether position `i` of a row predicts a target (token `i + 1` carries
    /// loss).
    pub predicting: Tensor,
    /// `[n]` int64: the token each predicting position must predict, in row-major order.
    pub targets: Tensor,
    /// `[n]` int64: the row of each target.
    pub target_rows: Tensor,
}

/// Collates `sequences` into one right-padded batch on `device`.
pub fn collate(sequences: &[&Sequence], pad_id: i64, device: Device) -> TargetBatch {
    let width = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(sequences.len() * width);
    let mut mask = Vec::with_capacity(sequences.len() * width);
    let mut predicting = Vec::with_capacity(sequences.len() * width);
    let (mut targets, mut target_rows) = (Vec::new(), Vec::new());
    for (row, seq) in sequences.iter().enumerate() {
        for i in 0..width {
            let real = i < seq.ids.len();
            ids.push(if real { seq.ids[i] } else { pad_id });
            mask.push(i64::from(real));
            let predicts = i + 1 < seq.ids.len() && seq.targets[i + 1];
            predicting.push(predicts);
            if predicts {
                targets.push(seq.ids[i + 1]);
                target_rows.push(row as i64);
            }
        }
    }
    let shape = [sequences.len() as i64, width as i64];
    let matrix = |values: &[i64]| Tensor::from_slice(values).reshape(shape).to_device(device);
    TargetBatch {
        input_ids: matrix(&ids),
        attention_mask: matrix(&mask),
        predicting: Tensor::from_slice(&predicting).reshape(shape).to_device(device),
        targets: Tensor::from_slice(&targets).to_device(device),
        target_rows: Tensor::from_slice(&target_rows).to_device(device),
    }
}

/// The next-token cross-entropy of each target of `batch`, `[n]` in f32, in the order of
/// `batch.targets`.
pub fn target_losses(model: &dyn CausalLm, batch: &TargetBatch) -> Result<Tensor> {
    cross_entropy(&target_logits(model, batch)?, &batch.targets)
}

/// The logits at each position of `batch` that predicts a target, `[n, vocab]`, in the order of
/// `batch.targets`. The model computes logits only there (bf16 autocast on CUDA): the output
/// projection and the softmax over the vocabulary skip prompts and padding (for SmolLM2's
/// 49k-token vocabulary, 8% of an SFT step's time and 0.45 GB of its peak memory).
pub fn target_logits(model: &dyn CausalLm, batch: &TargetBatch) -> Result<Tensor> {
    let input = ForwardInput {
        input_ids: &batch.input_ids,
        attention_mask: Some(&batch.attention_mask),
        position_ids: None,
        logits: Logits::At(&batch.predicting),
        hidden_states: false,
    };
    Ok(tch::autocast(model.device().is_cuda(), || model.forward(&input, None))?.logits)
}

/// Cross-entropy of each row of `logits` (`[n, vocab]`) against its target (`[n]`), in f32.
pub fn cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let logits = logits.f_to_kind(Kind::Float)?;
    // Every row is a target: the ignored index (PyTorch's default, -100) is never a token.
    Ok(logits.f_cross_entropy_loss::<Tensor>(targets, None, Reduction::None, -100, 0.0)?)
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
        let losses = target_losses(model, &batch)?.f_to_kind(Kind::Double)?;
        let sums = Tensor::f_zeros([chunk.len() as i64], (Kind::Double, model.device()))?
            .f_index_add(0, &batch.target_rows, &losses)?;
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
    fn collation_pads_right_and_marks_what_each_position_predicts() {
        let a = seq(&[5, 6, 7], &[false, true, true]);
        let b = seq(&[8, 9], &[true, false]);
        let batch = collate(&[&a, &b], 0, Device::Cpu);
        let rows = |t: &Tensor| Vec::<Vec<i64>>::try_from(t.to_kind(Kind::Int64)).unwrap();
        assert_eq!(rows(&batch.input_ids), vec![vec![5, 6, 7], vec![8, 9, 0]]);
        assert_eq!(rows(&batch.attention_mask), vec![vec![1, 1, 1], vec![1, 1, 0]]);
        assert_eq!(rows(&batch.predicting), vec![vec![1, 1, 0], vec![0, 0, 0]], "the first token is never predicted");
        assert_eq!(Vec::<i64>::try_from(&batch.targets).unwrap(), vec![6, 7]);
        assert_eq!(Vec::<i64>::try_from(&batch.target_rows).unwrap(), vec![0, 0]);
        assert_eq!(batch.targets.size(), [(a.target_count() + b.target_count()) as i64]);
    }

    #[test]
    fn cross_entropy_is_the_negative_log_softmax_of_the_target() {
        let logits = Tensor::from_slice(&[0.0f32, 1.0, 2.0, 0.5, 0.5, 0.5]).reshape([2, 3]);
        let losses = Vec::<f64>::try_from(cross_entropy(&logits, &Tensor::from_slice(&[1i64, 2])).unwrap()).unwrap();
        let first = (1f64.exp() + 2f64.exp() + 1.0).ln() - 1.0;
        assert!((losses[0] - first).abs() < 1e-6 && (losses[1] - 3f64.ln()).abs() < 1e-6, "{losses:?}");
    }
}
