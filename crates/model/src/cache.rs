//! The key/value cache of a generation, kept outside the model so the model stays immutable.

use anyhow::{bail, Context, Result};
use tch::Tensor;

/// Keys and values of every decoder layer for the positions processed so far, each
/// `[batch, kv_heads, positions, head_dim]`. A forward pass given a cache attends to the cached
/// positions and appends its own. Each layer keeps its positions in a buffer with room to spare
/// ([`KvCache::reserve`]), so an append copies only the new positions; a full buffer doubles.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<Layer>>,
    /// Positions a layer's first buffer has room for.
    reserved: i64,
}

/// One layer's buffers `[batch, kv_heads, capacity, head_dim]`, of which the first `len`
/// positions are filled.
#[derive(Debug)]
struct Layer {
    keys: Tensor,
    values: Tensor,
    len: i64,
}

impl Layer {
    fn new(keys: &Tensor, values: &Tensor, capacity: i64) -> Result<Layer> {
        let buffer = |t: &Tensor| -> Result<Tensor> {
            let [batch, heads, new, dim] = t.size()[..] else { bail!("cached keys and values must be 4-d, got {:?}", t.size()) };
            let buffer = Tensor::f_empty([batch, heads, capacity.max(new), dim], (t.kind(), t.device()))?;
            buffer.f_narrow(2, 0, new)?.f_copy_(t)?;
            Ok(buffer)
        };
        Ok(Layer { keys: buffer(keys)?, values: buffer(values)?, len: keys.size()[2] })
    }

    fn append(&mut self, keys: &Tensor, values: &Tensor) -> Result<()> {
        let new = keys.size()[2];
        let capacity = self.keys.size()[2];
        if self.len + new > capacity {
            let grown = (2 * capacity).max(self.len + new);
            *self = Layer::new(&self.keys.f_narrow(2, 0, self.len)?, &self.values.f_narrow(2, 0, self.len)?, grown)?;
        }
        self.keys.f_narrow(2, self.len, new)?.f_copy_(keys).context("appending keys to the cache")?;
        self.values.f_narrow(2, self.len, new)?.f_copy_(values).context("appending values to the cache")?;
        self.len += new;
        Ok(())
    }

    fn filled(&self) -> Result<(Tensor, Tensor)> {
        Ok((self.keys.f_narrow(2, 0, self.len)?, self.values.f_narrow(2, 0, self.len)?))
    }
}

impl KvCache {
    /// An empty cache for a model of `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> KvCache {
        KvCache { layers: (0..num_layers).map(|_| None).collect(), reserved: 0 }
    }

    /// Makes the buffers the first append allocates hold `positions` (prompt plus the tokens to
    /// generate), so that decoding never reallocates.
    pub fn reserve(&mut self, positions: i64) {
        self.reserved = self.reserved.max(positions);
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> i64 {
        match self.layers.first() {
            Some(Some(layer)) => layer.len,
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `keys` and `values` of `layer` (`[batch, kv_heads, new, head_dim]`) and returns
    /// the layer's keys and values for every position so far (views of its buffers).
    pub fn append(&mut self, layer: usize, keys: &Tensor, values: &Tensor) -> Result<(Tensor, Tensor)> {
        let slot = self.layers.get_mut(layer).with_context(|| format!("the cache has no layer {layer}"))?;
        match slot {
            None => *slot = Some(Layer::new(keys, values, self.reserved)?),
            Some(cached) => cached.append(keys, values)?,
        }
        slot.as_ref().context("a filled cache slot")?.filled()
    }

    /// Keeps only the batch rows `rows` (int64 indices into the current batch), in that order:
    /// finished sequences leave the batch.
    pub fn retain_rows(&mut self, rows: &Tensor) -> Result<()> {
        for layer in self.layers.iter_mut().flatten() {
            layer.keys = layer.keys.f_index_select(0, rows).context("selecting cached keys")?;
            layer.values = layer.values.f_index_select(0, rows).context("selecting cached values")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn block(batch: i64, positions: i64, value: f64) -> Tensor {
        Tensor::full([batch, 2, positions, 4], value, (Kind::Float, Device::Cpu))
    }

    #[test]
    fn append_grows_every_layer_and_returns_all_positions() {
        let mut cache = KvCache::new(2);
        assert!(cache.is_empty());
        for layer in 0..2 {
            let (k, v) = cache.append(layer, &block(3, 5, 1.0), &block(3, 5, 2.0)).unwrap();
            assert_eq!(k.size(), [3, 2, 5, 4]);
            assert_eq!(v.double_value(&[0, 0, 0, 0]), 2.0);
        }
        assert_eq!(cache.len(), 5);
        let (k, _) = cache.append(0, &block(3, 1, 7.0), &block(3, 1, 7.0)).unwrap();
        assert_eq!(k.size(), [3, 2, 6, 4]);
        assert_eq!(k.double_value(&[0, 0, 5, 0]), 7.0);
        assert_eq!(k.double_value(&[0, 0, 4, 0]), 1.0);
        assert!(cache.append(2, &block(3, 1, 0.0), &block(3, 1, 0.0)).is_err());
    }

    #[test]
    fn reserved_and_grown_buffers_hold_the_same_positions() {
        let mut reserved = KvCache::new(1);
        reserved.reserve(8);
        let mut grown = KvCache::new(1);
        let first = Tensor::arange(2 * 2 * 3 * 4, (Kind::Float, Device::Cpu)).view([2, 2, 3, 4]);
        for cache in [&mut reserved, &mut grown] {
            let _ = cache.append(0, &first, &(&first * 2)).unwrap();
        }
        for step in 0..6 {
            let next = block(2, 1, step as f64);
            let (a, av) = reserved.append(0, &next, &next).unwrap();
            let (b, bv) = grown.append(0, &next, &next).unwrap();
            assert_eq!(a.size(), [2, 2, 4 + step, 4]);
            assert!(a.equal(&b) && av.equal(&bv), "step {step}");
            assert!(a.narrow(2, 0, 3).equal(&first) && av.narrow(2, 0, 3).equal(&(&first * 2)));
            assert_eq!(a.double_value(&[1, 1, 3 + step, 2]), step as f64);
        }
        assert_eq!((reserved.len(), grown.len()), (9, 9));
    }

    #[test]
    fn retain_rows_drops_finished_sequences() {
        let mut cache = KvCache::new(1);
        let keys = Tensor::arange(3, (Kind::Float, Device::Cpu)).view([3, 1, 1, 1]).expand([3, 2, 5, 4], false);
        let _ = cache.append(0, &keys, &keys).unwrap();
        cache.retain_rows(&Tensor::from_slice(&[2i64, 0])).unwrap();
        let (k, _) = cache.append(0, &block(2, 1, 9.0), &block(2, 1, 9.0)).unwrap();
        assert_eq!(k.size(), [2, 2, 6, 4]);
        assert_eq!(k.double_value(&[0, 0, 0, 0]), 2.0);
        assert_eq!(k.double_value(&[1, 0, 0, 0]), 0.0);
    }
}
