//! The key/value cache of a generation, kept outside the model so the model stays immutable.

use anyhow::{Context, Result};
use tch::Tensor;

/// Keys and values of every decoder layer for the positions processed so far, each
/// `[batch, kv_heads, positions, head_dim]`. A forward pass given a cache attends to the cached
/// positions and appends its own.
#[derive(Debug)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for a model of `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> KvCache {
        KvCache { layers: (0..num_layers).map(|_| None).collect() }
    }

    /// Number of cached positions (0 when empty).
    pub fn len(&self) -> i64 {
        match self.layers.first() {
            Some(Some((keys, _))) => keys.size()[2],
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `keys` and `values` of `layer` (`[batch, kv_heads, new, head_dim]`) and returns
    /// the layer's keys and values for every position so far.
    pub fn append(&mut self, layer: usize, keys: &Tensor, values: &Tensor) -> Result<(Tensor, Tensor)> {
        let slot = self.layers.get_mut(layer).with_context(|| format!("the cache has no layer {layer}"))?;
        let all = match slot.take() {
            None => (keys.shallow_clone(), values.shallow_clone()),
            Some((old_keys, old_values)) => (
                Tensor::f_cat(&[&old_keys, keys], 2).context("appending keys to the cache")?,
                Tensor::f_cat(&[&old_values, values], 2).context("appending values to the cache")?,
            ),
        };
        *slot = Some((all.0.shallow_clone(), all.1.shallow_clone()));
        Ok(all)
    }

    /// Keeps only the batch rows `rows` (int64 indices into the current batch), in that order:
    /// finished sequences leave the batch.
    pub fn retain_rows(&mut self, rows: &Tensor) -> Result<()> {
        for (keys, values) in self.layers.iter_mut().flatten() {
            *keys = keys.f_index_select(0, rows).context("selecting cached keys")?;
            *values = values.f_index_select(0, rows).context("selecting cached values")?;
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
