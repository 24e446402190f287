//! Seeded random draws for the whole pipeline. Every random tensor the study makes — a fresh
//! model's initial weights, the `random` and `randomk` subspace bases, the probes of a randomized
//! SVD — comes from a generator seeded with the run seed, the draw's purpose and the tensor's
//! name, and is drawn on the CPU in Rust. So a draw does not depend on which other tensors exist,
//! on the order they are visited in, on other threads using libtorch's global generator, or on
//! the device the tensor ends up on.

use anyhow::{Context, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

/// The generator for one draw: seeded with SHA-256 of `seed`, the draw's `purpose` and the
/// tensor's `name`.
pub fn tensor_rng(seed: u64, purpose: &str, name: &str) -> ChaCha8Rng {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update((purpose.len() as u64).to_le_bytes());
    hasher.update(purpose.as_bytes());
    hasher.update(name.as_bytes());
    ChaCha8Rng::from_seed(hasher.finalize().into())
}

/// A CPU tensor of `shape` and kind `kind` holding independent standard normal values from
/// `rng` (drawn in f64 for `Kind::Double`, in f32 otherwise).
pub fn gaussian(shape: &[i64], kind: Kind, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let n = shape.iter().product::<i64>().max(0) as usize;
    let flat = if kind == Kind::Double {
        let values: Vec<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        Tensor::f_from_slice(&values)
    } else {
        let values: Vec<f32> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
        Tensor::f_from_slice(&values).and_then(|t| t.f_to_kind(kind))
    };
    flat.and_then(|t| t.f_reshape(shape)).with_context(|| format!("drawing a Gaussian tensor of shape {shape:?}"))
}

/// A uniformly random order of `0..n`.
pub fn permutation(n: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    let mut order: Vec<i64> = (0..n as i64).collect();
    order.shuffle(rng);
    order
}

/// `n` indices drawn uniformly from `0..n` with replacement: one bootstrap resample of `n`
/// rows.
pub fn resample(n: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
    (0..n).map(|_| rng.random_range(0..n as i64)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resample_draws_with_replacement_from_the_rows() {
        let rows = resample(50, &mut tensor_rng(1, "resample", "x"));
        assert!(rows.len() == 50 && rows.iter().all(|&i| (0..50).contains(&i)));
        let distinct: std::collections::BTreeSet<i64> = rows.iter().copied().collect();
        assert!(distinct.len() < 50, "50 draws from 50 rows repeat some");
        assert_eq!(rows, resample(50, &mut tensor_rng(1, "resample", "x")));
    }

    fn draw(seed: u64, purpose: &str, name: &str) -> Vec<f64> {
        let tensor = gaussian(&[3, 2], Kind::Double, &mut tensor_rng(seed, purpose, name)).unwrap();
        Vec::<f64>::try_from(&tensor.flatten(0, -1)).unwrap()
    }

    #[test]
    fn draws_depend_on_seed_purpose_and_name_only() {
        assert_eq!(draw(1, "random", "a"), draw(1, "random", "a"));
        assert_ne!(draw(1, "random", "a"), draw(2, "random", "a"));
        assert_ne!(draw(1, "random", "a"), draw(1, "random", "b"));
        assert_ne!(draw(1, "random", "a"), draw(1, "randomk", "a"));
        tch::manual_seed(3);
        let before = draw(1, "random", "a");
        let _ = Tensor::randn([100], (Kind::Float, tch::Device::Cpu));
        assert_eq!(before, draw(1, "random", "a"), "libtorch's global generator must not matter");
    }

    #[test]
    fn gaussian_has_the_shape_kind_and_moments_asked_for() {
        let tensor = gaussian(&[200, 50], Kind::BFloat16, &mut tensor_rng(0, "test", "moments")).unwrap();
        assert_eq!((tensor.size(), tensor.kind()), (vec![200, 50], Kind::BFloat16));
        let values = tensor.to_kind(Kind::Double);
        assert!(values.mean(Kind::Double).double_value(&[]).abs() < 0.03);
        assert!((values.std(true).double_value(&[]) - 1.0).abs() < 0.03);
        assert_eq!(gaussian(&[4], Kind::Float, &mut tensor_rng(0, "t", "v")).unwrap().size(), [4]);
    }

    #[test]
    fn permutations_are_seeded_orders_of_every_index() {
        let order = permutation(10, &mut tensor_rng(1, "randomk", "a"));
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(order, permutation(10, &mut tensor_rng(1, "randomk", "a")));
        assert_ne!(order, permutation(10, &mut tensor_rng(2, "randomk", "a")));
    }
}
