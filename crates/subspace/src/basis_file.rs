//! The basis cache `subspace/<kind>_svd.safetensors`: for every 2-D floating tensor `<name>`
//! of the model, `<name>.U` (rows × r orthonormal columns, r = min(rows, cols), in the kind's
//! order) and `<name>.S` (their r singular values, in the same order). The subspace of any
//! fraction is the first k columns of U. The file is written as a stream, one tensor's basis at
//! a time, and read lazily from a memory map.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use entangle_artifacts::write_atomic;
use entangle_checkpoint::tensor_from_map;
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};
use tch::{Kind, Tensor};

/// The basis of one tensor's subspace: orthonormal columns, the kind's order, and their weights.
pub struct Basis {
    /// rows × r, orthonormal columns.
    pub u: Tensor,
    /// r singular values, in the order of U's columns.
    pub s: Tensor,
}

struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    offsets: (usize, usize),
}

/// An open basis file.
pub struct BasisFile {
    path: PathBuf,
    mmap: Mmap,
    data_start: usize,
    entries: HashMap<String, Entry>,
}

impl BasisFile {
    /// Maps the basis file at `path` and reads its header.
    pub fn open(path: &Path) -> Result<BasisFile> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: read-only map of a file that is only ever replaced by rename, never rewritten
        // in place.
        let mmap = unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
        let (header_len, metadata) = SafeTensors::read_metadata(&mmap)
            .map_err(|e| anyhow::anyhow!("{}: invalid safetensors file: {e}", path.display()))?;
        let entries = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, Entry { dtype: info.dtype, shape: info.shape.clone(), offsets: info.data_offsets }))
            .collect();
        Ok(BasisFile { path: path.to_path_buf(), mmap, data_start: 8 + header_len, entries })
    }

    /// The basis of tensor `name`.
    pub fn basis(&self, name: &str) -> Result<Basis> {
        Ok(Basis { u: self.u(name)?, s: self.load(&format!("{name}.S"))? })
    }

    /// U of tensor `name`: its first k columns span the subspace of dimension k.
    pub fn u(&self, name: &str) -> Result<Tensor> {
        self.load(&format!("{name}.U"))
    }

    fn load(&self, key: &str) -> Result<Tensor> {
        let entry = self.entries.get(key).with_context(|| {
            format!("{}: no entry {key}; recompute it with `entangle-project --force`", self.path.display())
        })?;
        let kind = match entry.dtype {
            Dtype::F32 => Kind::Float,
            Dtype::F64 => Kind::Double,
            other => bail!("{}: entry {key} has dtype {other:?}, expected F32 or F64", self.path.display()),
        };
        let range = self.data_start + entry.offsets.0..self.data_start + entry.offsets.1;
        let shape: Vec<i64> = entry.shape.iter().map(|&d| d as i64).collect();
        tensor_from_map(&self.mmap, range, &shape, kind).with_context(|| format!("{}: reading {key}", self.path.display()))
    }
}

/// Writes the basis file at `path` for the 2-D `tensors` (name, [rows, cols]): `basis_of` is
/// called for each tensor in order and its basis streamed to disk in `kind` (f32 or f64), so
/// only one basis is in memory at a time. `metadata` goes into the safetensors header.
pub fn write_basis_file(
    path: &Path,
    tensors: &[(String, [usize; 2])],
    kind: Kind,
    metadata: BTreeMap<String, String>,
    mut basis_of: impl FnMut(&str) -> Result<Basis>,
) -> Result<()> {
    let (dtype, element_size) = match kind {
        Kind::Float => ("F32", 4),
        Kind::Double => ("F64", 8),
        other => bail!("bases are stored as f32 or f64, not {other:?}"),
    };
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".to_owned(), serde_json::json!(metadata));
    let mut offset = 0usize;
    for (name, [rows, cols]) in tensors {
        let rank = (*rows).min(*cols);
        for (key, shape) in [(format!("{name}.U"), vec![*rows, rank]), (format!("{name}.S"), vec![rank])] {
            let end = offset + shape.iter().product::<usize>() * element_size;
            header.insert(key, serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [offset, end] }));
            offset = end;
        }
    }
    let mut header = serde_json::to_vec(&header).context("serialising the basis header")?;
    header.resize(header.len().div_ceil(8) * 8, b' ');
    write_atomic(path, |w| {
        w.write_all(&(header.len() as u64).to_le_bytes())?;
        w.write_all(&header)?;
        for (name, [rows, cols]) in tensors {
            let basis = basis_of(name)?;
            let rank = (*rows).min(*cols) as i64;
            write_tensor(w, &basis.u, kind, &[*rows as i64, rank]).with_context(|| format!("basis of {name}"))?;
            write_tensor(w, &basis.s, kind, &[rank]).with_context(|| format!("singular values of {name}"))?;
        }
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

fn write_tensor(w: &mut impl Write, tensor: &Tensor, kind: Kind, shape: &[i64]) -> Result<()> {
    if tensor.size() != shape {
        bail!("shape {:?}, expected {shape:?}", tensor.size());
    }
    let tensor = tensor.f_to_kind(kind)?.f_contiguous()?;
    let numel = tensor.numel();
    let mut bytes = vec![0u8; numel * kind.elt_size_in_bytes()];
    tensor.f_copy_data_u8(&mut bytes, numel)?;
    w.write_all(&bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::tests::random_matrix;

    #[test]
    fn bases_round_trip_and_missing_ones_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("topk_svd.safetensors");
        let tensors = vec![("a.weight".to_owned(), [4, 3]), ("b.weight".to_owned(), [2, 5])];
        let written: HashMap<String, (Tensor, Tensor)> = tensors
            .iter()
            .map(|(name, [rows, cols])| {
                let r = (*rows).min(*cols);
                (name.clone(), (random_matrix(*rows, r, 1), random_matrix(r, 1, 2).squeeze_dim(1)))
            })
            .collect();
        let metadata = BTreeMap::from([("kind".to_owned(), "topk".to_owned())]);
        write_basis_file(&path, &tensors, Kind::Double, metadata, |name| {
            let (u, s) = &written[name];
            Ok(Basis { u: u.shallow_clone(), s: s.shallow_clone() })
        })
        .unwrap();
        let file = BasisFile::open(&path).unwrap();
        for (name, (u, s)) in &written {
            let basis = file.basis(name).unwrap();
            assert!(basis.u.equal(u) && basis.s.equal(s), "{name}");
        }
        let err = format!("{:#}", file.u("c.weight").unwrap_err());
        assert!(err.contains("no entry c.weight.U"), "{err}");
    }

    #[test]
    fn a_basis_of_the_wrong_shape_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("random_svd.safetensors");
        let tensors = vec![("a.weight".to_owned(), [4, 3])];
        let err = write_basis_file(&path, &tensors, Kind::Float, BTreeMap::new(), |_| {
            Ok(Basis { u: random_matrix(4, 2, 1), s: random_matrix(2, 1, 1).squeeze_dim(1) })
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("basis of a.weight: shape [4, 2], expected [4, 3]"), "{err:#}");
        assert!(!path.exists());
    }
}
