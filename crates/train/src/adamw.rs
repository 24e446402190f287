//! AdamW as `torch.optim.AdamW` computes it — decoupled weight decay, bias-corrected first and
//! second moments — applied to gradients the trainer hands in rather than to each parameter's
//! `.grad`: a step's gradients come back from the shards' backward passes ([`crate::shards`])
//! and are summed in a fixed order. Also the factor of `clip_grad_norm_`, which the step applies
//! to each gradient as it reads it.
//!
//! Contiguous f32 parameters on the CPU are updated in one pass over parameter, gradient and
//! moments, split across the intra-op threads ([`fused`]), as torch's fused AdamW kernel does;
//! elsewhere (CUDA) the update is a sequence of tensor operations.

mod fused;

use std::path::Path;

use anyhow::{ensure, Context, Result};
use entangle_pipeline::TrainJob;
use tch::Tensor;

/// The optimiser state of every parameter.
pub struct AdamW {
    params: Vec<Tensor>,
    /// Per parameter: the running means of its gradient and of its squared gradient.
    moments: Vec<(Tensor, Tensor)>,
    betas: [f64; 2],
    eps: f64,
    weight_decay: f64,
    steps: i32,
}

/// The scalars of one update. The bias corrections c₁ = 1 − β₁ᵗ and c₂ = 1 − β₂ᵗ are folded in
/// as torch's fused kernel folds them: `p −= lr/c₁ · m / (√v/√c₂ + eps)`.
#[derive(Debug, Clone, Copy)]
struct Update {
    /// What every gradient is multiplied by first: the clipping factor.
    grad_scale: f64,
    betas: [f64; 2],
    /// `1 − lr · weight_decay`.
    decay: f64,
    /// `lr / c₁`; 0 leaves the parameters as they are.
    step_size: f64,
    /// `√c₂`.
    root_c2: f64,
    eps: f64,
}

impl AdamW {
    /// Zero moments for `params`, with `job`'s betas, eps and weight decay.
    pub fn new(params: &[Tensor], job: &TrainJob) -> Result<AdamW> {
        let moments = params
            .iter()
            .map(|p| Ok((p.f_zeros_like()?, p.f_zeros_like()?)))
            .collect::<Result<Vec<_>>>()
            .context("allocating the AdamW moments")?;
        let params = params.iter().map(Tensor::shallow_clone).collect();
        Ok(AdamW { params, moments, betas: job.betas, eps: job.eps, weight_decay: job.weight_decay, steps: 0 })
    }

    /// One update at learning rate `lr` from `grads`, one per parameter in order, each first
    /// multiplied by `grad_scale` (see [`clip_factor`]).
    pub fn step(&mut self, grads: &[Tensor], grad_scale: f64, lr: f64) -> Result<()> {
        ensure!(grads.len() == self.params.len(), "{} gradients for {} parameters", grads.len(), self.params.len());
        self.steps += 1;
        let [beta1, beta2] = self.betas;
        let update = Update {
            grad_scale,
            betas: self.betas,
            decay: 1.0 - lr * self.weight_decay,
            step_size: lr / (1.0 - beta1.powi(self.steps)),
            root_c2: (1.0 - beta2.powi(self.steps)).sqrt(),
            eps: self.eps,
        };
        let _no_grad = tch::no_grad_guard();
        match fused::Values::of(&self.params, grads, &self.moments) {
            Some(values) => {
                fused::step(values, update, usize::try_from(tch::get_num_threads()).unwrap_or(1));
                Ok(())
            }
            None => self.tensor_step(grads, update),
        }
    }

    /// Writes the moments to `path` (safetensors): `mean.<i>` and `square.<i>` for the i-th
    /// parameter.
    pub fn save_moments(&self, path: &Path) -> Result<()> {
        let named: Vec<(String, &Tensor)> = self
            .moments
            .iter()
            .enumerate()
            .flat_map(|(i, (mean, square))| [(format!("mean.{i}"), mean), (format!("square.{i}"), square)])
            .collect();
        Tensor::write_safetensors(&named, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Takes the moments [`save_moments`](Self::save_moments) wrote after `steps` steps.
    pub fn restore_moments(&mut self, path: &Path, steps: u64) -> Result<()> {
        let mut saved: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(path).with_context(|| format!("reading {}", path.display()))?.into_iter().collect();
        let _no_grad = tch::no_grad_guard();
        for (i, (mean, square)) in self.moments.iter_mut().enumerate() {
            for (name, moment) in [(format!("mean.{i}"), mean), (format!("square.{i}"), square)] {
                let value = saved.remove(&name).with_context(|| format!("{}: no tensor `{name}`", path.display()))?;
                ensure!(value.size() == moment.size(), "{}: `{name}` is {:?}, the parameter {:?}", path.display(), value.size(), moment.size());
                moment.f_copy_(&value)?;
            }
        }
        ensure!(saved.is_empty(), "{}: {} tensors more than the model has parameters", path.display(), saved.len());
        self.steps = i32::try_from(steps).context("the step count is too large")?;
        Ok(())
    }

    /// The update as tensor operations, for any device and dtype.
    fn tensor_step(&mut self, grads: &[Tensor], update: Update) -> Result<()> {
        let [beta1, beta2] = update.betas;
        // The returned tensors are the updated ones themselves.
        for ((param, (mean, square)), grad) in self.params.iter_mut().zip(&mut self.moments).zip(grads) {
            let grad = if update.grad_scale == 1.0 { grad.shallow_clone() } else { grad.f_mul_scalar(update.grad_scale)? };
            let _ = mean.f_lerp_(&grad, 1.0 - beta1)?;
            let _ = square.f_lerp_(&grad.f_square()?, 1.0 - beta2)?;
            if update.step_size > 0.0 {
                if update.decay != 1.0 {
                    let _ = param.f_mul_scalar_(update.decay)?;
                }
                // addcdiv_ adds m / d: d = −(√v + eps·√c₂) / (step_size·√c₂).
                let denominator = square
                    .f_sqrt()?
                    .f_add_scalar_(update.eps * update.root_c2)?
                    .f_mul_scalar_(-1.0 / (update.step_size * update.root_c2))?;
                let _ = param.f_addcdiv_(mean, &denominator)?;
            }
        }
        Ok(())
    }
}

/// The joint L2 norm of `grads`, as if concatenated.
pub fn grad_norm(grads: &[Tensor]) -> Result<f64> {
    let _no_grad = tch::no_grad_guard();
    let norms = grads.iter().map(Tensor::f_norm).collect::<Result<Vec<_>, _>>()?;
    Ok(Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?)
}

/// The factor that brings a gradient norm down to at most `max_norm`, as torch's
/// `clip_grad_norm_` scales them: `max_norm / (norm + 1e-6)` when that is below 1, else 1.
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

#[cfg(test)]
mod tests {
    use tch::nn::OptimizerConfig;
    use tch::{Device, Kind};

    use super::*;

    fn job(weight_decay: f64) -> TrainJob {
        TrainJob { betas: [0.9, 0.95], eps: 1e-6, weight_decay, ..crate::tests::job(1, 1, 1e-3, 1) }
    }

    /// Our AdamW against libtorch's own `torch::optim::AdamW` over steps with a changing
    /// learning rate (a zero one included), gradient scale and fixed gradients: f32 parameters
    /// take the fused pass, f64 ones the tensor operations.
    #[test]
    fn follows_libtorch_adamw() {
        for (kind, weight_decay) in [(Kind::Float, 0.0), (Kind::Float, 0.1), (Kind::Double, 0.0), (Kind::Double, 0.1)] {
            tch::manual_seed(11);
            let mut theirs = tch::nn::VarStore::new(Device::Cpu);
            let params = [theirs.root().randn_standard("w", &[5, 4]), theirs.root().randn_standard("b", &[3])];
            theirs.set_kind(kind);
            let ours: Vec<Tensor> = params.iter().map(|p| p.detach().copy()).collect();
            let job = job(weight_decay);
            let mut reference = tch::nn::AdamW { beta1: 0.9, beta2: 0.95, wd: weight_decay, eps: 1e-6, amsgrad: false }
                .build(&theirs, 0.0)
                .unwrap();
            let mut adamw = AdamW::new(&ours, &job).unwrap();
            for (lr, scale) in [(1e-2, 1.0), (0.0, 0.5), (3e-2, 0.25), (5e-3, 1.0)] {
                let grads: Vec<Tensor> = params.iter().map(|p| Tensor::randn(p.size(), (kind, Device::Cpu))).collect();
                assert_eq!(fused::Values::of(&ours, &grads, &adamw.moments).is_some(), kind == Kind::Float);
                reference.zero_grad();
                let loss: Tensor = params.iter().zip(&grads).map(|(p, g)| (p * g * scale).sum(kind)).sum();
                loss.backward();
                reference.set_lr(lr);
                reference.step();
                adamw.step(&grads, scale, lr).unwrap();
                for (ours, theirs) in ours.iter().zip(&params) {
                    let diff = (ours - theirs).abs().max().double_value(&[]);
                    // Up to 4 steps, each a few roundings (≈ 4u) of parameters of magnitude ≤ 4,
                    // ordered differently by libtorch's vector loops on each CPU.
                    let tolerance = 4.0 * 4.0 * 4.0 * (f64::from(f32::EPSILON) / 2.0) * 4.0;
                    assert!(diff < tolerance, "{kind:?}, weight decay {weight_decay}, lr {lr}: {diff}");
                }
            }
        }
    }

    #[test]
    fn clipping_scales_the_joint_norm_down_only() {
        let grads = [Tensor::from_slice(&[3.0f32, 0.0]), Tensor::from_slice(&[0.0f32, 4.0])];
        let norm = grad_norm(&grads).unwrap();
        assert!((clip_factor(norm, 1.0) - 1.0 / (5.0 + 1e-6)).abs() < 1e-9);
        assert!((clip_factor(norm, 10.0) - 1.0).abs() < 1e-12);
        assert_eq!(clip_factor(grad_norm(&[Tensor::from_slice(&[0.3f32, 0.4])]).unwrap(), 1.0), 1.0);
    }
}
