//! The real tokens of a padded batch, packed into rows so that every per-token computation
//! (norms, projections, the MLP, the output projection) skips the padding; only attention needs
//! the padded layout. The same rows select the positions a loss needs logits at.

use anyhow::{bail, ensure, Context, Result};
use tch::{Kind, Tensor};

/// Where the real (or otherwise selected) tokens of a `[batch, tokens]` batch are: indices into
/// its flattened positions, in row-major order.
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
        let width = mask.size().last().copied().context("the attention mask has no dimensions")?;
        let real = mask.f_narrow(-1, width - tokens, tokens)?.f_ne(0)?;
        if real.f_all()?.f_int64_value(&[])? == 1 {
            return Ok(None);
        }
        Packing::selecting(&real).map(Some)
    }

    /// The packing of the positions where `selected` (`[batch, tokens]` bool) is true.
    pub fn selecting(selected: &Tensor) -> Result<Packing> {
        let [batch, tokens] = selected.size()[..] else {
            bail!("positions to select must be [batch, tokens], got {:?}", selected.size())
        };
        ensure!(selected.kind() == Kind::Bool, "positions to select must be bool, got {:?}", selected.kind());
        let rows = selected.f_reshape([-1])?.f_nonzero()?.f_squeeze_dim(1).context("locating the selected positions")?;
        Ok(Packing { rows, batch, tokens })
    }

    /// The selected rows of `x` (`[batch, tokens, features]`): `[selected, features]`.
    pub fn pack(&self, x: &Tensor) -> Result<Tensor> {
        let [batch, tokens, features] = x.size()[..] else { bail!("packing needs [batch, tokens, features], got {:?}", x.size()) };
        ensure!([batch, tokens] == [self.batch, self.tokens], "packing a [{batch}, {tokens}] batch with a [{}, {}] packing", self.batch, self.tokens);
        Ok(x.f_reshape([-1, features])?.f_index_select(0, &self.rows)?)
    }

    /// `x` (`[selected, features]`) back in the batch's layout, `[batch, tokens, features]`,
    /// with zeros elsewhere.
    pub fn unpack(&self, x: &Tensor) -> Result<Tensor> {
        let features = x.size().last().copied().context("unpacking needs at least one dimension")?;
        let zeros = Tensor::f_zeros([self.batch * self.tokens, features], (x.kind(), x.device()))?;
        Ok(zeros.f_index_copy(0, &self.rows, x)?.f_view([self.batch, self.tokens, features])?)
    }
}

/// `x` packed when `packing` is given, else unchanged.
pub fn packed(packing: Option<&Packing>, x: Tensor) -> Result<Tensor> {
    match packing {
        Some(p) => p.pack(&x),
        None => Ok(x),
    }
}

/// `x` in the batch's layout when `packing` is given, else unchanged.
pub fn unpacked(packing: Option<&Packing>, x: Tensor) -> Result<Tensor> {
    match packing {
        Some(p) => p.unpack(&x),
        None => Ok(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

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
        assert!(packing.pack(&x.narrow(1, 0, 2)).is_err(), "a batch of another shape");
    }

    #[test]
    fn selection_takes_a_bool_matrix() {
        let x = Tensor::arange(8, (Kind::Float, Device::Cpu)).view([2, 2, 2]);
        let selected = Tensor::from_slice(&[false, true, true, false]).view([2, 2]);
        let rows = Packing::selecting(&selected).unwrap().pack(&x).unwrap();
        assert_eq!(Vec::<Vec<f32>>::try_from(&rows).unwrap(), [[2.0, 3.0], [4.0, 5.0]]);
        assert!(Packing::selecting(&selected.to_kind(Kind::Int64)).is_err());
        assert!(Packing::selecting(&selected.view([4])).is_err());
    }
}
