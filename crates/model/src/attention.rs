//! Attention pieces shared by model families: the mask for cached, padded, optionally
//! windowed causal attention, and scaled dot-product attention with grouped key/value heads.

use anyhow::{Context, Result};
use tch::{Device, Kind, Tensor};

/// `padding` (`[batch, positions]`, 0 = pad) when it holds a pad; `None` when it is absent or
/// all ones, as in a batch of equal lengths. A forward pass checks this once and hands the
/// result to [`attention_mask`] (for every window size) and to `Packing::of`: on CUDA the check
/// waits for the device.
pub fn with_pads(padding: Option<&Tensor>) -> Result<Option<&Tensor>> {
    match padding {
        Some(p) if p.f_ne(0)?.f_all()?.f_int64_value(&[])? == 1 => Ok(None),
        p => Ok(p),
    }
}

/// The boolean mask, `[batch or 1, 1, new, cached + new]` with true where a query may attend,
/// for `new` tokens after `cached` ones: causal, within the last `window` positions when given
/// (transformers' sliding window: key > query − window), and never to padding (`padding`,
/// `[batch, cached + new]`, 0 = pad, as [`with_pads`] gives it). A padding query attends to
/// itself only, so no row is empty. `None` when plain causal attention over the new tokens is
/// exact (nothing cached, no window, no padding), so the fused causal kernel can run, as
/// transformers lets it.
pub fn attention_mask(
    padding: Option<&Tensor>,
    cached: i64,
    new: i64,
    window: Option<i64>,
    device: Device,
) -> Result<Option<Tensor>> {
    if padding.is_none() && cached == 0 && window.is_none() {
        return Ok(None);
    }
    let total = cached + new;
    let queries = Tensor::f_arange_start(cached, total, (Kind::Int64, device))?.f_unsqueeze(1)?;
    let keys = Tensor::f_arange(total, (Kind::Int64, device))?.f_unsqueeze(0)?;
    let mut allowed = keys.f_le_tensor(&queries)?;
    if let Some(window) = window {
        allowed = allowed.f_logical_and(&keys.f_gt_tensor(&queries.f_sub_scalar(window)?)?)?;
    }
    let allowed = match padding {
        None => allowed.f_unsqueeze(0)?,
        Some(padding) => {
            let real = padding.f_ne(0)?.f_unsqueeze(1)?;
            let itself = keys.f_eq_tensor(&queries)?.f_unsqueeze(0)?;
            allowed.f_unsqueeze(0)?.f_logical_and(&real.f_logical_or(&itself)?)?
        }
    };
    Ok(Some(allowed.f_unsqueeze(1).context("building the attention mask")?))
}

/// Softmax attention of `queries` (`[batch, heads, new, head_dim]`) over `keys` and `values`
/// (`[batch, kv_heads, positions, head_dim]`; each key/value head serves `heads / kv_heads`
/// query heads) with scale 1/√head_dim, under `mask` from [`attention_mask`] or causally when
/// it is `None`. Returns `[batch, new, heads * head_dim]`. Grouped key/value heads go to
/// libtorch's attention as they are (`enable_gqa`) rather than repeated per query head as
/// transformers' `repeat_kv` does, which saves copying every cached key and value at each step.
pub fn attend(queries: &Tensor, keys: &Tensor, values: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
    let [batch, heads, new, head_dim] = queries.size()[..] else {
        anyhow::bail!("attention queries must be 4-d, got {:?}", queries.size());
    };
    let groups = heads / keys.size()[1];
    let out = Tensor::f_scaled_dot_product_attention(queries, keys, values, mask, 0.0, mask.is_none(), None, groups > 1)
        .context("scaled dot-product attention")?;
    out.f_transpose(1, 2)?.f_reshape([batch, new, heads * head_dim]).context("merging attention heads")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask_rows(padding: Option<&[i64]>, cached: i64, new: i64, window: Option<i64>) -> Vec<Vec<i64>> {
        let padding = padding.map(|p| Tensor::from_slice(p).view([1, -1]));
        let mask = attention_mask(padding.as_ref(), cached, new, window, Device::Cpu).unwrap().unwrap();
        Vec::<Vec<i64>>::try_from(mask.select(0, 0).select(0, 0).to_kind(Kind::Int64)).unwrap()
    }

    #[test]
    fn mask_is_causal_padded_and_windowed() {
        assert!(attention_mask(None, 0, 3, None, Device::Cpu).unwrap().is_none());
        let unpadded = Tensor::from_slice(&[1i64, 1, 1, 1, 1, 1]).view([2, 3]);
        let pads = with_pads(Some(&unpadded)).unwrap();
        assert!(attention_mask(pads, 0, 3, None, Device::Cpu).unwrap().is_none(), "no padding: fused causal");
        assert_eq!(mask_rows(Some(&[1, 1, 1]), 1, 2, None), [[1, 1, 0], [1, 1, 1]]);
        assert_eq!(mask_rows(None, 1, 2, None), [[1, 1, 0], [1, 1, 1]]);
        assert_eq!(mask_rows(Some(&[0, 1, 1]), 0, 3, None), [[1, 0, 0], [0, 1, 0], [0, 1, 1]]);
        assert_eq!(mask_rows(Some(&[0, 1, 1, 1]), 3, 1, None), [[0, 1, 1, 1]]);
        assert_eq!(mask_rows(None, 0, 4, Some(2)), [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]);
    }

    /// Attention computed by hand: softmax(q kᵀ / √d + mask) v with each kv head shared by
    /// two query heads.
    #[test]
    fn attend_matches_the_definition() {
        tch::manual_seed(3);
        let opts = (Kind::Double, Device::Cpu);
        let (q, k, v) =
            (Tensor::randn([2, 4, 3, 8], opts), Tensor::randn([2, 2, 3, 8], opts), Tensor::randn([2, 2, 3, 8], opts));
        let padding = Tensor::from_slice(&[1i64, 1, 1, 0, 1, 1]).view([2, 3]);
        let mask = attention_mask(Some(&padding), 0, 3, None, Device::Cpu).unwrap();
        let got = attend(&q, &k, &v, mask.as_ref()).unwrap();
        let k2 = k.repeat_interleave_self_int(2, 1, None);
        let v2 = v.repeat_interleave_self_int(2, 1, None);
        let bias = Tensor::zeros([2, 1, 3, 3], opts).masked_fill(&mask.unwrap().logical_not(), f64::NEG_INFINITY);
        let weights = (q.matmul(&k2.transpose(2, 3)) / 8f64.sqrt() + bias).softmax(-1, Kind::Double);
        let want = weights.matmul(&v2).transpose(1, 2).reshape([2, 3, 32]);
        assert!(got.allclose(&want, 1e-10, 1e-10, false));
        let causal = attend(&q, &k, &v, None).unwrap();
        assert!(causal.get(0).allclose(&want.get(0), 1e-10, 1e-10, false));
    }
}
