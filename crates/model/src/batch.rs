//! Batches of token sequences of different lengths, left-padded so that every sequence's last
//! real token is in the last column.

use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::{ForwardInput, Logits};

/// Left-padded token ids with their attention mask and positions, on one device.
#[derive(Debug)]
pub struct Batch {
    /// `[batch, len]` int64; padding at the start of each row.
    pub input_ids: Tensor,
    /// `[batch, len]` int64, 1 for a real token and 0 for padding.
    pub attention_mask: Tensor,
    /// `[batch, len]` int64: each real token's position within its own sequence.
    pub position_ids: Tensor,
}

impl Batch {
    /// `sequences` left-padded with `pad_id` to the longest. Every sequence needs a token.
    pub fn left_padded(sequences: &[Vec<u32>], pad_id: u32, device: Device) -> Result<Batch> {
        let len = sequences.iter().map(Vec::len).max().context("a batch needs at least one sequence")?;
        if sequences.iter().any(Vec::is_empty) {
            bail!("cannot run the model on an empty token sequence");
        }
        let mut ids = Vec::with_capacity(sequences.len() * len);
        let mut mask = Vec::with_capacity(sequences.len() * len);
        for seq in sequences {
            let pad = len - seq.len();
            ids.extend(std::iter::repeat_n(i64::from(pad_id), pad).chain(seq.iter().map(|&t| i64::from(t))));
            mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, seq.len())));
        }
        let shape = [sequences.len() as i64, len as i64];
        let input_ids = Tensor::from_slice(&ids).f_view(shape)?.f_to_device(device)?;
        let attention_mask = Tensor::from_slice(&mask).f_view(shape)?.f_to_device(device)?;
        let position_ids = position_ids(&attention_mask, len as i64)?;
        Ok(Batch { input_ids, attention_mask, position_ids })
    }

    /// The forward input for the whole batch.
    pub fn input<'a>(&'a self, logits: Logits<'a>, hidden_states: bool) -> ForwardInput<'a> {
        ForwardInput {
            input_ids: &self.input_ids,
            attention_mask: Some(&self.attention_mask),
            position_ids: Some(&self.position_ids),
            logits,
            hidden_states,
        }
    }
}

/// Positions of the last `new` tokens of each row of `attention_mask` (`[batch, len]`, 1 =
/// real): the number of real tokens before each one. Padding gets position 1, as in
/// transformers' `generate`.
pub fn position_ids(attention_mask: &Tensor, new: i64) -> Result<Tensor> {
    let len = attention_mask.size().last().copied().context("the attention mask has no dimensions")?;
    let positions =
        attention_mask.f_cumsum(-1, Kind::Int64)?.f_sub_scalar(1)?.f_masked_fill(&attention_mask.f_eq(0)?, 1)?;
    positions.f_narrow(-1, len - new, new).context("computing position ids")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(t: &Tensor) -> Vec<Vec<i64>> {
        Vec::<Vec<i64>>::try_from(t).unwrap()
    }

    #[test]
    fn sequences_are_left_padded() {
        let batch = Batch::left_padded(&[vec![5, 6, 7], vec![8]], 0, Device::Cpu).unwrap();
        assert_eq!(rows(&batch.input_ids), [[5, 6, 7], [0, 0, 8]]);
        assert_eq!(rows(&batch.attention_mask), [[1, 1, 1], [0, 0, 1]]);
        assert_eq!(rows(&batch.position_ids), [[0, 1, 2], [1, 1, 0]]);
    }

    #[test]
    fn positions_of_new_tokens_count_real_tokens_only() {
        let mask = Tensor::from_slice(&[0i64, 1, 1, 1, 1, 1, 1, 1]).view([2, 4]);
        assert_eq!(rows(&position_ids(&mask, 1).unwrap()), [[2], [3]]);
        assert_eq!(rows(&position_ids(&mask, 2).unwrap()), [[1, 2], [2, 3]]);
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(Batch::left_padded(&[], 0, Device::Cpu).is_err());
        let err = Batch::left_padded(&[vec![1], vec![]], 0, Device::Cpu).unwrap_err();
        assert_eq!(err.to_string(), "cannot run the model on an empty token sequence");
    }
}
