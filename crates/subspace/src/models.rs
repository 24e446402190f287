//! The models a subspace stage compares: opening them, checking that they share every tensor,
//! and computing weight differences one tensor at a time.

use anyhow::{Context, Result};
use entangle_artifacts::RunDir;
use entangle_checkpoint::{kind_of_dtype, Checkpoint, Dtype};
use entangle_pipeline::{Pipeline, SvdMode, SvdPrecision};
use serde::Serialize;
use tch::{Kind, Tensor};

/// How weights, their differences and SVDs are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Numerics {
    pub svd: SvdMode,
    pub precision: SvdPrecision,
}

impl Numerics {
    /// The kind that differences, bases and projections are computed in: f32 or f64 when
    /// exact; f32 in the reference procedure (whose differences are taken in fp16).
    pub fn kind(self) -> Kind {
        match (self.svd, self.precision) {
            (SvdMode::Exact, SvdPrecision::F64) => Kind::Double,
            _ => Kind::Float,
        }
    }

    /// Tensor `name` of `model` in [`Numerics::kind`]; the reference procedure first rounds it
    /// to fp16, as the authors load every model in fp16.
    pub fn weight(self, model: &Checkpoint, name: &str) -> Result<Tensor> {
        match self.svd {
            SvdMode::Exact => model.load(name, self.kind()),
            SvdMode::Reference => model.load(name, Kind::Half)?.f_to_kind(self.kind()).with_context(|| format!("converting {name}")),
        }
    }

    /// `minuend − subtrahend` for tensor `name`, in [`Numerics::kind`]: subtracted in that kind
    /// (exact) or in fp16 like the authors' script (reference).
    pub fn delta(self, minuend: &Checkpoint, subtrahend: &Checkpoint, name: &str) -> Result<Tensor> {
        let difference = match self.svd {
            SvdMode::Exact => minuend.load(name, self.kind())?.f_sub(&subtrahend.load(name, self.kind())?),
            SvdMode::Reference => minuend
                .load(name, Kind::Half)?
                .f_sub(&subtrahend.load(name, Kind::Half)?)
                .and_then(|d| d.f_to_kind(self.kind())),
        };
        difference.with_context(|| format!("difference of tensor {name}"))
    }

    /// The kind merged weights are stored in: the aligned model's own dtype, or fp16 in the
    /// reference procedure.
    pub fn stored_kind(self, dtype: Dtype) -> Result<Kind> {
        match self.svd {
            SvdMode::Exact => kind_of_dtype(dtype).with_context(|| format!("dtype {dtype:?} has no tch kind")),
            SvdMode::Reference => Ok(Kind::Half),
        }
    }
}

/// Resolves model `name` of the pipeline in replicate `replicate` (a hub id or local directory
/// from `[models]`, else the run's `models/<name>/`, see [`Pipeline::model_reference`]) and
/// opens it.
pub fn open_model(run: &RunDir, pipeline: &Pipeline, name: &str, replicate: u32) -> Result<Checkpoint> {
    let reference = pipeline.model_reference(run, name, replicate)?;
    entangle_checkpoint::resolve(&reference)
        .and_then(|dir| Checkpoint::open(&dir))
        .with_context(|| format!("opening model {name} ({reference})"))
}

/// Fails unless `other` has exactly the tensors of `reference`, with the same shapes; the error
/// names the first tensor that differs.
pub fn check_same_tensors(reference: &Checkpoint, other: &Checkpoint) -> Result<()> {
    let mismatch = |what: String| {
        anyhow::anyhow!("{} does not match {}: {what}", other.dir.display(), reference.dir.display())
    };
    for info in reference.tensors() {
        match other.info(&info.name) {
            None => return Err(mismatch(format!("tensor {} is missing", info.name))),
            Some(theirs) if theirs.shape != info.shape => {
                return Err(mismatch(format!(
                    "tensor {} has shape {:?} instead of {:?}",
                    info.name, theirs.shape, info.shape
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = other.tensors().find(|t| reference.info(&t.name).is_none()) {
        return Err(mismatch(format!("it has an extra tensor {}", extra.name)));
    }
    Ok(())
}

/// Whether tensors stored as `dtype` are weights the study takes apart.
pub fn is_floating(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F16 | Dtype::BF16 | Dtype::F32 | Dtype::F64)
}

/// The floating-point tensors of `model`: name and shape, sorted by name.
pub fn floating_tensors(model: &Checkpoint) -> Vec<(String, Vec<usize>)> {
    model
        .tensors()
        .filter(|t| is_floating(t.dtype))
        .map(|t| (t.name.clone(), t.shape.clone()))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use entangle_draw::{gaussian, tensor_rng};
    use entangle_checkpoint::{write_checkpoint, WriteOptions};
    use std::path::Path;

    /// Writes a checkpoint at `dir` with tensors `(name, shape)` drawn from a seeded Gaussian
    /// scaled by `scale`, plus `offset` (another seed's draw) when given.
    pub(crate) fn write_model(dir: &Path, tensors: &[(&str, &[i64])], seed: u64) {
        let config = serde_json::json!({ "model_type": "llama", "hidden_size": 8 });
        let items = tensors.iter().map(|&(name, shape)| {
            Ok((name.to_owned(), gaussian(shape, Kind::Float, &mut tensor_rng(seed, "test-model", name))?))
        });
        write_checkpoint(dir, &config, items, &WriteOptions::default()).unwrap();
    }

    fn check_mismatch(theirs: &[(&str, &[i64])], needle: &str) {
        let tmp = tempfile::tempdir().unwrap();
        write_model(&tmp.path().join("a"), &[("x.weight", &[2, 3]), ("y.weight", &[4])], 1);
        write_model(&tmp.path().join("b"), theirs, 2);
        let a = Checkpoint::open(&tmp.path().join("a")).unwrap();
        let b = Checkpoint::open(&tmp.path().join("b")).unwrap();
        let err = format!("{:#}", check_same_tensors(&a, &b).unwrap_err());
        assert!(err.contains(needle), "{err}");
        assert!(err.contains("does not match"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn mismatched_checkpoints_name_the_tensor() {
        check_mismatch(&[("x.weight", &[2, 3])], "tensor y.weight is missing");
        check_mismatch(&[("x.weight", &[3, 2]), ("y.weight", &[4])], "tensor x.weight has shape [3, 2] instead of [2, 3]");
        check_mismatch(&[("x.weight", &[2, 3]), ("y.weight", &[4]), ("z.bias", &[1])], "extra tensor z.bias");
    }

    #[test]
    fn deltas_are_exact_or_rounded_through_fp16() {
        let tmp = tempfile::tempdir().unwrap();
        write_model(&tmp.path().join("a"), &[("x.weight", &[3, 4])], 1);
        write_model(&tmp.path().join("b"), &[("x.weight", &[3, 4])], 2);
        let a = Checkpoint::open(&tmp.path().join("a")).unwrap();
        let b = Checkpoint::open(&tmp.path().join("b")).unwrap();
        let exact = Numerics { svd: SvdMode::Exact, precision: SvdPrecision::F64 };
        let reference = Numerics { svd: SvdMode::Reference, precision: SvdPrecision::F64 };
        let d = exact.delta(&a, &b, "x.weight").unwrap();
        assert_eq!(d.kind(), Kind::Double);
        let expected = a.load("x.weight", Kind::Double).unwrap() - b.load("x.weight", Kind::Double).unwrap();
        assert!(d.equal(&expected));
        let r = reference.delta(&a, &b, "x.weight").unwrap();
        assert_eq!(r.kind(), Kind::Float);
        let rounded = a.load("x.weight", Kind::Half).unwrap() - b.load("x.weight", Kind::Half).unwrap();
        assert!(r.equal(&rounded.to_kind(Kind::Float)));
        assert!(!r.to_kind(Kind::Double).equal(&d));
        assert_eq!(reference.stored_kind(Dtype::BF16).unwrap(), Kind::Half);
        assert_eq!(exact.stored_kind(Dtype::BF16).unwrap(), Kind::BFloat16);
    }
}
