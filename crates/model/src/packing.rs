//! The real tokens of a padded batch, packed into rows so that every per-token computation
//! (norms, projections, the MLP, the output projection) skips the padding; only attention needs
//! the padded layout.

use anyhow::{Context, Result};
use tch::Tensor;

/// Where the real tokens of a `[batch, tokens]` batch are: indices into its flattened
/// positions, in row-major order.
#[derive(Debug)]
pub struct Packing {
    rows: Tensor,
    batch: i64,
    tokens: i64,
}

impl Packing {
    /// The packing of the last `tokens` columns of `mask` (`[batch, cached + tokens]`, 0 =
    /// pad), or `None` when all of them are real and packing would save nothing.
    pub fn of(mask: Option<&Tensor>, tokens: i64) -> Result<Option<Packing>> {
        let Some(mask) = mask else { return Ok(None) };
        let [batch, width] = mask.size()[..] else { anyhow::bail!("the attention mask must be 2-d, got {:?}", mask.size()) };
        let real = mask.f_narrow(1, width - tokens, tokens)?.f_ne(0)?;
        if real.f_all()?.f_int64_value(&[])? == 1 {
            return Ok(None);
        }
        let rows = real.f_reshape([-1])?.f_nonzero()?.f_squeeze_dim(1).context("locating the real tokens")?;
        Ok(Some(Packing { rows, batch, tokens }))
    }

    /// The real tokens' rows of `x` (`[batch, tokens, features]`): `[real, features]`.
    pub fn pack(&self, x: &Tensor) -> Result<Tensor> {
        let features = x.size().last().copied().context("packing needs at least one dimension")?;
        Ok(x.f_reshape([-1, features])?.f_index_select(0, &self.rows)?)
    }

    /// `x` (`[real, features]`) back in the batch's layout, `[batch, tokens, features]`, with
    /// zeros at the padding.
    pub fn unpack(&self, x: &Tensor) -> Result<Tensor> {
        let features = x.size().last().copied().context("unpacking needs at least one dimension")?;
        let zeros = Tensor::f_zeros([self.batch * self.tokens, features], (x.kind(), x.device()))?;
        Ok(zeros.f_index_copy(0, &self.rows, x)?.f_view([self.batch, self.tokens, features])?)
    }
}

/// `x` packed when `packing` is given, else unchanged.
pub fn packed(packing: Option<&Packing>, x: Tensor) -> Result<Tensor> {
    packing.map_or(Ok(x.shallow_clone()), |p| p.pack(&x))
}

/// `x` in the batch's layout when `packing` is given, else unchanged.
pub fn unpacked(packing: Option<&Packing>, x: Tensor) -> Result<Tensor> {
    packing.map_or(Ok(x.shallow_clone()), |p| p.unpack(&x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn packs_the_real_tokens_and_unpacks_with_zero_padding() {
        let mask = Tensor::from_slice(&[1i64, 0, 1, 1, 1, 1, 0, 1]).view([2, 4]);
        assert!(Packing::of(None, 3).unwrap().is_none());
        assert!(Packing::of(Some(&mask), 1).unwrap().is_none(), "no padding among the new tokens: nothing to pack");
        let packing = Packing::of(Some(&mask), 3).unwrap().unwrap();
        let x = Tensor::arange(12, (Kind::Float, Device::Cpu)).view([2, 3, 2]);
        let packed = packing.pack(&x).unwrap();
        assert_eq!(Vec::<Vec<f32>>::try_from(&packed).unwrap(), [[2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [10.0, 11.0]]);
        let back = packing.unpack(&packed).unwrap();
        let want = x.f_mul(&Tensor::from_slice(&[0.0f32, 1.0, 1.0, 1.0, 0.0, 1.0]).view([2, 3, 1])).unwrap();
        assert!(back.equal(&want));
    }
}
