//! Data parallelism over the CPU's cores. On the CPU a micro-batch is split into one shard of
//! sequences per intra-op thread; each shard runs its forward and backward pass on its own
//! thread with one intra-op thread, and the shards' gradients are summed in shard order. Each
//! matrix product then runs whole on one core instead of being split across all of them, with
//! the cores idle in between, which trains faster (bench/README.md); each extra shard holds one
//! more set of gradients. A CUDA device takes the micro-batch in one pass.
//!
//! The gradients come back from each shard's backward pass as new tensors (nothing accumulates
//! into `.grad`), so the sum, and with it training, is the same from run to run for the same
//! thread count.

use anyhow::{Context, Result};
use entangle_model::{collate, target_logits, CausalLm, Sequence};
use tch::{Device, Kind, Tensor};

use crate::cross_entropy;

/// The loss of one micro-batch and its gradients.
pub struct Gradients {
    /// The sum of the micro-batch's token losses divided by the step's target count.
    pub loss: f64,
    /// One per parameter, in the order given.
    pub grads: Vec<Tensor>,
}

/// The model, shared by the shards' threads. tch marks `Tensor` `Send` but not `Sync`, as its
/// in-place methods could race; the shards only read the parameters (their forward and backward
/// passes make new tensors), which libtorch supports from many threads at once.
struct Shared<'a>(&'a dyn CausalLm);

// SAFETY: the shards call only `CausalLm::forward` (through `target_logits`), which takes the
// model by shared reference and does not mutate its tensors.
unsafe impl Sync for Shared<'_> {}

/// How many shards a micro-batch of `rows` sequences on `device` takes: one per intra-op thread
/// on the CPU, at most one per sequence; one on CUDA.
pub fn count(device: Device, rows: usize) -> usize {
    match device {
        Device::Cpu => usize::try_from(tch::get_num_threads()).unwrap_or(1).clamp(1, rows.max(1)),
        _ => 1,
    }
}

/// The loss of `rows` (one micro-batch) divided by `denominator` and its gradients with respect
/// to `params`, computed in `shards` shards (see [`count`]).
pub fn gradients(
    model: &dyn CausalLm,
    params: &[Tensor],
    rows: &[&Sequence],
    pad_id: i64,
    denominator: usize,
    shards: usize,
) -> Result<Gradients> {
    if shards <= 1 {
        return shard(model, params, rows, pad_id, denominator);
    }
    let threads = tch::get_num_threads();
    let shared = Shared(model);
    let results: Vec<Result<Gradients>> = std::thread::scope(|scope| {
        let handles: Vec<_> = split(rows, shards)
            .map(|part| {
                let params: Vec<Tensor> = params.iter().map(Tensor::shallow_clone).collect();
                let shared = &shared;
                scope.spawn(move || {
                    tch::set_num_threads(1);
                    shard(shared.0, &params, part, pad_id, denominator)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a training shard panicked")))).collect()
    });
    // The shards set the process's thread count to 1 for the threads they started.
    tch::set_num_threads(threads);
    sum(results)
}

/// The sum of `parts`, added in order into the first; the first error if any part failed.
pub fn sum(parts: impl IntoIterator<Item = Result<Gradients>>) -> Result<Gradients> {
    let mut parts = parts.into_iter();
    let mut total = parts.next().context("there are no gradients to sum")??;
    for part in parts {
        let part = part?;
        tch::no_grad(|| total.grads.iter_mut().zip(&part.grads).try_for_each(|(sum, grad)| sum.f_add_(grad).map(drop)))?;
        total.loss += part.loss;
    }
    Ok(total)
}

/// `rows` in `n` contiguous parts whose sizes differ by at most one.
fn split<'r, 's>(rows: &'r [&'s Sequence], n: usize) -> impl Iterator<Item = &'r [&'s Sequence]> {
    let (base, extra) = (rows.len() / n, rows.len() % n);
    (0..n).scan(0, move |start, i| {
        let len = base + usize::from(i < extra);
        let part = &rows[*start..*start + len];
        *start += len;
        Some(part)
    })
}

/// One pass over `rows` on the calling thread. On the CPU the loss and its gradient with respect
/// to the logits come from one pass of [`cross_entropy::with_gradient`]; back-propagating
/// `logits · gradient` (a dot product of the flattened matrices) then gives the logits exactly
/// that gradient.
fn shard(model: &dyn CausalLm, params: &[Tensor], rows: &[&Sequence], pad_id: i64, denominator: usize) -> Result<Gradients> {
    let batch = collate(rows, pad_id, model.device());
    let logits = target_logits(model, &batch)?;
    let scale = 1.0 / denominator.max(1) as f64;
    let (loss, backward_from) = match cross_entropy::with_gradient(&logits, &batch.targets, scale)? {
        Some((loss, grad)) => (loss, logits.f_flatten(0, -1)?.f_dot(&grad.f_flatten(0, -1)?)?),
        None => {
            let loss = entangle_model::cross_entropy(&logits, &batch.targets)?.f_sum(Kind::Float)?.f_mul_scalar(scale)?;
            (loss.f_double_value(&[])?, loss)
        }
    };
    let grads = Tensor::f_run_backward(&[&backward_from], params, false, false).context("back-propagating the loss")?;
    Ok(Gradients { loss, grads })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shards of different lengths (so with padding) give the gradients of one pass over all.
    #[test]
    fn sharded_gradients_equal_one_pass() {
        let model = crate::tests::fresh_model(4);
        let params = model.var_store().trainable_variables();
        let sequences: Vec<Sequence> = (0..5i64)
            .map(|n| Sequence { ids: (0..6 + n).map(|i| (7 * i + n) % 40 + 3).collect(), targets: vec![true; 6 + n as usize] })
            .collect();
        let rows: Vec<&Sequence> = sequences.iter().collect();
        let denominator = rows.iter().map(|s| s.target_count()).sum();
        let whole = gradients(model.as_ref(), &params, &rows, 0, denominator, 1).unwrap();
        let sharded = gradients(model.as_ref(), &params, &rows, 0, denominator, 3).unwrap();
        assert!((whole.loss - sharded.loss).abs() < 1e-5, "{} vs {}", whole.loss, sharded.loss);
        for (a, b) in whole.grads.iter().zip(&sharded.grads) {
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "{diff}");
        }
        assert!(whole.grads.iter().any(|g| g.abs().max().double_value(&[]) > 1e-3), "the loss must have gradients");
    }

    /// The one-pass loss gives the loss and gradients of libtorch's cross-entropy.
    #[test]
    fn one_pass_loss_gives_the_gradients_of_libtorch_cross_entropy() {
        let model = crate::tests::fresh_model(4);
        let params = model.var_store().trainable_variables();
        let sequences = [Sequence { ids: (0..9).map(|i| (5 * i) % 40 + 3).collect(), targets: vec![true; 9] }];
        let rows: Vec<&Sequence> = sequences.iter().collect();
        let ours = shard(model.as_ref(), &params, &rows, 0, 16).unwrap();
        let batch = collate(&rows, 0, Device::Cpu);
        let logits = target_logits(model.as_ref(), &batch).unwrap();
        let loss = entangle_model::cross_entropy(&logits, &batch.targets).unwrap().sum(Kind::Float) / 16.0;
        let want = Tensor::run_backward(&[&loss], &params, false, false);
        // Each token's loss is a log-sum-exp of 300 logits and the 9 are summed, in an order that
        // differs between the two sides: within 2·(300 + 9)·u of the summed magnitude, over 16.
        let total = loss.double_value(&[]);
        let tolerance = 2.0 * 309.0 * (f64::from(f32::EPSILON) / 2.0) * total.abs() * 16.0 / 16.0;
        assert!((ours.loss - total).abs() < tolerance, "{} vs {total}", ours.loss);
        for (a, b) in ours.grads.iter().zip(&want) {
            let diff = (a - b).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "{diff}");
        }
    }

    #[test]
    fn parts_cover_the_rows_in_order_evenly() {
        let sequences: Vec<Sequence> = (0..7).map(|i| Sequence { ids: vec![i], targets: vec![true] }).collect();
        let rows: Vec<&Sequence> = sequences.iter().collect();
        let sizes: Vec<usize> = split(&rows, 3).map(<[_]>::len).collect();
        assert_eq!(sizes, [3, 2, 2]);
        let ids: Vec<i64> = split(&rows, 3).flatten().map(|s| s.ids[0]).collect();
        assert_eq!(ids, (0..7).collect::<Vec<_>>());
    }
}
