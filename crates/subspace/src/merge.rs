//! Projection merges as weights (METHOD.md, experiment 1): W = W_aligned + P (same),
//! W_aligned + (T − P) (orth) or W_aligned − P (opp), built one tensor at a time so the
//! evaluator can load a merged model without it ever being written, and `entangle-project
//! --write` can save one.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use entangle_artifacts::RunDir;
use entangle_checkpoint::{write_checkpoint, Checkpoint, WriteOptions};
use entangle_pipeline::{MergeMethod, Pipeline, SvdMode};
use tch::Tensor;

use crate::bases::{direction, ensure_basis, BasisSources};
use crate::basis_file::BasisFile;
use crate::linalg::{dot, rank_for_fraction, sq_norm};
use crate::models::{check_same_tensors, is_floating, open_model, Numerics};
use crate::project::projection_config;
use entangle_pipeline::MergeSpec;

/// The version of how a merge is built: bump it whenever a merge's weights would change, so
/// that the evaluator does not reuse what it scored of the old ones. 2: `random` projects
/// tensors without a basis on a Gaussian direction, not on A's.
pub const MERGE_VERSION: u32 = 2;

/// One merged model of a run, ready to be built tensor by tensor: the base, aligned and
/// fine-tuned checkpoints (memory-mapped) and the basis of the spec's kind.
pub struct Merge {
    pub spec: MergeSpec,
    numerics: Numerics,
    base: Checkpoint,
    aligned: Checkpoint,
    finetune: Checkpoint,
    basis: BasisFile,
    /// Draws the `random` kind's directions.
    seed: u64,
}

impl Merge {
    /// Opens the models of `spec` in replicate `replicate` of `run` under the pipeline's
    /// `[projection]` section (with `svd` overriding its SVD mode), computing the basis of the
    /// spec's kind first unless the run has it up to date.
    pub fn open(run: &RunDir, spec: &MergeSpec, replicate: u32, svd: Option<SvdMode>) -> Result<Merge> {
        let pipeline = Pipeline::load_from_run(run)?;
        pipeline.check_replicate(replicate)?;
        let config = projection_config(&pipeline, svd);
        let numerics = Numerics { svd: config.svd, precision: config.precision };
        let base = open_model(run, &pipeline, &config.base, replicate)?;
        let aligned = open_model(run, &pipeline, &config.aligned, replicate)?;
        let finetune = open_model(run, &pipeline, &spec.finetune, replicate)?;
        check_same_tensors(&aligned, &base)?;
        check_same_tensors(&aligned, &finetune)?;
        let seed = Pipeline::replicate_seed(pipeline.seed, replicate);
        let sources = BasisSources { base: &base, aligned: &aligned, numerics, replicate, seed };
        let (path, _) = ensure_basis(run, spec.kind, &sources, false)?;
        let basis = BasisFile::open(&path)?;
        Ok(Merge { spec: spec.clone(), numerics, base, aligned, finetune, basis, seed })
    }

    /// Every tensor of the merged model in name order, in the aligned model's dtypes (fp16 in
    /// the reference procedure). Tensors that are not floating point are the aligned model's.
    pub fn tensors(&self) -> impl Iterator<Item = Result<(String, Tensor)>> + '_ {
        self.aligned.tensors().map(|info| {
            let tensor = self.tensor(&info.name).with_context(|| format!("merging tensor {} for {}", info.name, self.spec))?;
            Ok((info.name.clone(), tensor))
        })
    }

    /// Tensor `name` of the merged model.
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let info = self
            .aligned
            .info(name)
            .with_context(|| format!("{}: no tensor named {name}", self.aligned.dir.display()))?;
        if !is_floating(info.dtype) {
            return self.aligned.load_stored(name);
        }
        let weight = self.numerics.weight(&self.aligned, name)?;
        let task = self.numerics.delta(&self.finetune, &self.aligned, name)?;
        let rank = match info.shape[..] {
            [rows, cols] => rank_for_fraction(self.spec.fraction, rows.min(cols)),
            _ => None,
        };
        let parallel = match rank {
            Some(k) => subspace_part(&task, &self.basis.u(name)?.f_narrow(1, 0, k as i64)?)?,
            None => {
                let alignment = self.numerics.delta(&self.aligned, &self.base, name)?;
                direction_part(&task, &direction(self.spec.kind, &alignment, self.seed, name)?)?
            }
        };
        let merged = merged(&weight, &task, &parallel, self.spec.method)?;
        Ok(merged.f_to_kind(self.numerics.stored_kind(info.dtype)?)?)
    }

    /// Writes the merged model as a Hugging Face checkpoint at `out`, with the aligned model's
    /// config and tokenizer files; an existing `out` is replaced only when `force`.
    pub fn write(&self, out: &Path, force: bool) -> Result<()> {
        ensure!(force || !out.exists(), "{} already exists (pass --force to replace it)", out.display());
        let options = WriteOptions { copy_files_from: Some(&self.aligned.dir), ..WriteOptions::default() };
        write_checkpoint(out, &self.aligned.config, self.tensors(), &options)
    }
}

/// P = L Lᵀ T for a basis `l` with orthonormal columns.
pub(crate) fn subspace_part(task: &Tensor, l: &Tensor) -> Result<Tensor> {
    l.f_tr()
        .and_then(|lt| lt.f_mm(task))
        .and_then(|c| l.f_mm(&c))
        .context("projecting on the subspace")
}

/// P = (⟨T, A⟩ / ⟨A, A⟩) A, the projection on the direction of A; 0 when A = 0.
pub(crate) fn direction_part(task: &Tensor, alignment: &Tensor) -> Result<Tensor> {
    let align_energy = sq_norm(alignment)?;
    let scale = if align_energy > 0.0 { dot(task, alignment)? / align_energy } else { 0.0 };
    Ok(alignment.f_mul_scalar(scale)?)
}

/// The merged weight of `method`: W + P, W + (T − P) or W − P.
pub(crate) fn merged(weight: &Tensor, task: &Tensor, parallel: &Tensor, method: MergeMethod) -> Result<Tensor> {
    let merged = match method {
        MergeMethod::Same => weight.f_add(parallel),
        MergeMethod::Orth => task.f_sub(parallel).and_then(|kept| weight.f_add(&kept)),
        MergeMethod::Opp => weight.f_sub(parallel),
    };
    Ok(merged?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::tests::{from_nalgebra, max_abs_diff, nalgebra_projector, random_matrix, to_nalgebra};
    use crate::testing::{weights, model_updates, write_run, INDEX_TENSOR, TENSORS};
    use tch::Kind;

    fn spec(text: &str) -> MergeSpec {
        text.parse().unwrap()
    }

    fn fixture(name: &str, tensor: &str) -> Tensor {
        let all = weights(&model_updates(name));
        all.into_iter().find(|(n, _)| n == tensor).unwrap().1.to_kind(Kind::Double)
    }

    #[test]
    fn merges_match_nalgebra_projections_and_the_direction_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let run = write_run(tmp.path(), "[projection]\nprecision = \"f64\"\n");
        for text in ["useful:topk:same:0.25", "harmful:topk:orth:0.5", "useful:topk:opp:0.99"] {
            let spec = spec(text);
            let merge = Merge::open(&run, &spec, 1, None).unwrap();
            for &(name, shape) in TENSORS {
                let aligned = fixture("aligned", name);
                let task = fixture(&spec.finetune, name) - &aligned;
                let alignment = &aligned - fixture("base", name);
                let parallel = if let [rows, cols] = shape[..] {
                    let k = rank_for_fraction(spec.fraction, rows.min(cols) as usize).unwrap();
                    from_nalgebra(&(nalgebra_projector(&to_nalgebra(&alignment), k) * to_nalgebra(&task)))
                } else {
                    &alignment * (task.dot(&alignment).double_value(&[]) / alignment.dot(&alignment).double_value(&[]))
                };
                let expected = match spec.method {
                    MergeMethod::Same => &aligned + &parallel,
                    MergeMethod::Orth => &aligned + (&task - &parallel),
                    MergeMethod::Opp => &aligned - &parallel,
                };
                let ours = merge.tensor(name).unwrap();
                assert_eq!(ours.kind(), Kind::Float, "stored like the aligned model");
                assert!(max_abs_diff(&ours, &expected) < 1e-5, "{text} {name}: {}", max_abs_diff(&ours, &expected));
            }
        }
    }

    #[test]
    fn same_plus_orth_reconstruct_the_fine_tune() {
        let tmp = tempfile::tempdir().unwrap();
        let run = write_run(tmp.path(), "");
        for kind in ["topk", "randomk", "random"] {
            let same = Merge::open(&run, &spec(&format!("harmful:{kind}:same:0.5")), 1, None).unwrap();
            let orth = Merge::open(&run, &spec(&format!("harmful:{kind}:orth:0.5")), 1, None).unwrap();
            for &(name, _) in TENSORS {
                let aligned = fixture("aligned", name);
                let sum = same.tensor(name).unwrap().to_kind(Kind::Double) + orth.tensor(name).unwrap().to_kind(Kind::Double) - &aligned;
                assert!(max_abs_diff(&sum, &fixture("harmful", name)) < 1e-5, "{kind} {name}");
            }
        }
    }

    #[test]
    fn written_merge_is_a_checkpoint_with_the_aligned_config_and_tokenizer() {
        let tmp = tempfile::tempdir().unwrap();
        let run = write_run(tmp.path(), "");
        let merge = Merge::open(&run, &spec("useful:random:orth:0.25"), 1, Some(SvdMode::Reference)).unwrap();
        let out = tmp.path().join("merged");
        merge.write(&out, false).unwrap();
        let err = format!("{:#}", merge.write(&out, false).unwrap_err());
        assert_eq!(err, format!("{} already exists (pass --force to replace it)", out.display()));
        merge.write(&out, true).unwrap();
        let written = Checkpoint::open(&out).unwrap();
        assert_eq!(written.config["num_hidden_layers"], 2);
        assert_eq!(std::fs::read_to_string(out.join("tokenizer.json")).unwrap(), "{\"model\": \"aligned\"}");
        assert_eq!(written.tensors().count(), TENSORS.len() + 1);
        assert!(written.load_stored(INDEX_TENSOR).unwrap().equal(&Tensor::arange(4, (Kind::Int64, tch::Device::Cpu))));
        for &(name, _) in TENSORS {
            let stored = written.load_stored(name).unwrap();
            assert_eq!(stored.kind(), Kind::Half, "the reference procedure saves fp16");
            assert!(stored.equal(&merge.tensor(name).unwrap()), "{name}");
        }
    }

    #[test]
    fn direction_part_of_a_zero_alignment_is_zero() {
        let task = random_matrix(3, 2, 1);
        let zero = Tensor::zeros([3, 2], (Kind::Double, tch::Device::Cpu));
        assert_eq!(direction_part(&task, &zero).unwrap().abs().sum(Kind::Double).double_value(&[]), 0.0);
    }
}
