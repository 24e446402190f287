//! AdamW as `torch.optim.AdamW` computes it — decoupled weight decay, bias-corrected first and
//! second moments — applied to gradients the trainer hands in rather than to each parameter's
//! `.grad`: a step's gradients come back from the shards' backward passes ([`crate::shards`])
//! and are summed in a fixed order. Also the gradient-norm clipping of `clip_grad_norm_`.

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

    /// One update at learning rate `lr` from `grads`, one per parameter in order. The bias
    /// corrections are folded into the step size and eps, as torch's fused kernel does:
    /// `p -= lr·√c₂/c₁ · m / (√v + eps·√c₂)` equals `p -= lr/c₁ · m / (√v/√c₂ + eps)`.
    pub fn step(&mut self, grads: &[Tensor], lr: f64) -> Result<()> {
        ensure!(grads.len() == self.params.len(), "{} gradients for {} parameters", grads.len(), self.params.len());
        self.steps += 1;
        let [beta1, beta2] = self.betas;
        let (c1, c2) = (1.0 - beta1.powi(self.steps), 1.0 - beta2.powi(self.steps));
        let root_c2 = c2.sqrt();
        // The returned tensors are the updated ones themselves.
        let _no_grad = tch::no_grad_guard();
        for ((param, (mean, square)), grad) in self.params.iter_mut().zip(&mut self.moments).zip(grads) {
            let _ = mean.f_lerp_(grad, 1.0 - beta1)?;
            let _ = square.f_lerp_(&grad.f_square()?, 1.0 - beta2)?;
            if lr > 0.0 {
                if self.weight_decay > 0.0 {
                    let _ = param.f_mul_scalar_(1.0 - lr * self.weight_decay)?;
                }
                // addcdiv_ adds m / d: the negative step size goes into the denominator.
                let denominator = square.f_sqrt()?.f_add_scalar_(self.eps * root_c2)?.f_mul_scalar_(-c1 / (lr * root_c2))?;
                let _ = param.f_addcdiv_(mean, &denominator)?;
            }
        }
        Ok(())
    }
}

/// Scales `grads` in place so that their joint L2 norm (as if concatenated) is at most
/// `max_norm`, as torch's `clip_grad_norm_`: by `max_norm / (norm + 1e-6)` when that is below 1.
/// Returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let _no_grad = tch::no_grad_guard();
    let norms = grads.iter().map(Tensor::f_norm).collect::<Result<Vec<_>, _>>()?;
    let norm = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
    let factor = max_norm / (norm + 1e-6);
    if factor < 1.0 {
        for grad in grads {
            let _ = grad.f_mul_scalar_(factor)?;
        }
    }
    Ok(norm)
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
    /// learning rate (a zero one included) and fixed gradients.
    #[test]
    fn follows_libtorch_adamw() {
        for weight_decay in [0.0, 0.1] {
            tch::manual_seed(11);
            let theirs = tch::nn::VarStore::new(Device::Cpu);
            let param = theirs.root().randn_standard("w", &[5, 4]);
            let ours = param.detach().copy();
            let grads: Vec<Tensor> = (0..4).map(|_| Tensor::randn([5, 4], (Kind::Float, Device::Cpu))).collect();
            let job = job(weight_decay);
            let mut reference = tch::nn::AdamW { beta1: 0.9, beta2: 0.95, wd: weight_decay, eps: 1e-6, amsgrad: false }
                .build(&theirs, 0.0)
                .unwrap();
            let mut adamw = AdamW::new(std::slice::from_ref(&ours), &job).unwrap();
            for (grad, lr) in grads.iter().zip([1e-2, 0.0, 3e-2, 5e-3]) {
                reference.zero_grad();
                (&param * grad).sum(Kind::Float).backward();
                reference.set_lr(lr);
                reference.step();
                adamw.step(std::slice::from_ref(grad), lr).unwrap();
                let diff = (&ours - &param).abs().max().double_value(&[]);
                assert!(diff < 1e-6, "weight decay {weight_decay}, lr {lr}: {diff}");
            }
            assert!((&ours - &param.detach()).abs().max().double_value(&[]) < 1e-6);
        }
    }

    #[test]
    fn clipping_scales_the_joint_norm_down_only() {
        let mut grads = vec![Tensor::from_slice(&[3.0f32, 0.0]), Tensor::from_slice(&[0.0f32, 4.0])];
        assert!((clip_grad_norm(&mut grads, 1.0).unwrap() - 5.0).abs() < 1e-6);
        let clipped: Vec<f64> = grads.iter().flat_map(|g| Vec::<f64>::try_from(g.to_kind(Kind::Double)).unwrap()).collect();
        let want = [3.0, 0.0, 0.0, 4.0].map(|x| x / (5.0 + 1e-6));
        assert!(clipped.iter().zip(want).all(|(c, w)| (c - w).abs() < 1e-6), "{clipped:?}");
        let mut small = vec![Tensor::from_slice(&[0.3f32, 0.4])];
        assert!((clip_grad_norm(&mut small, 1.0).unwrap() - 0.5).abs() < 1e-6);
        assert_eq!(Vec::<f32>::try_from(&small[0]).unwrap(), [0.3, 0.4]);
    }
}
