//! The linear layer's product, arranged for libtorch's CPU BLAS.

use std::ops::RangeInclusive;

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

/// Row counts for which [`linear`] multiplies the other way round: a decoding step's batch.
const FEW_ROWS: RangeInclusive<i64> = 8..=64;

/// `x · weightᵀ + bias` for `x` `[…, in]` and `weight` `[out, in]`, as `Tensor::linear`. In
/// f32 on the CPU with few rows (8 to 64, a decoding step's batch) it computes `(weight · xᵀ)ᵀ`
/// instead: the same dot products, but MKL then packs the small `xᵀ` before multiplying,
/// rather than the whole weight matrix at every call; below 8 rows that is slower, so those
/// multiply the usual way (bench/README.md, measurement history). Other dtypes keep
/// `Tensor::linear`, whose bf16 rounding matches transformers'.
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let size = x.size();
    let (&inputs, leading) = size.split_last().context("a linear layer's input needs at least one dimension")?;
    let rows: i64 = leading.iter().product();
    if x.device() != Device::Cpu || x.kind() != Kind::Float || !FEW_ROWS.contains(&rows) {
        return Ok(x.f_linear(weight, bias)?);
    }
    let product = weight.f_mm(&x.f_reshape([rows, inputs])?.f_tr()?)?.f_tr()?;
    let out = match bias {
        Some(bias) => product.f_add(bias)?,
        None => product,
    };
    let shape: Vec<i64> = leading.iter().copied().chain([weight.size()[0]]).collect();
    Ok(out.f_contiguous()?.f_reshape(shape.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_plain_product_for_every_row_count() {
        tch::manual_seed(5);
        let weight = Tensor::randn([48, 40], (Kind::Float, Device::Cpu));
        let bias = Tensor::randn([48], (Kind::Float, Device::Cpu));
        for shape in [vec![40], vec![1, 1, 40], vec![2, 40], vec![8, 40], vec![16, 1, 40], vec![4, 16, 40], vec![3, 50, 40]] {
            let x = Tensor::randn(shape.as_slice(), (Kind::Float, Device::Cpu));
            for bias in [None, Some(&bias)] {
                let got = linear(&x, &weight, bias).unwrap();
                let want = x.linear(&weight, bias);
                assert_eq!(got.size(), want.size(), "{shape:?}");
                assert!(got.is_contiguous(), "{shape:?}");
                assert!(got.allclose(&want, 1e-6, 1e-5, false), "{shape:?}, bias {}", bias.is_some());
            }
        }
    }

    #[test]
    fn gradients_flow_through_the_rearranged_product() {
        let weight = Tensor::randn([6, 5], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let x = Tensor::randn([8, 5], (Kind::Float, Device::Cpu));
        linear(&x, &weight, None).unwrap().sum(Kind::Float).backward();
        let want = x.sum_dim_intlist([0i64].as_slice(), false, Kind::Float).unsqueeze(0).expand([6, 5], false);
        assert!(weight.grad().allclose(&want, 1e-6, 1e-6, false));
    }
}
