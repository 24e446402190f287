//! Means with percentile-bootstrap 95% intervals: every summary number of the evaluation comes
//! with one, computed from a seeded resampling so reports are reproducible.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Number of bootstrap resamples.
pub const RESAMPLES: usize = 1000;

/// A mean and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub n: usize,
}

/// The mean of `values` with a percentile-bootstrap 95% interval from `seed`; `None` when
/// there are no values.
pub fn mean_with_interval(values: &[f64], seed: u64) -> Option<Estimate> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * (RESAMPLES - 1) as f64).round() as usize).min(RESAMPLES - 1)];
    Some(Estimate { value: mean, ci_low: at(0.025), ci_high: at(0.975), n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_brackets_the_mean_and_shrinks_with_n() {
        let small: Vec<f64> = (0..20).map(|i| f64::from(i % 2)).collect();
        let large: Vec<f64> = (0..2000).map(|i| f64::from(i % 2)).collect();
        let a = mean_with_interval(&small, 1).unwrap();
        let b = mean_with_interval(&large, 1).unwrap();
        assert_eq!((a.value, b.value, a.n), (0.5, 0.5, 20));
        assert!(a.ci_low < 0.5 && a.ci_high > 0.5);
        assert!(b.ci_high - b.ci_low < (a.ci_high - a.ci_low) / 4.0);
        // Binomial standard error at n = 2000 is 0.0112: the interval is about ±1.96 of it.
        assert!(((b.ci_high - b.ci_low) / 2.0 - 0.0219).abs() < 0.004, "{b:?}");
    }

    #[test]
    fn constant_values_have_a_point_interval_and_empty_has_none() {
        let e = mean_with_interval(&[2.0; 5], 3).unwrap();
        assert_eq!((e.value, e.ci_low, e.ci_high), (2.0, 2.0, 2.0));
        assert_eq!(mean_with_interval(&[], 3), None);
        assert_eq!(mean_with_interval(&[1.0, 0.0, 1.0], 9), mean_with_interval(&[1.0, 0.0, 1.0], 9));
    }
}
