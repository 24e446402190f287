//! AdamW's update of contiguous f32 CPU parameters in one pass: each element of the gradient is
//! read once and each of the parameter and both moments read and written once, where the same
//! update as tensor operations makes seven passes with temporaries. The elements are split evenly
//! across threads.

use tch::{Device, Kind, Tensor};

use super::Update;
use crate::cpu_values::{values, values_mut};

/// One parameter's values, its gradient's and its moments', or a part of each.
pub struct Values<'a> {
    param: &'a mut [f32],
    grad: &'a [f32],
    mean: &'a mut [f32],
    square: &'a mut [f32],
}

impl<'a> Values<'a> {
    /// The values of every parameter with its gradient and moments, when all of them are
    /// contiguous f32 tensors on the CPU whose memory does not overlap; `None` otherwise.
    pub fn of(params: &'a [Tensor], grads: &'a [Tensor], moments: &'a [(Tensor, Tensor)]) -> Option<Vec<Values<'a>>> {
        let tensors = || params.iter().chain(grads).chain(moments.iter().flat_map(|(m, v)| [m, v]));
        if !tensors().all(|t| t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous()) {
            return None;
        }
        let shapes_match = params.iter().zip(grads).zip(moments).all(|((p, g), (m, v))| {
            let size = p.size();
            g.size() == size && m.size() == size && v.size() == size
        });
        if !shapes_match || !disjoint(tensors()) {
            return None;
        }
        let values = params.iter().zip(grads).zip(moments).filter(|((p, _), _)| p.numel() > 0).map(|((p, g), (m, v))| {
            // SAFETY: each tensor is a non-empty contiguous f32 CPU tensor, so `data_ptr` points
            // to `numel` f32 values that live as long as the borrowed tensor; no two of the
            // tensors share memory (checked above), and nothing else reads or writes them while
            // the step runs, as the trainer's shards have finished.
            unsafe { Values { param: values_mut(p), grad: values(g), mean: values_mut(m), square: values_mut(v) } }
        });
        Some(values.collect())
    }

    /// These values in `n` contiguous parts of nearly equal length (fewer when they are shorter).
    fn split(self, n: usize) -> impl Iterator<Item = Values<'a>> {
        let len = self.param.len().div_ceil(n.max(1));
        self.param
            .chunks_mut(len)
            .zip(self.grad.chunks(len))
            .zip(self.mean.chunks_mut(len))
            .zip(self.square.chunks_mut(len))
            .map(|(((param, grad), mean), square)| Values { param, grad, mean, square })
    }

    /// Applies `update` to every element, in f32 as torch's kernel computes for f32.
    fn apply(self, update: &Update32) {
        let Update32 { grad_scale, one_minus_beta1, one_minus_beta2, decay, step_size, root_c2, eps } = *update;
        let elements = self.param.iter_mut().zip(self.grad).zip(self.mean.iter_mut()).zip(self.square.iter_mut());
        for (((param, &grad), mean), square) in elements {
            let grad = grad * grad_scale;
            *mean += one_minus_beta1 * (grad - *mean);
            *square += one_minus_beta2 * (grad * grad - *square);
            if step_size > 0.0 {
                *param = *param * decay - step_size * *mean / (square.sqrt() / root_c2 + eps);
            }
        }
    }
}

/// [`Update`] in f32.
#[derive(Clone, Copy)]
struct Update32 {
    grad_scale: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    decay: f32,
    step_size: f32,
    root_c2: f32,
    eps: f32,
}

impl From<Update> for Update32 {
    fn from(u: Update) -> Update32 {
        Update32 {
            grad_scale: u.grad_scale as f32,
            one_minus_beta1: (1.0 - u.betas[0]) as f32,
            one_minus_beta2: (1.0 - u.betas[1]) as f32,
            decay: u.decay as f32,
            step_size: u.step_size as f32,
            root_c2: u.root_c2 as f32,
            eps: u.eps as f32,
        }
    }
}

/// Applies `update` to `values` on `threads` threads, each taking one part of every parameter.
pub fn step(values: Vec<Values>, update: Update, threads: usize) {
    let update = Update32::from(update);
    let threads = threads.max(1);
    let mut parts: Vec<Vec<Values>> = (0..threads).map(|_| Vec::new()).collect();
    for value in values {
        for (part, piece) in parts.iter_mut().zip(value.split(threads)) {
            part.push(piece);
        }
    }
    std::thread::scope(|scope| {
        for part in parts {
            scope.spawn(move || part.into_iter().for_each(|piece| piece.apply(&update)));
        }
    });
}

/// Whether no two of `tensors` share a byte of memory.
fn disjoint<'t>(tensors: impl Iterator<Item = &'t Tensor>) -> bool {
    let mut ranges: Vec<(usize, usize)> = tensors
        .filter(|t| t.numel() > 0)
        .map(|t| {
            let start = t.data_ptr() as usize;
            (start, start + t.numel() * std::mem::size_of::<f32>())
        })
        .collect();
    ranges.sort_unstable();
    ranges.windows(2).all(|pair| pair[0].1 <= pair[1].0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_sharing_memory_take_the_tensor_operations() {
        let params = [Tensor::zeros([4], (Kind::Float, Device::Cpu))];
        let moments = [(params[0].zeros_like(), params[0].zeros_like())];
        assert!(Values::of(&params, &[params[0].ones_like()], &moments).is_some());
        assert!(Values::of(&params, &[params[0].shallow_clone()], &moments).is_none());
        let both = Tensor::zeros([6], (Kind::Float, Device::Cpu));
        let overlapping = [(both.narrow(0, 0, 4), both.narrow(0, 2, 4))];
        assert!(Values::of(&params, &[params[0].ones_like()], &overlapping).is_none());
        let apart = [(both.narrow(0, 0, 3).view([3]), both.narrow(0, 3, 3))];
        let short = [Tensor::zeros([3], (Kind::Float, Device::Cpu))];
        assert!(Values::of(&short, &[short[0].ones_like()], &apart).is_some());
    }

    #[test]
    fn parts_cover_every_element_once() {
        let (mut param, grad, mut mean, mut square) = (vec![0f32; 7], vec![0f32; 7], vec![0f32; 7], vec![0f32; 7]);
        let values = Values { param: &mut param, grad: &grad, mean: &mut mean, square: &mut square };
        let lengths: Vec<usize> = values.split(3).map(|part| part.param.len()).collect();
        assert_eq!(lengths, [3, 3, 1]);
    }
}
