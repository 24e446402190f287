//! The training loss and its gradient with respect to the logits in one pass over each row,
//! for f32 logits on the CPU. Each row of `[targets, vocab]` logits is read once and its
//! gradient, `scale · (softmax − one-hot)`, written once into a new tensor; the shard then hands
//! that gradient to autograd as the logits' (see `shards`). libtorch's cross-entropy makes about
//! five passes over the logits and allocates three more tensors of their size (log-softmax,
//! the zeroed gradient of the gathered loss, the log-softmax's gradient); here the dot product
//! that hands the gradient to autograd reads both matrices once more and its backward makes one
//! more tensor of their size (bench/README.md has the time it saves).

use anyhow::{ensure, Context, Result};
use tch::{Device, Kind, Tensor};

use crate::cpu_values;

/// Values the row loops handle side by side, so that the compiler vectorises them.
const LANES: usize = 8;

/// For `logits` `[n, vocab]` and `targets` `[n]`: `scale` times the summed cross-entropy in f64,
/// and its gradient with respect to `logits`, when `logits` is a non-empty contiguous f32 CPU
/// matrix; `None` otherwise, for libtorch's cross-entropy to handle. A NaN logit makes its row's
/// loss NaN, as libtorch's.
pub fn with_gradient(logits: &Tensor, targets: &Tensor, scale: f64) -> Result<Option<(f64, Tensor)>> {
    let size = logits.size();
    let fits = logits.device() == Device::Cpu && logits.kind() == Kind::Float && logits.is_contiguous();
    if !fits || size.len() != 2 || logits.numel() == 0 {
        return Ok(None);
    }
    let vocab = size[1] as usize;
    let targets = Vec::<i64>::try_from(targets.f_to_device(Device::Cpu)?).context("reading the loss's targets")?;
    ensure!(targets.len() as i64 == size[0], "{} targets for {} rows of logits", targets.len(), size[0]);
    let grad = Tensor::f_empty(size.as_slice(), (Kind::Float, Device::Cpu))?;
    // SAFETY: both are non-empty contiguous f32 CPU tensors, alive for the whole function;
    // nothing writes the logits meanwhile, and `grad` is new, so no other reference to it exists.
    let (values, grads) = unsafe { (cpu_values::values(logits), cpu_values::values_mut(&grad)) };
    let mut loss = 0.0;
    for ((row, row_grad), &target) in values.chunks_exact(vocab).zip(grads.chunks_exact_mut(vocab)).zip(&targets) {
        let target = usize::try_from(target)
            .ok()
            .filter(|&t| t < vocab)
            .with_context(|| format!("target token {target} is outside the vocabulary of {vocab}"))?;
        loss += row_loss(row, target, scale as f32, row_grad);
    }
    Ok(Some((loss * scale, grad)))
}

/// The cross-entropy of `logits` against `target`; writes `scale · (softmax − one-hot)` to `grad`.
/// Compiled for AVX2 too, and run so where the CPU has it (8 lanes instead of SSE2's 4, the
/// same operations, so both give the same bits).
fn row_loss(logits: &[f32], target: usize, scale: f32, grad: &mut [f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has the features the function is compiled for.
        return unsafe { row_loss_avx2(logits, target, scale, grad) };
    }
    row_loss_portable(logits, target, scale, grad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_loss_avx2(logits: &[f32], target: usize, scale: f32, grad: &mut [f32]) -> f64 {
    row_loss_portable(logits, target, scale, grad)
}

/// [`row_loss`] for any CPU. Each pass is a simple loop over the row (in cache by then) so that
/// the compiler vectorises it; it and its helpers are inlined into their callers to be compiled
/// for the callers' features.
#[inline(always)]
fn row_loss_portable(logits: &[f32], target: usize, scale: f32, grad: &mut [f32]) -> f64 {
    let max = row_max(logits);
    for (g, &x) in grad.iter_mut().zip(logits) {
        *g = exp_nonpositive(x - max);
    }
    let sum = row_sum(grad);
    let factor = (f64::from(scale) / sum) as f32;
    grad.iter_mut().for_each(|g| *g *= factor);
    grad[target] -= scale;
    sum.ln() + f64::from(max) - f64::from(logits[target])
}

/// The sum of `values`, accumulated in f32 lanes and added up in f64.
#[inline(always)]
fn row_sum(values: &[f32]) -> f64 {
    let mut lanes = [0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for k in 0..LANES {
            lanes[k] += chunk[k];
        }
    }
    lanes.iter().chain(rest).map(|&v| f64::from(v)).sum()
}

/// The largest of `values` (NaN ignored: it reaches the loss through the exponentials).
#[inline(always)]
fn row_max(values: &[f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for k in 0..LANES {
            lanes[k] = if chunk[k] > lanes[k] { chunk[k] } else { lanes[k] };
        }
    }
    lanes.into_iter().chain(rest.iter().copied()).fold(f32::NEG_INFINITY, |m, v| if v > m { v } else { m })
}

/// `e^x` for `x ≤ 0` to within a few units in the last place, in a form the compiler
/// vectorises: `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, `e^r` by its Taylor series to degree 7
/// (truncation below 1e-8 relative), and `2^n` built from its exponent bits: rounding by
/// adding 1.5 · 2^23 leaves `n` in the low bits of the sum. Below -87 it
/// returns about 1e-38 rather than underflowing, negligible beside a softmax's sum of at least 1;
/// NaN stays NaN.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOWEST: f32 = -87.0;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer.
    const ROUNDER: f32 = 12_582_912.0;
    // ln 2 split so that n · LN2_HIGH is exact for |n| < 2^14.
    const LN2_HIGH: f32 = 0.693_359_375;
    const LN2_LOW: f32 = (std::f64::consts::LN_2 - 0.693_359_375) as f32;
    let x = if x < LOWEST { LOWEST } else { x };
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (x - n * LN2_HIGH) - n * LN2_LOW;
    let mut p = 1.0 / 5040.0;
    for coefficient in [1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = p * r + coefficient;
    }
    let two_to_n = f32::from_bits(shifted.to_bits().wrapping_add(127) << 23);
    p * two_to_n
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Reduction;

    #[test]
    fn loss_and_gradient_equal_libtorch_cross_entropy() {
        tch::manual_seed(3);
        // 37 columns: the row loops' lanes and their remainder.
        let logits = Tensor::randn([6, 37], (Kind::Float, Device::Cpu)) * 4.0;
        let targets = Tensor::from_slice(&[0i64, 36, 5, 5, 17, 8]);
        let (loss, grad) = with_gradient(&logits, &targets, 0.25).unwrap().unwrap();
        let leaf = logits.detach().set_requires_grad(true);
        let want = leaf.cross_entropy_loss::<Tensor>(&targets, None, Reduction::Sum, -100, 0.0) * 0.25;
        want.backward();
        assert!((loss - want.double_value(&[])).abs() < 1e-5, "{loss} vs {}", want.double_value(&[]));
        let diff = (&grad - leaf.grad()).abs().max().double_value(&[]);
        // Each gradient is 0.25 (softmax − one-hot), |·| ≤ 1: our exp is within 5e-7 of the
        // true one and each side's 37-term softmax sum within γ₃₇ = 37u, in either order.
        let unit_roundoff = f64::from(f32::EPSILON) / 2.0;
        let tolerance = 0.25 * (2.0 * 5e-7 + 2.0 * 37.0 * unit_roundoff);
        assert!(diff < tolerance, "{diff} > {tolerance}");
    }

    #[test]
    fn every_cpu_path_gives_the_same_bits() {
        let logits: Vec<f32> = (0..101).map(|i| ((i * 37) % 23) as f32 * 0.7 - 8.0).collect();
        let (mut here, mut portable) = (vec![0f32; 101], vec![0f32; 101]);
        let loss = row_loss(&logits, 7, 0.5, &mut here);
        assert_eq!(loss.to_bits(), row_loss_portable(&logits, 7, 0.5, &mut portable).to_bits());
        assert!(here.iter().zip(&portable).all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    #[test]
    fn exponential_is_accurate_over_its_range() {
        let worst = (0..=200_000)
            .map(|i| -87.0 * i as f32 / 200_000.0)
            .map(|x| ((f64::from(exp_nonpositive(x)) - f64::from(x).exp()) / f64::from(x).exp()).abs())
            .fold(0.0, f64::max);
        assert!(worst < 5e-7, "relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
    }

    #[test]
    fn a_nan_logit_makes_its_row_loss_nan() {
        let logits = Tensor::from_slice(&[0.5f32, f32::NAN, 1.0, 2.0]).reshape([1, 4]);
        let (loss, _) = with_gradient(&logits, &Tensor::from_slice(&[0i64]), 1.0).unwrap().unwrap();
        assert!(loss.is_nan());
    }

    #[test]
    fn a_target_outside_the_vocabulary_is_an_error() {
        let logits = Tensor::zeros([1, 4], (Kind::Float, Device::Cpu));
        let err = with_gradient(&logits, &Tensor::from_slice(&[4i64]), 1.0).unwrap_err();
        assert_eq!(err.to_string(), "target token 4 is outside the vocabulary of 4");
    }

    #[test]
    fn other_logits_are_left_to_libtorch() {
        let targets = Tensor::from_slice(&[0i64, 1]);
        assert!(with_gradient(&Tensor::zeros([2, 4], (Kind::Double, Device::Cpu)), &targets, 1.0).unwrap().is_none());
        assert!(with_gradient(&Tensor::zeros([4, 2], (Kind::Float, Device::Cpu)).tr(), &targets, 1.0).unwrap().is_none());
    }
}
