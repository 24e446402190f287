//! The residual stream at each sequence's last real token: what activation-space analysis
//! reads.

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

use crate::{Batch, CausalLm, Logits};

/// Last-position outputs of a batch of sequences.
#[derive(Debug)]
pub struct LastTokenStates {
    /// `[batch, vocab]` f32 on the CPU: the logits after each sequence's last token.
    pub logits: Tensor,
    /// `[batch, num_layers + 1, hidden]` f32 on the CPU: every hidden state (as
    /// [`crate::ForwardOutput::hidden_states`], layer 0 the embeddings) at each sequence's last
    /// real token, never a pad.
    pub hidden_states: Tensor,
}

/// Runs `sequences` as one left-padded batch (no generation, no gradients) and returns their
/// last-token logits and hidden states. With left padding the last real token of every
/// sequence is the batch's last column, and positions are counted per sequence, so each
/// result equals running that sequence alone.
pub fn last_token_states(model: &dyn CausalLm, sequences: &[Vec<u32>], pad_id: u32) -> Result<LastTokenStates> {
    let _no_grad = tch::no_grad_guard();
    let batch = Batch::left_padded(sequences, pad_id, model.device())?;
    let out = model.forward(&batch.input(Logits::Last, true), None)?;
    let last: Vec<Tensor> = out
        .hidden_states
        .iter()
        .map(|h| h.f_select(1, -1))
        .collect::<Result<_, _>>()
        .context("selecting the last token")?;
    let to_cpu = |t: Tensor| t.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu);
    Ok(LastTokenStates {
        logits: to_cpu(out.logits.f_select(1, -1)?)?,
        hidden_states: to_cpu(Tensor::f_stack(&last, 1)?)?,
    })
}
