//! Stage `project@<r>` (METHOD.md, experiment 1): for every fine-tune, subspace kind, merge
//! method and fraction of the pipeline, how much of replicate r's task update
//! T = W_ft − W_aligned the merge keeps, summed over the model
//! (`replicates/<r>/projection/diagnostics.parquet`) and per tensor
//! (`replicates/<r>/projection/per_tensor.parquet`), with the replicate's own random bases.
//!
//! Each tensor is visited once: A and each T are loaded, and for each kind one product
//! C = Uᵀ T gives ‖P_k‖² = Σ_{i≤k} ‖C_i‖² for every fraction at once, because the columns of U
//! are orthonormal. Since P is an orthogonal projection, ⟨T, P⟩ = ‖P‖² and ‖T − P‖² =
//! ‖T‖² − ‖P‖², so no merged tensor is ever formed.

use std::path::PathBuf;

use anyhow::{Context, Result};
use entangle_artifacts::{write_table, ProjectionDiagnostic, ProjectionPerTensor, RunDir};
use entangle_checkpoint::Checkpoint;
use entangle_pipeline::{MergeMethod, Pipeline, ProjectionConfig, SvdMode};
use serde::Serialize;
use tch::{Kind, Tensor};

use crate::bases::{direction, ensure_basis, BasisSources};
use crate::basis_file::BasisFile;
use crate::layer::Layer;
use crate::linalg::{dot, rank_for_fraction, sq_norm};
use crate::models::{check_same_tensors, floating_tensors, open_model, Numerics};
use entangle_artifacts::{progress_bar, stage_version, Outcome, Stage, StageVersion};

/// Flags of `entangle-project` that change what the stage computes.
#[derive(Debug, Clone)]
pub struct ProjectOptions {
    /// The replicate to project (1 to the pipeline's `replicates`).
    pub replicate: u32,
    /// Overrides the pipeline's `projection.svd`.
    pub svd: Option<SvdMode>,
    /// Recompute bases and diagnostics even when the manifest says they are up to date.
    pub force: bool,
}

impl Default for ProjectOptions {
    /// Replicate 1 with the pipeline's settings.
    fn default() -> Self {
        ProjectOptions { replicate: 1, svd: None, force: false }
    }
}

#[derive(Serialize)]
struct ProjectConfig<'a> {
    projection: &'a ProjectionConfig,
    seed: u64,
}

/// Runs stage `project@<r>` on `run`: brings the basis of every kind up to date, then writes
/// the replicate's diagnostics tables, unless the manifest shows them up to date.
pub fn run(run: &RunDir, options: &ProjectOptions) -> Result<Outcome> {
    let pipeline = Pipeline::load_from_run(run)?;
    let replicate = options.replicate;
    pipeline.check_replicate(replicate)?;
    let config = projection_config(&pipeline, options.svd);
    let numerics = Numerics { svd: config.svd, precision: config.precision };
    let base = open_model(run, &pipeline, &config.base, replicate)?;
    let aligned = open_model(run, &pipeline, &config.aligned, replicate)?;
    check_same_tensors(&aligned, &base)?;
    let finetunes = config
        .finetunes
        .iter()
        .map(|name| {
            let model = open_model(run, &pipeline, name, replicate)?;
            check_same_tensors(&aligned, &model)?;
            Ok(model)
        })
        .collect::<Result<Vec<_>>>()?;
    let seed = Pipeline::replicate_seed(pipeline.seed, replicate);
    let sources = BasisSources { base: &base, aligned: &aligned, numerics, replicate, seed };
    let basis_paths = config
        .kinds
        .iter()
        .map(|&kind| Ok(ensure_basis(run, kind, &sources, options.force)?.0))
        .collect::<Result<Vec<PathBuf>>>()?;

    let mut inputs = vec![base.dir.as_path(), aligned.dir.as_path()];
    inputs.extend(finetunes.iter().map(|m| m.dir.as_path()));
    inputs.extend(basis_paths.iter().map(PathBuf::as_path));
    let stage = Stage::new(run, &format!("project@{replicate}"), VERSION, &ProjectConfig { projection: &config, seed }, &inputs)?;
    stage.run(options.force, || {
        let bases = basis_paths.iter().map(|p| BasisFile::open(p)).collect::<Result<Vec<_>>>()?;
        let sweep = Sweep { config: &config, numerics, base: &base, aligned: &aligned, finetunes: &finetunes, bases: &bases, seed, replicate };
        let (summary, per_tensor) = sweep.diagnostics()?;
        let scope = run.replicate(replicate);
        let (summary_path, per_tensor_path) = (scope.projection_diagnostics(), scope.projection_per_tensor());
        write_table(&summary_path, &summary)?;
        write_table(&per_tensor_path, &per_tensor)?;
        Ok(vec![summary_path, per_tensor_path])
    })
}

/// The code version of stage `project`: bump `algorithm` when its tables would change.
const VERSION: StageVersion = stage_version!(4);

/// The pipeline's `[projection]` section with `--svd` applied.
pub(crate) fn projection_config(pipeline: &Pipeline, svd: Option<SvdMode>) -> ProjectionConfig {
    let mut config = pipeline.projection.clone();
    if let Some(svd) = svd {
        config.svd = svd;
    }
    config
}

/// Everything the diagnostics read.
struct Sweep<'a> {
    config: &'a ProjectionConfig,
    numerics: Numerics,
    base: &'a Checkpoint,
    aligned: &'a Checkpoint,
    finetunes: &'a [Checkpoint],
    /// One per kind of the configuration, in its order.
    bases: &'a [BasisFile],
    /// Draws the `random` kind's directions: the replicate's seed.
    seed: u64,
    replicate: u32,
}

/// The projection of one task update for one kind and fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Parallel {
    /// Subspace dimension; `None` for the projection on the direction of A.
    pub k: Option<usize>,
    /// ‖P‖², which equals ⟨T, P⟩.
    pub energy: f64,
}

/// One tensor's terms for one fine-tune.
struct TaskTerms {
    task_energy: f64,
    task_align: f64,
    /// Indexed by kind, then fraction.
    parallel: Vec<Vec<Parallel>>,
}

/// What a merge method keeps of T.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Kept {
    /// ‖kept‖².
    pub energy: f64,
    /// ⟨T, kept⟩.
    pub task_dot: f64,
    /// ‖T − kept‖².
    pub removed: f64,
}

impl Kept {
    /// The kept part of T for `method` (P, T − P or −P), from ‖T‖² and ‖P‖² = ⟨T, P⟩. A
    /// projection cannot gain energy, so ‖P‖² is capped at ‖T‖² against rounding (P = T when
    /// the subspace is the whole column space).
    pub(crate) fn of(method: MergeMethod, task_energy: f64, parallel_energy: f64) -> Kept {
        let p = parallel_energy.min(task_energy);
        let rest = task_energy - p;
        match method {
            MergeMethod::Same => Kept { energy: p, task_dot: p, removed: rest },
            MergeMethod::Orth => Kept { energy: rest, task_dot: rest, removed: p },
            MergeMethod::Opp => Kept { energy: p, task_dot: -p, removed: task_energy + 3.0 * p },
        }
    }

    fn add(&mut self, other: &Kept) {
        self.energy += other.energy;
        self.task_dot += other.task_dot;
        self.removed += other.removed;
    }
}

impl Sweep<'_> {
    fn diagnostics(&self) -> Result<(Vec<ProjectionDiagnostic>, Vec<ProjectionPerTensor>)> {
        let tensors = floating_tensors(self.aligned);
        tracing::info!("projecting {} fine-tunes over {} tensors", self.finetunes.len(), tensors.len());
        let bar = progress_bar(tensors.len() as u64, "tensors' projection diagnostics");
        let combinations = self.finetunes.len() * self.config.kinds.len() * self.config.methods.len() * self.config.fractions.len();
        let mut kept_totals = vec![Kept::default(); combinations];
        let mut task_totals = vec![(0.0, 0.0); self.finetunes.len()];
        let mut align_total = 0.0;
        let mut per_tensor = Vec::new();
        for (name, shape) in &tensors {
            let alignment = self.numerics.delta(self.aligned, self.base, name)?;
            let align_energy = sq_norm(&alignment)?;
            align_total += align_energy;
            let layer = Layer::of(name).to_string();
            let terms = self.task_terms(name, shape.len(), &alignment, align_energy).with_context(|| format!("projecting tensor {name}"))?;
            let mut combination = 0;
            for (f, task) in terms.iter().enumerate() {
                task_totals[f].0 += task.task_energy;
                task_totals[f].1 += task.task_align;
                for (kind, parallel) in self.config.kinds.iter().zip(&task.parallel) {
                    for &method in &self.config.methods {
                        for (&frac, p) in self.config.fractions.iter().zip(parallel) {
                            let kept = Kept::of(method, task.task_energy, p.energy);
                            kept_totals[combination].add(&kept);
                            combination += 1;
                            per_tensor.push(ProjectionPerTensor {
                                finetune: self.config.finetunes[f].clone(),
                                kind: kind.name().to_owned(),
                                method: method.name().to_owned(),
                                fraction: frac,
                                tensor: name.clone(),
                                layer: layer.clone(),
                                k: p.k.map(|k| k as u64),
                                energy_kept: ratio(kept.energy, task.task_energy),
                                cos_task_kept: cosine(kept.task_dot, task.task_energy, kept.energy),
                                cos_task_align: cosine(task.task_align, task.task_energy, align_energy),
                                energy_removed: kept.removed,
                                task_energy: task.task_energy,
                                align_energy,
                                replicate: self.replicate,
                            });
                        }
                    }
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let mut kept_totals = kept_totals.into_iter();
        let mut summary = Vec::with_capacity(combinations);
        for (ft, &(task_energy, task_align)) in self.config.finetunes.iter().zip(&task_totals) {
            for kind in &self.config.kinds {
                for method in &self.config.methods {
                    for (&frac, kept) in self.config.fractions.iter().zip(kept_totals.by_ref()) {
                        summary.push(ProjectionDiagnostic {
                            finetune: ft.clone(),
                            kind: kind.name().to_owned(),
                            method: method.name().to_owned(),
                            fraction: frac,
                            energy_kept: ratio(kept.energy, task_energy),
                            cos_task_kept: cosine(kept.task_dot, task_energy, kept.energy),
                            cos_task_align: cosine(task_align, task_energy, align_total),
                            energy_removed: kept.removed,
                            task_energy,
                            align_energy: align_total,
                            replicate: self.replicate,
                        });
                    }
                }
            }
        }
        Ok((summary, per_tensor))
    }

    /// For each fine-tune: ‖T‖², ⟨T, A⟩ and the projections of T for every kind and fraction.
    fn task_terms(&self, name: &str, dims: usize, alignment: &Tensor, align_energy: f64) -> Result<Vec<TaskTerms>> {
        let bases = self
            .bases
            .iter()
            .map(|file| if dims == 2 { file.u(name).map(Some) } else { Ok(None) })
            .collect::<Result<Vec<_>>>()?;
        // Each kind's direction for what has no basis; fractions lie in (0, 1), so only
        // tensors that are not matrices need one.
        let directions = self
            .config
            .kinds
            .iter()
            .map(|&kind| if dims == 2 { Ok(None) } else { direction(kind, alignment, self.seed, name).map(Some) })
            .collect::<Result<Vec<_>>>()?;
        self.finetunes
            .iter()
            .map(|finetune| {
                let task = self.numerics.delta(finetune, self.aligned, name)?;
                let task_align = dot(&task, alignment)?;
                let parallel = bases
                    .iter()
                    .zip(&directions)
                    .map(|(u, d)| {
                        let (task_dir, dir_energy) = match d {
                            Some(d) => (dot(&task, d)?, sq_norm(d)?),
                            None => (task_align, align_energy),
                        };
                        parallel_energies(&task, u.as_ref(), task_dir, dir_energy, &self.config.fractions)
                    })
                    .collect::<Result<_>>()?;
                Ok(TaskTerms { task_energy: sq_norm(&task)?, task_align, parallel })
            })
            .collect()
    }
}

/// ‖P‖² for each fraction, where P projects `task` on the first k columns of `u` (k from the
/// fraction) or, without a basis or for a fraction outside (0, 1), on the kind's direction d
/// (see [`direction`]), given ⟨T, d⟩ and ‖d‖²: ‖P‖² = ⟨T, d⟩² / ‖d‖² (0 when d = 0).
pub(crate) fn parallel_energies(
    task: &Tensor,
    u: Option<&Tensor>,
    task_dir: f64,
    dir_energy: f64,
    fractions: &[f64],
) -> Result<Vec<Parallel>> {
    let on_direction = Parallel { k: None, energy: if dir_energy > 0.0 { task_dir * task_dir / dir_energy } else { 0.0 } };
    let Some(u) = u else {
        return Ok(vec![on_direction; fractions.len()]);
    };
    let row_energy = u
        .f_tr()
        .and_then(|ut| ut.f_mm(task))
        .and_then(|c| c.f_square())
        .and_then(|c| c.f_sum_dim_intlist(1, false, Kind::Double))
        .and_then(|e| e.f_cumsum(0, Kind::Double))
        .context("projecting on the basis")?;
    let cumulative = Vec::<f64>::try_from(&row_energy).context("reading projected energies")?;
    Ok(fractions
        .iter()
        .map(|&f| match rank_for_fraction(f, cumulative.len()) {
            Some(k) => Parallel { k: Some(k), energy: cumulative[k - 1] },
            None => on_direction,
        })
        .collect())
}

/// `numerator / denominator`, 0 when the denominator is 0.
fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

/// ⟨x, y⟩ / (‖x‖ ‖y‖) from the inner product and both squared norms, 0 when either is 0.
fn cosine(dot: f64, x_energy: f64, y_energy: f64) -> f64 {
    ratio(dot, x_energy.sqrt() * y_energy.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linalg::left_singular;
    use crate::linalg::tests::{nalgebra_projector, random_matrix, to_nalgebra};
    use crate::testing::{model_updates, weights, write_run, INDEX_TENSOR, TENSORS};
    use entangle_artifacts::read_table;

    /// Our ‖P‖², energy kept, cos(task, kept) and energy removed for every method and k match
    /// nalgebra's projector applied to T.
    #[test]
    fn diagnostics_agree_with_nalgebra_projections() {
        for (rows, cols, seed) in [(6, 4, 1), (4, 7, 2), (9, 9, 3)] {
            let alignment = random_matrix(rows, cols, seed);
            let task = random_matrix(rows, cols, seed + 100);
            let (u, _) = left_singular(&alignment).unwrap();
            let r = rows.min(cols);
            let fractions: Vec<f64> = (1..=r).map(|k| (k as f64 - 0.5) / r as f64).collect();
            let parallel = parallel_energies(&task, Some(&u), 0.0, 1.0, &fractions).unwrap();
            let t = to_nalgebra(&task);
            for (k, p) in (1..=r).zip(&parallel) {
                assert_eq!(p.k, rank_for_fraction((k as f64 - 0.5) / r as f64, r));
                let k = p.k.unwrap();
                let projected = nalgebra_projector(&to_nalgebra(&alignment), k) * &t;
                for method in [MergeMethod::Same, MergeMethod::Orth, MergeMethod::Opp] {
                    let kept = match method {
                        MergeMethod::Same => projected.clone(),
                        MergeMethod::Orth => &t - &projected,
                        MergeMethod::Opp => -projected.clone(),
                    };
                    let ours = Kept::of(method, t.norm_squared(), p.energy);
                    let check = |what: &str, x: f64, y: f64| assert!((x - y).abs() < 1e-5 * (1.0 + y.abs()), "{rows}×{cols} k={k} {method:?} {what}: {x} vs {y}");
                    check("energy", ours.energy, kept.norm_squared());
                    check("task·kept", ours.task_dot, t.dot(&kept));
                    check("removed", ours.removed, (&t - &kept).norm_squared());
                    if kept.norm_squared() > 1e-12 {
                        check("cos", cosine(ours.task_dot, t.norm_squared(), ours.energy), t.dot(&kept) / (t.norm() * kept.norm()));
                    }
                }
            }
        }
    }

    #[test]
    fn energy_kept_by_same_and_orth_sums_to_one() {
        let alignment = random_matrix(8, 5, 7);
        let task = random_matrix(8, 5, 8);
        let (u, _) = left_singular(&alignment).unwrap();
        let task_energy = sq_norm(&task).unwrap();
        for p in parallel_energies(&task, Some(&u), 0.0, 1.0, &[0.01, 0.25, 0.5, 0.75, 0.99]).unwrap() {
            let same = Kept::of(MergeMethod::Same, task_energy, p.energy);
            let orth = Kept::of(MergeMethod::Orth, task_energy, p.energy);
            let total = ratio(same.energy, task_energy) + ratio(orth.energy, task_energy);
            assert!((total - 1.0).abs() < 1e-12, "{total}");
        }
    }

    #[test]
    fn tensors_that_are_not_matrices_project_on_the_direction_of_a() {
        let alignment = Tensor::from_slice(&[1.0f64, 2.0, 2.0]);
        let task = Tensor::from_slice(&[3.0f64, 0.0, 3.0]);
        let (ta, aa) = (dot(&task, &alignment).unwrap(), sq_norm(&alignment).unwrap());
        let parallel = parallel_energies(&task, None, ta, aa, &[0.25, 0.99]).unwrap();
        // P = (9 / 9) · A, so ‖P‖² = 9.
        assert_eq!(parallel, vec![Parallel { k: None, energy: 9.0 }; 2]);
        let zero = parallel_energies(&task, None, 0.0, 0.0, &[0.5]).unwrap();
        assert_eq!(zero, vec![Parallel { k: None, energy: 0.0 }]);
        let (u, _) = left_singular(&random_matrix(3, 3, 1)).unwrap();
        let outside = parallel_energies(&random_matrix(3, 3, 2), Some(&u), 5.0, 2.0, &[0.0, 1.0]).unwrap();
        assert_eq!(outside, vec![Parallel { k: None, energy: 12.5 }; 2]);
    }

    /// Σ‖W_merge − W_aligned‖² / Σ‖T‖² over the merge's tensors: the energy kept, measured on
    /// merged weights built with explicit projections.
    fn merged_energy_kept(run: &RunDir, spec: &str, svd: Option<SvdMode>) -> f64 {
        let merge = crate::Merge::open(run, &spec.parse().unwrap(), 1, svd).unwrap();
        let (mut kept, mut task) = (0.0, 0.0);
        let aligned = weights(&model_updates("aligned"));
        let finetune = weights(&model_updates(&merge.spec.finetune));
        for ((name, aligned), (_, finetune)) in aligned.iter().zip(&finetune).filter(|((n, _), _)| n != INDEX_TENSOR) {
            kept += sq_norm(&(merge.tensor(name).unwrap() - aligned)).unwrap();
            task += sq_norm(&(finetune - aligned)).unwrap();
        }
        kept / task
    }

    #[test]
    fn stage_writes_every_combination_and_skips_an_unchanged_rerun() {
        let tmp = tempfile::tempdir().unwrap();
        let sections = "[projection]\nfractions = [0.25, 0.5, 0.99]\nmethods = [\"same\", \"orth\", \"opp\"]\n";
        let run = write_run(tmp.path(), sections);
        assert_eq!(super::run(&run, &ProjectOptions::default()).unwrap(), Outcome::Finished);
        assert!(run.svd("topk").exists(), "one topk basis for the run");
        for kind in ["randomk", "random"] {
            assert!(run.replicate(1).svd(kind).exists(), "{kind} is drawn per replicate");
        }
        let summary: Vec<ProjectionDiagnostic> = read_table(&run.replicate(1).projection_diagnostics()).unwrap();
        let per_tensor: Vec<ProjectionPerTensor> = read_table(&run.replicate(1).projection_per_tensor()).unwrap();
        assert_eq!(summary.len(), 3 * 3 * 3 * 3, "fine-tunes × kinds × methods × fractions");
        assert_eq!(per_tensor.len(), summary.len() * TENSORS.len());

        let find = |ft: &str, kind: &str, method: &str, frac: f64| {
            summary.iter().find(|r| r.finetune == ft && r.kind == kind && r.method == method && r.fraction == frac).unwrap()
        };
        for row in &summary {
            assert!((0.0..=1.0).contains(&row.energy_kept), "{row:?}");
            assert!((-1.0..=1.0).contains(&row.cos_task_kept) && (-1.0..=1.0).contains(&row.cos_task_align), "{row:?}");
            assert!(row.task_energy > 0.0 && row.align_energy > 0.0 && row.energy_removed >= 0.0, "{row:?}");
            let same = find(&row.finetune, &row.kind, "same", row.fraction);
            let orth = find(&row.finetune, &row.kind, "orth", row.fraction);
            assert!((same.energy_kept + orth.energy_kept - 1.0).abs() < 1e-9, "{same:?} {orth:?}");
            assert_eq!(row.cos_task_align, find(&row.finetune, "topk", "same", 0.25).cos_task_align);
            let tensors: Vec<_> = per_tensor
                .iter()
                .filter(|t| t.finetune == row.finetune && t.kind == row.kind && t.method == row.method && t.fraction == row.fraction)
                .collect();
            let task_energy: f64 = tensors.iter().map(|t| t.task_energy).sum();
            let removed: f64 = tensors.iter().map(|t| t.energy_removed).sum();
            assert!((task_energy - row.task_energy).abs() < 1e-9 * task_energy && (removed - row.energy_removed).abs() < 1e-9 * (1.0 + removed));
        }
        for t in &per_tensor {
            let dims = TENSORS.iter().find(|(n, _)| *n == t.tensor).unwrap().1.len();
            assert_eq!(t.k.is_some(), dims == 2, "{t:?}");
            assert_eq!(t.layer, Layer::of(&t.tensor).to_string());
        }
        for spec in ["useful:topk:same:0.25", "harmful:random:orth:0.5", "contaminated:randomk:opp:0.99"] {
            let [ft, kind, method, frac] = spec.split(':').collect::<Vec<_>>()[..] else { unreachable!() };
            let from_table = find(ft, kind, method, frac.parse().unwrap()).energy_kept;
            let from_merge = merged_energy_kept(&run, spec, None);
            assert!((from_table - from_merge).abs() < 1e-4, "{spec}: {from_table} vs {from_merge}");
        }

        assert_eq!(super::run(&run, &ProjectOptions::default()).unwrap(), Outcome::UpToDate);
        let forced = ProjectOptions { force: true, ..ProjectOptions::default() };
        assert_eq!(super::run(&run, &forced).unwrap(), Outcome::Finished);

        let reference = ProjectOptions { svd: Some(SvdMode::Reference), ..ProjectOptions::default() };
        assert_eq!(super::run(&run, &reference).unwrap(), Outcome::Finished, "another SVD mode is another configuration");
        let rounded: Vec<ProjectionDiagnostic> = read_table(&run.replicate(1).projection_diagnostics()).unwrap();
        for (exact, rounded) in summary.iter().zip(&rounded) {
            assert!((exact.energy_kept - rounded.energy_kept).abs() < 0.01, "{exact:?} {rounded:?}");
        }
    }

    #[test]
    fn cosine_and_ratio_of_zero_vectors_are_zero() {
        assert_eq!(cosine(0.0, 0.0, 4.0), 0.0);
        assert_eq!(cosine(2.0, 1.0, 4.0), 1.0);
        assert_eq!(ratio(1.0, 0.0), 0.0);
    }
}
