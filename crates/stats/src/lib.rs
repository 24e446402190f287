//! Intervals that tell an effect from noise. Every number the evaluation summarises, and every
//! difference the report states, comes with a seeded percentile-bootstrap 95% interval, so a
//! report is reproducible and a finding can say "more", "less" or "no detectable difference"
//! by whether its interval excludes zero ([`Estimate::verdict`]).
//!
//! [`mean_with_interval`] resamples items; [`difference_with_interval`] resamples the paired
//! differences of two settings on the same prompts, within replicates that are resampled too,
//! so both the prompts' and the training draws' variation widen the interval (METHOD.md,
//! "Beyond the paper"). [`percentile_interval`] turns any statistic's values on resamples (an
//! activation overlap's, say) into its interval. No dependency on the model runtime: the evaluator and the report both
//! use it.
//!
//! ```
//! let topk_minus_random = vec![vec![-0.2, 0.0, -0.4, -0.1, 0.0, -0.3]];
//! let estimate = entangle_stats::difference_with_interval(&topk_minus_random, 7).unwrap();
//! assert_eq!(estimate.verdict(), entangle_stats::Verdict::Less);
//! ```

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Number of bootstrap resamples.
pub const RESAMPLES: usize = 1000;

/// A mean (or mean difference) and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Items behind it (all replicates together).
    pub n: usize,
}

/// What an interval of a difference says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The interval lies above zero.
    More,
    /// The interval lies below zero.
    Less,
    /// The interval includes zero.
    NoDetectableDifference,
}

impl Estimate {
    /// Whether the interval excludes zero, and on which side.
    pub fn verdict(&self) -> Verdict {
        if self.ci_low > 0.0 {
            Verdict::More
        } else if self.ci_high < 0.0 {
            Verdict::Less
        } else {
            Verdict::NoDetectableDifference
        }
    }
}

/// The mean of `values` with a percentile-bootstrap 95% interval from `seed`; `None` when
/// there are no values.
pub fn mean_with_interval(values: &[f64], seed: u64) -> Option<Estimate> {
    difference_with_interval(&[values.to_vec()], seed)
}

/// The mean of paired differences with a percentile-bootstrap 95% interval from `seed`.
/// `replicates[r][i]` is, in replicate r, one side's value on prompt i minus the other side's on
/// the same prompt. Each resample draws replicates with replacement, then prompts with
/// replacement within each drawn replicate; with one replicate it resamples prompts alone.
/// `None` when there is no difference to average.
pub fn difference_with_interval(replicates: &[Vec<f64>], seed: u64) -> Option<Estimate> {
    let replicates: Vec<&Vec<f64>> = replicates.iter().filter(|r| !r.is_empty()).collect();
    let n: usize = replicates.iter().map(|r| r.len()).sum();
    if n == 0 {
        return None;
    }
    let value = replicates.iter().flat_map(|r| r.iter()).sum::<f64>() / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..RESAMPLES).map(|_| resampled_mean(&replicates, &mut rng)).collect();
    let (ci_low, ci_high) = percentile_interval(means)?;
    Some(Estimate { value, ci_low, ci_high, n })
}

/// The percentile-bootstrap 95% interval of a statistic from its values on the resamples: the
/// 2.5th and 97.5th percentiles (nearest rank). `None` without resamples; NaNs sort last.
pub fn percentile_interval(mut resampled: Vec<f64>) -> Option<(f64, f64)> {
    if resampled.is_empty() {
        return None;
    }
    resampled.sort_by(f64::total_cmp);
    let last = resampled.len() - 1;
    let at = |q: f64| resampled[((q * last as f64).round() as usize).min(last)];
    Some((at(0.025), at(0.975)))
}

/// The mean of one two-level resample: replicates, then prompts within each.
fn resampled_mean(replicates: &[&Vec<f64>], rng: &mut ChaCha8Rng) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for _ in 0..replicates.len() {
        let replicate = replicates[rng.random_range(0..replicates.len())];
        for _ in 0..replicate.len() {
            sum += replicate[rng.random_range(0..replicate.len())];
        }
        count += replicate.len();
    }
    sum / count as f64
}

#[cfg(test)]
mod tests {
    use rand_distr::StandardNormal;

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

    /// Paired data with a known mean difference 0.2: 100 prompts each with its own difficulty
    /// shared by both sides (which pairing removes) and noise of its own.
    fn paired_differences(rng: &mut ChaCha8Rng, replicate_shift: f64) -> Vec<f64> {
        (0..100)
            .map(|_| {
                let difficulty: f64 = rng.sample(StandardNormal);
                let a = difficulty + 0.2 + replicate_shift + 0.5 * rng.sample::<f64, _>(StandardNormal);
                let b = difficulty + 0.5 * rng.sample::<f64, _>(StandardNormal);
                a - b
            })
            .collect()
    }

    #[test]
    fn the_paired_interval_covers_a_known_difference_at_about_its_nominal_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(2024);
        let covered = (0..200u64)
            .filter(|&trial| {
                let e = difference_with_interval(&[paired_differences(&mut rng, 0.0)], trial).unwrap();
                e.ci_low <= 0.2 && 0.2 <= e.ci_high
            })
            .count();
        assert!(covered >= 184, "{covered} of 200 intervals cover the difference (nominal 190)");
    }

    #[test]
    fn replicates_that_disagree_widen_the_interval() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let agreeing: Vec<Vec<f64>> = (0..3).map(|_| paired_differences(&mut rng, 0.0)).collect();
        let disagreeing: Vec<Vec<f64>> = [-0.3, 0.0, 0.3].iter().map(|&s| paired_differences(&mut rng, s)).collect();
        let (a, d) = (difference_with_interval(&agreeing, 1).unwrap(), difference_with_interval(&disagreeing, 1).unwrap());
        assert!(d.ci_high - d.ci_low > 1.5 * (a.ci_high - a.ci_low), "{a:?} vs {d:?}");
        assert_eq!(a.n, 300);
    }

    #[test]
    fn percentile_intervals_cut_two_and_a_half_percent_from_each_end() {
        let values: Vec<f64> = (0..=200).rev().map(f64::from).collect();
        assert_eq!(percentile_interval(values), Some((5.0, 195.0)));
        assert_eq!(percentile_interval(vec![3.0]), Some((3.0, 3.0)));
        assert_eq!(percentile_interval(Vec::new()), None);
    }

    #[test]
    fn verdicts_follow_the_interval() {
        let e = |low, high| Estimate { value: (low + high) / 2.0, ci_low: low, ci_high: high, n: 10 };
        assert_eq!(e(0.1, 0.3).verdict(), Verdict::More);
        assert_eq!(e(-0.3, -0.1).verdict(), Verdict::Less);
        assert_eq!(e(-0.1, 0.3).verdict(), Verdict::NoDetectableDifference);
        assert_eq!(e(0.0, 0.3).verdict(), Verdict::NoDetectableDifference);
        let noisy = difference_with_interval(&[vec![0.5, -0.6, 0.4, -0.3, 0.1, -0.2]], 3).unwrap();
        assert_eq!(noisy.verdict(), Verdict::NoDetectableDifference, "{noisy:?}");
    }
}
