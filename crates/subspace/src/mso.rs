//! Stage `mso@<r>` (METHOD.md, experiment 2): do replicate r's useful and harmful updates
//! ΔU = W_useful − W_ref and ΔH = W_harmful − W_ref use the same directions? For each tensor
//! and each layer (its tensors stacked row-wise), the Mode Subspace Overlap of their energy
//! bases at every energy fraction, its random baseline, and the cosines of the principal
//! angles, to `replicates/<r>/mso/update_spaces.parquet`.
//!
//! Each update is decomposed once; one product M = U_uᵀ U_h of the two full bases then serves
//! every energy fraction, whose overlap is read off M's leading k_u × k_h block.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use entangle_artifacts::{write_table, RunDir, UpdateMso};
use entangle_checkpoint::Checkpoint;
use entangle_pipeline::{Granularity, MsoConfig, Pipeline, SvdMode};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::layer::Layer;
use crate::linalg::{
    as_matrix, cumulative_squares, left_singular, randomized_left_singular, rank_for_energy, singular_values, sq_norm,
};
use entangle_draw::tensor_rng;
use crate::models::{check_same_tensors, floating_tensors, open_model, Numerics};
use entangle_artifacts::{progress_bar, stage_version, Outcome, Stage, StageVersion};

/// Above this many rows or columns the reference procedure switches to a randomized SVD.
const REFERENCE_EXACT_LIMIT: i64 = 10_000;

/// Flags of `entangle-mso` that change what the stage computes.
#[derive(Debug, Clone)]
pub struct MsoOptions {
    /// The replicate whose fine-tunes are compared (1 to the pipeline's `replicates`).
    pub replicate: u32,
    /// Overrides the pipeline's `mso.svd`.
    pub svd: Option<SvdMode>,
    /// Recompute even when the manifest says the table is up to date.
    pub force: bool,
}

impl Default for MsoOptions {
    /// Replicate 1 with the pipeline's settings.
    fn default() -> Self {
        MsoOptions { replicate: 1, svd: None, force: false }
    }
}

#[derive(Serialize)]
struct MsoStageConfig<'a> {
    mso: &'a MsoConfig,
    seed: u64,
}

/// Runs stage `mso@<r>` on `run`, unless the manifest shows its table up to date.
pub fn run(run: &RunDir, options: &MsoOptions) -> Result<Outcome> {
    let pipeline = Pipeline::load_from_run(run)?;
    let replicate = options.replicate;
    pipeline.check_replicate(replicate)?;
    let mut config = pipeline.mso.clone();
    if let Some(svd) = options.svd {
        config.svd = svd;
    }
    let reference = open_model(run, &pipeline, &config.reference, replicate)?;
    let useful = open_model(run, &pipeline, &config.useful, replicate)?;
    let harmful = open_model(run, &pipeline, &config.harmful, replicate)?;
    check_same_tensors(&reference, &useful)?;
    check_same_tensors(&reference, &harmful)?;
    let inputs = [reference.dir.as_path(), useful.dir.as_path(), harmful.dir.as_path()];
    let seed = Pipeline::replicate_seed(pipeline.seed, replicate);
    let stage = Stage::new(run, &format!("mso@{replicate}"), VERSION, &MsoStageConfig { mso: &config, seed }, &inputs)?;
    stage.run(options.force, || {
        let numerics = Numerics { svd: config.svd, precision: config.precision };
        let sweep = Sweep { config: &config, numerics, seed, replicate, reference: &reference, useful: &useful, harmful: &harmful };
        let rows = sweep.rows()?;
        let path = run.replicate(replicate).update_mso();
        write_table(&path, &rows)?;
        Ok(vec![path])
    })
}

/// The code version of stage `mso`: bump `algorithm` when its table would change.
const VERSION: StageVersion = stage_version!(2);

/// The left singular vectors of an update, most energetic first, and the cumulative sums of
/// its squared singular values.
pub struct Spectrum {
    pub u: Tensor,
    pub cumulative: Vec<f64>,
}

impl Spectrum {
    /// The exact spectrum of `matrix`; in the reference procedure, a matrix with more than
    /// 10,000 rows or columns gets the authors' randomized SVD instead (q = 25% of
    /// min(rows, cols), 2 power iterations), whose truncated spectrum then defines the energy.
    pub fn of(matrix: &Tensor, svd: SvdMode, rng: &mut ChaCha8Rng) -> Result<Spectrum> {
        let (rows, cols) = matrix.size2().context("the spectrum of a tensor that is not a matrix")?;
        let (u, s) = if svd == SvdMode::Reference && rows.max(cols) > REFERENCE_EXACT_LIMIT {
            let q = (rows.min(cols) / 4).max(1) as usize;
            randomized_left_singular(matrix, q, 2, rng)?
        } else {
            left_singular(matrix)?
        };
        Ok(Spectrum { u, cumulative: cumulative_squares(&s)? })
    }

    /// Σ s², the update's energy (within the computed spectrum).
    pub fn energy(&self) -> f64 {
        self.cumulative.last().copied().unwrap_or(0.0)
    }
}

/// The overlap of a useful and a harmful basis at one energy fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Overlap {
    pub energy_frac: f64,
    pub k_useful: usize,
    pub k_harmful: usize,
    /// Ambient dimension (rows).
    pub d: usize,
    pub mso: f64,
    /// max(k_useful, k_harmful) / d.
    pub mso_random: f64,
    pub cos_mean: f64,
    pub cos_max: f64,
}

/// Subspace agreement of two orthonormal bases Q_u, Q_h.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Principal {
    /// ‖Q_uᵀ Q_h‖_F² / min(k_u, k_h), the mean squared cosine of the principal angles (clamped
    /// to [0, 1] against rounding).
    pub mso: f64,
    /// Mean of the min(k_u, k_h) principal angles' cosines.
    pub cos_mean: f64,
    /// Largest principal angle cosine.
    pub cos_max: f64,
}

/// [`Principal`] of the subspaces spanned by the orthonormal columns of `q_u` and `q_h`.
pub fn principal(q_u: &Tensor, q_h: &Tensor) -> Result<Principal> {
    let cross = q_u.f_tr().and_then(|t| t.f_mm(q_h)).context("product of the two bases")?;
    principal_of_cross(&cross)
}

/// [`Principal`] from the cross product Q_uᵀ Q_h, whose singular values are the cosines.
fn principal_of_cross(cross: &Tensor) -> Result<Principal> {
    let (k_u, k_h) = cross.size2()?;
    let smaller = k_u.min(k_h) as f64;
    let cosines = singular_values(cross)?.f_to_kind(Kind::Double)?;
    let cosines: Vec<f64> = Vec::<f64>::try_from(&cosines)?.into_iter().map(|c| c.clamp(0.0, 1.0)).collect();
    Ok(Principal {
        mso: (sq_norm(cross)? / smaller).clamp(0.0, 1.0),
        cos_mean: cosines.iter().sum::<f64>() / smaller,
        cos_max: cosines.iter().copied().fold(0.0, f64::max),
    })
}

/// The overlap of the two updates' energy bases at each energy fraction.
pub fn overlaps(useful: &Spectrum, harmful: &Spectrum, energy_fractions: &[f64]) -> Result<Vec<Overlap>> {
    let cross = useful.u.f_tr().and_then(|t| t.f_mm(&harmful.u)).context("product of the two bases")?;
    let d = useful.u.size()[0] as usize;
    energy_fractions
        .iter()
        .map(|&energy_frac| {
            let k_useful = rank_for_energy(&useful.cumulative, energy_frac);
            let k_harmful = rank_for_energy(&harmful.cumulative, energy_frac);
            let block = cross.f_narrow(0, 0, k_useful as i64)?.f_narrow(1, 0, k_harmful as i64)?;
            let Principal { mso, cos_mean, cos_max } = principal_of_cross(&block)?;
            let mso_random = k_useful.max(k_harmful) as f64 / d as f64;
            Ok(Overlap { energy_frac, k_useful, k_harmful, d, mso, mso_random, cos_mean, cos_max })
        })
        .collect()
}

/// Everything the overlaps read.
struct Sweep<'a> {
    config: &'a MsoConfig,
    numerics: Numerics,
    seed: u64,
    replicate: u32,
    reference: &'a Checkpoint,
    useful: &'a Checkpoint,
    harmful: &'a Checkpoint,
}

/// The rows of one tensor or layer.
struct Group<'a> {
    name: &'a str,
    granularity: Granularity,
    layer: Layer,
    tensors: usize,
    replicate: u32,
}

impl Sweep<'_> {
    /// Every row of the table, layer by layer: the layer's tensors, then the layer itself.
    fn rows(&self) -> Result<Vec<UpdateMso>> {
        let tensors = floating_tensors(self.reference);
        let mut layers: BTreeMap<Layer, Vec<String>> = BTreeMap::new();
        for (name, _) in tensors.iter() {
            layers.entry(Layer::of(name)).or_default().push(name.clone());
        }
        let by_tensor = self.config.granularities.contains(&Granularity::Tensor);
        let by_layer = self.config.granularities.contains(&Granularity::Layer);
        tracing::info!("update-space overlaps of {} tensors in {} layers", tensors.len(), layers.len());
        let bar = progress_bar(tensors.len() as u64, "update overlaps");
        let mut rows = Vec::new();
        let mut zero_updates = 0;
        for (&layer, names) in &layers {
            let mut matrices = Vec::new();
            for name in names {
                let (useful, harmful) = self.updates(name)?;
                if by_tensor {
                    let group = Group { name, granularity: Granularity::Tensor, layer, tensors: 1, replicate: self.replicate };
                    match self.overlaps(name, &useful, &harmful).with_context(|| format!("overlap of tensor {name}"))? {
                        Some(overlaps) => rows.extend(group.rows(&overlaps)),
                        None => zero_updates += 1,
                    }
                }
                if by_layer {
                    matrices.push((name, useful, harmful));
                }
                bar.inc(1);
            }
            if by_layer {
                let label = layer.to_string();
                let (useful, harmful, count) = stack_layer(&matrices).with_context(|| format!("stacking layer {label}"))?;
                let group = Group { name: &label, granularity: Granularity::Layer, layer, tensors: count, replicate: self.replicate };
                match self.overlaps(&format!("layer {label}"), &useful, &harmful).with_context(|| format!("overlap of layer {label}"))? {
                    Some(overlaps) => rows.extend(group.rows(&overlaps)),
                    None => zero_updates += 1,
                }
            }
        }
        bar.finish_and_clear();
        if zero_updates > 0 {
            tracing::warn!("{zero_updates} tensors or layers left out: their useful or harmful update is zero");
        }
        Ok(rows)
    }

    /// ΔU and ΔH of tensor `name`, as matrices.
    fn updates(&self, name: &str) -> Result<(Tensor, Tensor)> {
        let useful = as_matrix(&self.numerics.delta(self.useful, self.reference, name)?)?;
        let harmful = as_matrix(&self.numerics.delta(self.harmful, self.reference, name)?)?;
        Ok((useful, harmful))
    }

    /// The overlaps of one group at every energy fraction; `None` when either update is zero.
    fn overlaps(&self, group: &str, useful: &Tensor, harmful: &Tensor) -> Result<Option<Vec<Overlap>>> {
        let svd = self.numerics.svd;
        let useful = Spectrum::of(useful, svd, &mut tensor_rng(self.seed, "mso-useful", group))?;
        let harmful = Spectrum::of(harmful, svd, &mut tensor_rng(self.seed, "mso-harmful", group))?;
        if useful.energy() <= 0.0 || harmful.energy() <= 0.0 {
            return Ok(None);
        }
        overlaps(&useful, &harmful, &self.config.energy_fractions).map(Some)
    }
}

impl Group<'_> {
    fn rows<'a>(&'a self, overlaps: &'a [Overlap]) -> impl Iterator<Item = UpdateMso> + 'a {
        overlaps.iter().map(|o| UpdateMso {
            group: self.name.to_owned(),
            granularity: self.granularity.name().to_owned(),
            layer: self.layer.to_string(),
            tensors: self.tensors as u64,
            energy_frac: o.energy_frac,
            k_useful: o.k_useful as u64,
            k_harmful: o.k_harmful as u64,
            d: o.d as u64,
            mso: o.mso,
            mso_random: o.mso_random,
            cos_mean: o.cos_mean,
            cos_max: o.cos_max,
            replicate: self.replicate,
        })
    }
}

/// A layer's update matrices stacked row-wise: the layer's width is the most common column
/// count of its matrices (the hidden size of a decoder layer); a matrix with that many columns
/// is stacked as is, one with that many rows is transposed (a down projection; a norm weight
/// as a row), and any other is left out. Returns ΔU, ΔH and the number of tensors stacked.
fn stack_layer(matrices: &[(&String, Tensor, Tensor)]) -> Result<(Tensor, Tensor, usize)> {
    let shapes: Vec<(i64, i64)> = matrices.iter().map(|(_, u, _)| u.size2()).collect::<Result<_, _>>()?;
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for &(_, cols) in &shapes {
        *counts.entry(cols).or_default() += 1;
    }
    let width = counts.iter().max_by_key(|&(&cols, &count)| (count, cols)).map(|(&cols, _)| cols).unwrap_or(0);
    let (mut useful, mut harmful) = (Vec::new(), Vec::new());
    for ((name, u, h), &(rows, cols)) in matrices.iter().zip(&shapes) {
        if cols == width {
            useful.push(u.shallow_clone());
            harmful.push(h.shallow_clone());
        } else if rows == width {
            useful.push(u.f_tr()?);
            harmful.push(h.f_tr()?);
        } else {
            tracing::debug!("{name} ({rows}×{cols}) left out of its layer of width {width}");
        }
    }
    let count = useful.len();
    Ok((Tensor::f_cat(&useful, 0)?, Tensor::f_cat(&harmful, 0)?, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::tests::random_matrix;
    use crate::linalg::left_singular;
    use entangle_draw::gaussian;
    use crate::testing::{model_updates, weights, write_run, TENSORS};
    use entangle_artifacts::read_table;
    use entangle_checkpoint::{write_checkpoint, WriteOptions};

    fn orthonormal(rows: usize, cols: usize, seed: u64) -> Tensor {
        left_singular(&random_matrix(rows, cols, seed)).unwrap().0
    }

    #[test]
    fn a_subspace_overlaps_itself_fully_and_an_orthogonal_one_not_at_all() {
        let q = orthonormal(10, 6, 1);
        let same = principal(&q.narrow(1, 0, 3), &q.narrow(1, 0, 3)).unwrap();
        assert!((same.mso - 1.0).abs() < 1e-12 && (same.cos_mean - 1.0).abs() < 1e-12 && (same.cos_max - 1.0).abs() < 1e-12, "{same:?}");
        let nested = principal(&q.narrow(1, 0, 2), &q.narrow(1, 0, 5)).unwrap();
        assert!((nested.mso - 1.0).abs() < 1e-12, "a subspace inside another: {nested:?}");
        let orthogonal = principal(&q.narrow(1, 0, 3), &q.narrow(1, 3, 3)).unwrap();
        assert!(orthogonal.mso < 1e-12 && orthogonal.cos_max < 1e-6, "{orthogonal:?}");
    }

    #[test]
    fn random_subspaces_overlap_as_the_baseline_predicts_on_average() {
        let (d, k_u, k_h, trials) = (40, 4, 10, 300);
        let mean = (0..trials)
            .map(|t| principal(&orthonormal(d, k_u, 2 * t), &orthonormal(d, k_h, 2 * t + 1)).unwrap().mso)
            .sum::<f64>()
            / trials as f64;
        let baseline = k_u.max(k_h) as f64 / d as f64;
        assert!((mean - baseline).abs() < 0.02, "mean {mean} vs baseline {baseline}");
    }

    #[test]
    fn overlaps_read_each_energy_basis_off_one_product() {
        let q = orthonormal(12, 12, 3);
        let scaled = |order: &[i64], values: &[f64]| {
            let u = q.index_select(1, &Tensor::from_slice(order));
            let s = Tensor::from_slice(values);
            Spectrum { u, cumulative: cumulative_squares(&s).unwrap() }
        };
        // Useful: directions 0, 1, 2 with energies 9, 4, 1; harmful: directions 0, 3, 4 with
        // 1, 1, 1 (so any fraction above 1/3 needs more than one vector).
        let useful = scaled(&[0, 1, 2], &[3.0, 2.0, 1.0]);
        let harmful = scaled(&[0, 3, 4], &[1.0, 1.0, 1.0]);
        let got = overlaps(&useful, &harmful, &[0.3, 0.9, 1.0]).unwrap();
        let check = |o: &Overlap, k_u, k_h, mso: f64, cos_mean: f64| {
            assert_eq!((o.k_useful, o.k_harmful, o.d), (k_u, k_h, 12), "{o:?}");
            assert!((o.mso - mso).abs() < 1e-9 && (o.cos_mean - cos_mean).abs() < 1e-9, "{o:?}");
            assert!((o.mso_random - k_u.max(k_h) as f64 / 12.0).abs() < 1e-12);
            assert!((o.cos_max - 1.0).abs() < 1e-9, "{o:?}");
        };
        check(&got[0], 1, 1, 1.0, 1.0);
        check(&got[1], 2, 3, 0.5, 0.5);
        check(&got[2], 3, 3, 1.0 / 3.0, 1.0 / 3.0);
    }

    #[test]
    fn reference_spectrum_is_randomized_only_for_large_matrices() {
        let small = random_matrix(30, 8, 1).to_kind(Kind::Float);
        let mut rng = tensor_rng(1, "test", "spectrum");
        let exact = Spectrum::of(&small, SvdMode::Reference, &mut rng).unwrap();
        assert_eq!(exact.u.size(), [30, 8]);
        // Singular values about 1000, 500 and 100: the top two directions are well separated.
        let scales = Tensor::from_slice(&[10.0f64, 5.0, 1.0]);
        let columns = gaussian(&[10_001, 3], Kind::Double, &mut rng).unwrap() * scales;
        let tall = columns.mm(&orthonormal(8, 3, 2).tr()).to_kind(Kind::Float);
        let randomized = Spectrum::of(&tall, SvdMode::Reference, &mut rng).unwrap();
        assert_eq!(randomized.u.size(), [10_001, 2], "q = 25% of 8 columns");
        let full = Spectrum::of(&tall, SvdMode::Exact, &mut rng).unwrap();
        assert_eq!(full.u.size(), [10_001, 8]);
        assert!(randomized.energy() < full.energy(), "energy is measured on the truncated spectrum");
        let overlap = principal(&randomized.u, &full.u.narrow(1, 0, 2)).unwrap();
        assert!(overlap.mso > 0.999, "{overlap:?}");
    }

    #[test]
    fn stage_writes_tensor_and_layer_rows_and_skips_an_unchanged_rerun() {
        let tmp = tempfile::tempdir().unwrap();
        let run = write_run(tmp.path(), "[mso]\nenergy_fractions = [0.1, 0.5, 0.99]\n");
        assert_eq!(super::run(&run, &MsoOptions::default()).unwrap(), Outcome::Finished);
        let rows: Vec<UpdateMso> = read_table(&run.replicate(1).update_mso()).unwrap();
        let (tensors, layers): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.granularity == "tensor");
        assert_eq!(tensors.len(), TENSORS.len() * 3);
        assert_eq!(layers.len(), 5 * 3, "embed, layers 0 and 1, norm, head");
        for row in &rows {
            assert!((0.0..=1.0).contains(&row.mso), "{row:?}");
            assert!(row.k_useful >= 1 && row.k_useful <= row.d && row.k_harmful >= 1 && row.k_harmful <= row.d, "{row:?}");
            assert_eq!(row.mso_random, row.k_useful.max(row.k_harmful) as f64 / row.d as f64);
            assert!(0.0 <= row.cos_mean && row.cos_mean <= row.cos_max && row.cos_max <= 1.0, "{row:?}");
        }
        let layer = |label: &str| layers.iter().find(|r| r.group == label).unwrap();
        assert_eq!((layer("0").d, layer("0").tensors), (8 + 4 + 12 + 12 + 1, 5), "q, k, up, down and norm transposed");
        assert_eq!((layer("1").d, layer("1").tensors), (8 + 1, 2));
        assert_eq!((layer("embed").d, layer("norm").d, layer("head").d), (24, 8, 24));
        let norm = tensors.iter().find(|r| r.group == "model.norm.weight").unwrap();
        assert_eq!((norm.d, norm.k_useful, norm.layer.as_str()), (8, 1, "norm"));

        assert_eq!(super::run(&run, &MsoOptions::default()).unwrap(), Outcome::UpToDate);
        let reference = MsoOptions { svd: Some(SvdMode::Reference), ..MsoOptions::default() };
        assert_eq!(super::run(&run, &reference).unwrap(), Outcome::Finished);
        assert_eq!(read_table::<UpdateMso>(&run.replicate(1).update_mso()).unwrap().len(), rows.len());
    }

    #[test]
    fn a_fine_tune_missing_a_tensor_is_one_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let run = write_run(tmp.path(), "");
        let config = serde_json::json!({ "model_type": "llama" });
        let tensors = weights(&model_updates("harmful")).into_iter().filter(|(n, _)| n != "model.norm.weight").map(Ok);
        write_checkpoint(&run.model("harmful"), &config, tensors, &WriteOptions::default()).unwrap();
        let err = format!("{:#}", super::run(&run, &MsoOptions::default()).unwrap_err());
        assert!(err.contains("tensor model.norm.weight is missing") && err.contains("models/harmful"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn layers_stack_rows_of_their_width() {
        let names: Vec<String> = ["q", "k", "down", "norm", "odd"].iter().map(|s| s.to_string()).collect();
        let shapes = [(8, 8), (4, 8), (8, 12), (8, 1), (3, 5)];
        let matrices: Vec<_> = names
            .iter()
            .zip(shapes)
            .map(|(n, (r, c))| (n, random_matrix(r, c, 1), random_matrix(r, c, 2)))
            .collect();
        let (useful, harmful, count) = stack_layer(&matrices).unwrap();
        assert_eq!(count, 4, "the 3×5 matrix fits neither way");
        assert_eq!(useful.size(), [8 + 4 + 12 + 1, 8]);
        assert!(useful.narrow(0, 8, 4).equal(&matrices[1].1));
        assert!(useful.narrow(0, 12, 12).equal(&matrices[2].1.tr()));
        assert!(harmful.narrow(0, 24, 1).equal(&matrices[3].2.tr()));
    }
}
