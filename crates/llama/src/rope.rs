//! Rotary position embeddings, computed in f32 exactly as transformers computes them.

use std::f64::consts::PI;

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use crate::config::RopeScaling;

/// Inverse frequencies `[head_dim / 2]` (f32) for rope base `theta`, with `scaling` applied.
pub fn inv_freq(head_dim: usize, theta: f64, scaling: RopeScaling, device: Device) -> Result<Tensor> {
    let exponents = Tensor::f_arange_start_step(0, head_dim as i64, 2, (Kind::Int64, device))?
        .f_to_kind(Kind::Float)?
        .f_div_scalar(head_dim as f64)?;
    let base = Tensor::f_pow_scalar(theta, &exponents)?.f_reciprocal()?;
    Ok(match scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.f_div_scalar(factor)?,
        RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings: old } => {
            // transformers' _compute_llama3_parameters, operation for operation (torch's
            // `scalar / t` is `t.reciprocal() * scalar`): long wavelengths are divided by the
            // factor, short ones kept, and the band between interpolated smoothly.
            let low_freq_wavelen = old / low_freq_factor;
            let high_freq_wavelen = old / high_freq_factor;
            let wavelen = base.f_reciprocal()?.f_mul_scalar(2.0 * PI)?;
            let scaled = base.f_div_scalar(factor)?;
            let llama = scaled.f_where_self(&wavelen.f_gt(low_freq_wavelen)?, &base)?;
            let smooth = wavelen
                .f_reciprocal()?
                .f_mul_scalar(old)?
                .f_sub_scalar(low_freq_factor)?
                .f_div_scalar(high_freq_factor - low_freq_factor)?;
            let one_minus = smooth.f_neg()?.f_add_scalar(1.0)?;
            let smoothed = one_minus.f_mul(&llama)?.f_div_scalar(factor)?.f_add(&smooth.f_mul(&llama)?)?;
            let medium = wavelen
                .f_lt(high_freq_wavelen)?
                .f_logical_not()?
                .f_logical_and(&wavelen.f_gt(low_freq_wavelen)?.f_logical_not()?)?;
            smoothed.f_where_self(&medium, &llama)?
        }
    })
}

/// Cosines and sines `[batch, 1, tokens, head_dim]` in `kind` for `positions` (`[batch,
/// tokens]` int64).
pub fn cos_sin(inv_freq: &Tensor, positions: &Tensor, kind: Kind) -> Result<(Tensor, Tensor)> {
    let freqs = positions.f_to_kind(Kind::Float)?.f_unsqueeze(-1)?.f_mul(inv_freq)?;
    let angles = Tensor::f_cat(&[&freqs, &freqs], -1)?;
    let cos = angles.f_cos()?.f_to_kind(kind)?.f_unsqueeze(1)?;
    let sin = angles.f_sin()?.f_to_kind(kind)?.f_unsqueeze(1)?;
    Ok((cos, sin))
}

/// `x * cos + rotate_half(x) * sin` for `x` `[batch, heads, tokens, head_dim]`.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.size()[3] / 2;
    let rotated = Tensor::f_cat(&[&x.f_narrow(3, half, half)?.f_neg()?, &x.f_narrow(3, 0, half)?], 3)?;
    Ok(x.f_mul(cos)?.f_add(&rotated.f_mul(sin)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
    }

    #[test]
    fn default_frequencies_are_theta_powers() {
        let got = values(&inv_freq(8, 10_000.0, RopeScaling::None, Device::Cpu).unwrap());
        let want: Vec<f64> = (0..4).map(|i| 10_000f64.powf(-(2.0 * i as f64) / 8.0)).collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-7 * w, "{g} vs {w}");
        }
    }

    /// Llama 3.1's published rule, written out per frequency.
    #[test]
    fn llama3_scaling_follows_the_published_rule() {
        let (factor, low, high, old) = (8.0, 1.0, 4.0, 64.0);
        let scaling = RopeScaling::Llama3 {
            factor,
            low_freq_factor: low,
            high_freq_factor: high,
            original_max_position_embeddings: old,
        };
        let base = values(&inv_freq(32, 10_000.0, RopeScaling::None, Device::Cpu).unwrap());
        let got = values(&inv_freq(32, 10_000.0, scaling, Device::Cpu).unwrap());
        let mut bands = [0; 3];
        for (f, g) in base.iter().zip(&got) {
            let wavelen = 2.0 * PI / f;
            let want = if wavelen < old / high {
                bands[0] += 1;
                *f
            } else if wavelen > old / low {
                bands[2] += 1;
                f / factor
            } else {
                bands[1] += 1;
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            };
            assert!((g - want).abs() < 1e-6 * want, "{g} vs {want}");
        }
        assert!(bands.iter().all(|&n| n > 0), "every band is exercised: {bands:?}");
    }

    #[test]
    fn rotation_preserves_norms_and_is_identity_at_position_zero() {
        tch::manual_seed(0);
        let x = Tensor::randn([1, 2, 3, 8], (Kind::Float, Device::Cpu));
        let freqs = inv_freq(8, 10_000.0, RopeScaling::None, Device::Cpu).unwrap();
        let positions = Tensor::from_slice(&[0i64, 5, 9]).view([1, 3]);
        let (cos, sin) = cos_sin(&freqs, &positions, Kind::Float).unwrap();
        let y = apply(&x, &cos, &sin).unwrap();
        let norms = |t: &Tensor| t.norm_scalaropt_dim(2, [-1].as_slice(), false);
        assert!(norms(&y).allclose(&norms(&x), 1e-5, 1e-5, false));
        assert!(y.narrow(2, 0, 1).allclose(&x.narrow(2, 0, 1), 1e-6, 1e-6, false));
        assert!(!y.narrow(2, 1, 1).allclose(&x.narrow(2, 1, 1), 1e-3, 1e-3, false));
    }
}
