//! The alignment-subspace bases of METHOD.md, experiment 1, one file per kind, each computed once
//! per tensor and reused by every fraction, method and fine-tune:
//! - `topk`: the left singular vectors of A = W_aligned − W_base, largest singular value first;
//! - `randomk`: the same vectors in a seeded random order, so the first k are k of A's singular
//!   vectors chosen uniformly at random (derived from the `topk` file, no second SVD);
//! - `random`: the left singular vectors of a seeded Gaussian matrix of A's shape.
//!
//! Random draws are seeded from the replicate's seed and the tensor name only (see
//! [`entangle_draw::tensor_rng`]), never from the order tensors are visited in. `topk` is one
//! file for the run (`subspace/`); each replicate draws its own random kinds
//! (`replicates/<r>/subspace/`, stages `subspace:<kind>@<r>`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use entangle_checkpoint::Checkpoint;
use entangle_pipeline::SubspaceKind;
use serde::Serialize;
use tch::Tensor;

use crate::basis_file::{write_basis_file, Basis, BasisFile};
use crate::linalg::left_singular;
use entangle_draw::{gaussian, permutation, tensor_rng};
use crate::models::{floating_tensors, Numerics};
use entangle_artifacts::{progress_bar, stage_version, Outcome, RunDir, Stage, StageVersion};

/// The models and settings the bases of a run are computed from.
pub struct BasisSources<'a> {
    pub base: &'a Checkpoint,
    pub aligned: &'a Checkpoint,
    pub numerics: Numerics,
    /// The replicate whose random bases these are.
    pub replicate: u32,
    /// That replicate's seed ([`entangle_pipeline::Pipeline::replicate_seed`]).
    pub seed: u64,
}

#[derive(Serialize)]
struct BasisConfig {
    kind: &'static str,
    numerics: Numerics,
    /// Only the random kinds depend on the seed.
    seed: Option<u64>,
}

/// Makes sure `subspace/<kind>_svd.safetensors` (for a random kind, the replicate's own) is up
/// to date for these sources, computing it (stage `subspace:<kind>`, or `subspace:<kind>@<r>`)
/// when it is missing, stale or `force` is set, and returns its path. `randomk` first brings `topk` up to date, since it reorders those vectors.
pub fn ensure_basis(run: &RunDir, kind: SubspaceKind, sources: &BasisSources, force: bool) -> Result<(PathBuf, Outcome)> {
    let (path, name) = match kind {
        SubspaceKind::Topk => (run.svd(kind.name()), format!("subspace:{}", kind.name())),
        _ => (run.replicate(sources.replicate).svd(kind.name()), format!("subspace:{}@{}", kind.name(), sources.replicate)),
    };
    let topk_path = match kind {
        SubspaceKind::Randomk => Some(ensure_basis(run, SubspaceKind::Topk, sources, false)?.0),
        SubspaceKind::Topk | SubspaceKind::Random => None,
    };
    let seed = (kind != SubspaceKind::Topk).then_some(sources.seed);
    let config = BasisConfig { kind: kind.name(), numerics: sources.numerics, seed };
    let mut inputs = vec![sources.base.dir.as_path(), sources.aligned.dir.as_path()];
    inputs.extend(topk_path.as_deref());
    let stage = Stage::new(run, &name, VERSION, &config, &inputs)?;
    let outcome = stage.run(force, || {
        write_basis(&path, kind, &config, sources, topk_path.as_deref())?;
        Ok(vec![path.clone()])
    })?;
    Ok((path, outcome))
}

/// The code version of the `subspace:<kind>` stages: bump `algorithm` when a basis would change.
const VERSION: StageVersion = stage_version!(1);

/// Computes kind's basis and writes it to `path`.
fn write_basis(path: &Path, kind: SubspaceKind, config: &BasisConfig, sources: &BasisSources, topk_path: Option<&Path>) -> Result<()> {
    let source = match topk_path {
        Some(topk) => Source::Reordered(BasisFile::open(topk)?),
        None if kind == SubspaceKind::Random => Source::Gaussian,
        None => Source::Alignment,
    };
    let matrices = matrices(sources.aligned);
    tracing::info!("computing the {} basis of {} matrices", kind.name(), matrices.len());
    let bar = progress_bar(matrices.len() as u64, &format!("matrices of the {} basis", kind.name()));
    let shapes: BTreeMap<&str, [usize; 2]> = matrices.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let metadata = BTreeMap::from([
        ("kind".to_owned(), kind.name().to_owned()),
        ("config".to_owned(), serde_json::to_string(config)?),
    ]);
    write_basis_file(path, &matrices, sources.numerics.kind(), metadata, |name| {
        let basis = match &source {
            Source::Alignment => topk_basis(sources, name),
            Source::Reordered(topk) => randomk_basis(topk, sources.seed, name),
            Source::Gaussian => random_basis(shapes[name], sources, name),
        };
        bar.inc(1);
        basis.with_context(|| format!("{} basis of {name}", kind.name()))
    })?;
    bar.finish_and_clear();
    Ok(())
}

/// Where a kind's basis comes from.
enum Source {
    /// The SVD of the alignment update (`topk`).
    Alignment,
    /// The `topk` basis in a seeded random order (`randomk`).
    Reordered(BasisFile),
    /// The SVD of a seeded Gaussian matrix (`random`).
    Gaussian,
}

/// The 2-D floating tensors of `model`, which get a subspace basis.
pub fn matrices(model: &Checkpoint) -> Vec<(String, [usize; 2])> {
    floating_tensors(model)
        .into_iter()
        .filter_map(|(name, shape)| match shape[..] {
            [rows, cols] => Some((name, [rows, cols])),
            _ => None,
        })
        .collect()
}

fn topk_basis(sources: &BasisSources, name: &str) -> Result<Basis> {
    let alignment = sources.numerics.delta(sources.aligned, sources.base, name)?;
    let (u, s) = left_singular(&alignment)?;
    Ok(Basis { u, s })
}

fn randomk_basis(topk: &BasisFile, seed: u64, name: &str) -> Result<Basis> {
    let Basis { u, s } = topk.basis(name)?;
    let order = Tensor::f_from_slice(&permutation(s.size()[0] as usize, &mut tensor_rng(seed, "randomk", name)))?;
    Ok(Basis { u: u.f_index_select(1, &order)?, s: s.f_index_select(0, &order)? })
}

/// The single direction tensor `name` is projected on when it has no basis (it is not 2-D, or
/// the fraction lies outside (0, 1)): the alignment update A itself for `topk` and `randomk` (a
/// vector has one direction), and for `random` a seeded Gaussian draw of A's shape, so that the
/// control carries no alignment information (METHOD.md, experiment 1).
pub(crate) fn direction(kind: SubspaceKind, alignment: &Tensor, seed: u64, name: &str) -> Result<Tensor> {
    match kind {
        SubspaceKind::Topk | SubspaceKind::Randomk => Ok(alignment.shallow_clone()),
        SubspaceKind::Random => gaussian(&alignment.size(), alignment.kind(), &mut tensor_rng(seed, "random-direction", name)),
    }
}

fn random_basis([rows, cols]: [usize; 2], sources: &BasisSources, name: &str) -> Result<Basis> {
    let mut rng = tensor_rng(sources.seed, "random", name);
    let matrix = gaussian(&[rows as i64, cols as i64], sources.numerics.kind(), &mut rng)?;
    let (u, s) = left_singular(&matrix)?;
    Ok(Basis { u, s })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{weights, write_run, TENSORS};
    use entangle_checkpoint::{write_checkpoint, WriteOptions};
    use entangle_pipeline::{SvdMode, SvdPrecision};
    use std::path::Path;

    const NUMERICS: Numerics = Numerics { svd: SvdMode::Exact, precision: SvdPrecision::F32 };

    /// Computes the bases of `kind` for the run in `dir` with `seed`, and returns each 2-D
    /// fixture tensor's U.
    fn bases(dir: &Path, kind: SubspaceKind, seed: u64) -> Vec<Tensor> {
        let run = RunDir::new(dir);
        let base = Checkpoint::open(&run.model("base")).unwrap();
        let aligned = Checkpoint::open(&run.model("aligned")).unwrap();
        let sources = BasisSources { base: &base, aligned: &aligned, numerics: NUMERICS, replicate: 1, seed };
        let (path, _) = ensure_basis(&run, kind, &sources, false).unwrap();
        let file = BasisFile::open(&path).unwrap();
        TENSORS.iter().filter(|(_, shape)| shape.len() == 2).map(|(name, _)| file.u(name).unwrap()).collect()
    }

    /// Rewrites `model` of the run in `dir` with an extra 2-D tensor that sorts first.
    fn add_leading_tensor(dir: &Path, model: &str, updates: &[(u64, f64)]) {
        let mut tensors = weights(updates);
        tensors.insert(0, ("model.layers.0.aaa.weight".to_owned(), crate::testing::draw("aaa", &[5, 3], 9)));
        let config = serde_json::json!({ "model_type": "llama" });
        write_checkpoint(&RunDir::new(dir).model(model), &config, tensors.into_iter().map(Ok), &WriteOptions::default()).unwrap();
    }

    #[test]
    fn random_bases_depend_on_the_seed_and_not_on_other_tensors() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_run(one.path(), "");
        write_run(two.path(), "");
        add_leading_tensor(two.path(), "base", &[]);
        add_leading_tensor(two.path(), "aligned", &[(2, 0.1)]);
        for kind in [SubspaceKind::Random, SubspaceKind::Randomk] {
            let first = bases(one.path(), kind, 5);
            let with_extra_tensor = bases(two.path(), kind, 5);
            for (a, b) in first.iter().zip(&with_extra_tensor) {
                assert!(a.equal(b), "{kind:?}: a tensor's basis changed when another tensor was added");
            }
        }
        let reseeded = tempfile::tempdir().unwrap();
        write_run(reseeded.path(), "");
        let (five, six) = (bases(one.path(), SubspaceKind::Random, 5), bases(reseeded.path(), SubspaceKind::Random, 6));
        assert!(five.iter().zip(&six).all(|(a, b)| !a.equal(b)), "another seed draws other bases");
    }

    #[test]
    fn only_the_random_kind_draws_its_own_seeded_direction() {
        let alignment = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25, 1.5, -0.75, 1.0, 3.0]);
        for kind in [SubspaceKind::Topk, SubspaceKind::Randomk] {
            assert!(direction(kind, &alignment, 1, "model.norm.weight").unwrap().equal(&alignment), "{kind:?} keeps A's");
        }
        let draw = |seed, name| direction(SubspaceKind::Random, &alignment, seed, name).unwrap();
        let first = draw(1, "model.norm.weight");
        assert_eq!((first.size(), first.kind()), (alignment.size(), alignment.kind()));
        assert!(first.equal(&draw(1, "model.norm.weight")), "seeded: the same draw again");
        assert!(!first.equal(&draw(2, "model.norm.weight")), "another seed draws another direction");
        assert!(!first.equal(&draw(1, "model.layers.0.input_layernorm.weight")), "each tensor its own");
        let cosine = (&first * &alignment).sum(tch::Kind::Double).double_value(&[])
            / first.norm().double_value(&[])
            / alignment.norm().double_value(&[]);
        assert!(cosine.abs() < 0.9, "not A's direction: cosine {cosine}");
    }

    #[test]
    fn randomk_reorders_the_singular_vectors_of_topk() {
        let tmp = tempfile::tempdir().unwrap();
        write_run(tmp.path(), "");
        let topk = bases(tmp.path(), SubspaceKind::Topk, 5);
        let randomk = bases(tmp.path(), SubspaceKind::Randomk, 5);
        let mut reordered = 0;
        for (t, r) in topk.iter().zip(&randomk) {
            // Every column of the randomk basis is a column of the topk basis.
            let matches = t.tr().mm(r).abs().max_dim(0, false).0;
            // |⟨t_i, t_i⟩| is 1 within the f32 SVD's orthonormality, about n·u for n ≤ 24 rows.
            let tolerance = 10.0 * 24.0 * f64::from(f32::EPSILON) / 2.0;
            assert!((matches - 1.0).abs().max().double_value(&[]) < tolerance);
            reordered += usize::from(!t.equal(r));
        }
        assert!(reordered > 0);
    }

    #[test]
    fn a_basis_is_recomputed_only_when_its_inputs_or_configuration_change() {
        let tmp = tempfile::tempdir().unwrap();
        let run = write_run(tmp.path(), "");
        let base = Checkpoint::open(&run.model("base")).unwrap();
        let aligned = Checkpoint::open(&run.model("aligned")).unwrap();
        let sources = |seed| BasisSources { base: &base, aligned: &aligned, numerics: NUMERICS, replicate: 1, seed };
        let outcome = |kind, seed, force| ensure_basis(&run, kind, &sources(seed), force).unwrap().1;
        assert_eq!(outcome(SubspaceKind::Randomk, 5, false), Outcome::Finished);
        assert_eq!(outcome(SubspaceKind::Topk, 5, false), Outcome::UpToDate, "randomk brought topk up to date");
        assert_eq!(outcome(SubspaceKind::Topk, 6, false), Outcome::UpToDate, "topk does not depend on the seed");
        assert_eq!(outcome(SubspaceKind::Randomk, 6, false), Outcome::Finished);
        assert_eq!(outcome(SubspaceKind::Randomk, 6, true), Outcome::Finished);
        let f64s = BasisSources { numerics: Numerics { precision: SvdPrecision::F64, ..NUMERICS }, ..sources(6) };
        assert_eq!(ensure_basis(&run, SubspaceKind::Topk, &f64s, false).unwrap().1, Outcome::Finished);
        assert_eq!(BasisFile::open(&run.svd("topk")).unwrap().u("lm_head.weight").unwrap().kind(), tch::Kind::Double);
    }
}
