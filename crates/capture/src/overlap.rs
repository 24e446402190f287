//! Overlap of prompt sets' activation subspaces: per window layer, the energy bases of two sets'
//! activations (left singular vectors of Xᵀ in R^hidden) and their MSO, by the subspace crate's
//! [`Spectrum`] and [`overlaps`] — the same code as update-space overlap.
//!
//! Each overlap comes with a 95% percentile-bootstrap interval over prompts: every resample
//! draws each set's prompts again with replacement and measures every pair on the same draw, so
//! a pair's difference from the harmful-vs-harmful control (`vs_control`) is paired too. And each
//! pair of two different sets gets a permutation test: its prompts relabelled at random, split
//! in sets of the same sizes, and measured again; the share of relabellings that overlap as
//! little as the real sets is the p-value that the sets occupy different directions. Relabelled
//! sets have the real sets' sizes, so MSO's dependence on the number of prompts cancels.

use anyhow::{ensure, Result};
use entangle_artifacts::ActivationMso;
use entangle_draw::{permutation, resample, tensor_rng};
use entangle_pipeline::{CaptureConfig, SvdMode};
use entangle_stats::percentile_interval;
use entangle_subspace::mso::{overlaps, Overlap, Spectrum};
use rand_chacha::ChaCha8Rng;
use tch::Tensor;

use crate::Captured;

/// The compared pairs, by the names written in the table: the paper's comparison, the
/// harmful-vs-harmful control, the useful set split in halves (the same-distribution ceiling),
/// and the intent-matched pair (harmful requests against benign ones of the same templates),
/// present when the capture has a benign set.
pub const PAIRS: [&str; 4] = ["useful-harmful_a", "harmful_a-harmful_b", "useful_1-useful_2", "benign-harmful_a"];

/// The index in [`PAIRS`] of the pair every other is compared with: two harmful sets, the same
/// intent.
const CONTROL_INDEX: usize = 1;

/// The index in [`PAIRS`] of the useful halves: two halves of one set, which a relabelling
/// cannot tell apart by construction, so they get no permutation test.
const HALVES_INDEX: usize = 2;

/// The roles of the captured matrices, in order: useful, harmful A, harmful B, the useful
/// halves, and benign when present; each pair names two of them.
const PAIR_ROLES: [(usize, usize); 4] = [(0, 1), (1, 2), (3, 4), (5, 1)];

/// Every overlap row of model `model` (of replicate `replicate`, 0 for the fixed subject) from
/// its captured window.
pub fn activation_overlaps(model: &str, replicate: u32, captured: &Captured, config: &CaptureConfig, seed: u64) -> Result<Vec<ActivationMso>> {
    ensure!(matches!(captured.vectors.len(), 3 | 4), "expected the useful, harmful A, harmful B and optional benign prompt sets");
    let mut rows = Vec::new();
    let centerings: &[bool] = if config.centered { &[false, true] } else { &[false] };
    for (i, &layer) in captured.layers.iter().enumerate() {
        let roles = roles(captured, i)?;
        let pairs = &PAIR_ROLES[..if roles.len() == 6 { 4 } else { 3 }];
        for &centered in centerings {
            let window = Window { pairs, energy: &config.energy_fractions, centered };
            let mut rng = tensor_rng(seed, "capture", &layer.to_string());
            let estimate = window.overlaps(&roles, &mut rng)?;
            let resampled = (0..config.resamples)
                .map(|_| {
                    let drawn: Vec<Tensor> = roles.iter().map(|x| resampled_rows(x, &mut rng)).collect::<Result<_>>()?;
                    window.overlaps(&drawn, &mut rng)
                })
                .collect::<Result<Vec<_>>>()?;
            let relabelled =
                (0..config.resamples).map(|_| window.relabelled(&roles, &mut rng)).collect::<Result<Vec<_>>>()?;
            for (p, overlaps) in estimate.iter().enumerate() {
                for (e, o) in overlaps.iter().enumerate() {
                    let cell = Cell { pair: p, energy: e };
                    let interval = |f: &dyn Fn(&[Vec<Overlap>]) -> f64| percentile_interval(resampled.iter().map(|r| f(r)).collect());
                    let mso = interval(&|r| r[p][e].mso);
                    let vs_control = interval(&|r| cell.vs_control(r));
                    rows.push(ActivationMso {
                        model: model.to_owned(),
                        replicate,
                        pair: PAIRS[p].to_owned(),
                        layer: layer as u32,
                        centered,
                        energy_frac: o.energy_frac,
                        k_first: o.k_useful as u64,
                        k_second: o.k_harmful as u64,
                        d: o.d as u64,
                        mso: o.mso,
                        mso_random: o.mso_random,
                        cos_mean: o.cos_mean,
                        cos_max: o.cos_max,
                        mso_ci_low: mso.map(|(low, _)| low),
                        mso_ci_high: mso.map(|(_, high)| high),
                        vs_control: cell.vs_control(&estimate),
                        vs_control_ci_low: vs_control.map(|(low, _)| low),
                        vs_control_ci_high: vs_control.map(|(_, high)| high),
                        permutation_p: permutation_p(o.mso, relabelled.iter().map(|draw| draw[p].as_ref().map(|msos| msos[e]))),
                    });
                }
            }
        }
    }
    Ok(rows)
}

/// The `[prompts, hidden]` matrices of window layer `i` by role (see [`PAIR_ROLES`]).
fn roles(captured: &Captured, i: usize) -> Result<Vec<Tensor>> {
    let useful = &captured.vectors[0][i];
    let half = useful.size()[0] / 2;
    ensure!(half > 0, "the useful prompt set needs at least two prompts to be split in halves");
    let mut roles = vec![
        useful.shallow_clone(),
        captured.vectors[1][i].shallow_clone(),
        captured.vectors[2][i].shallow_clone(),
        useful.f_narrow(0, 0, half)?,
        useful.f_narrow(0, half, half)?,
    ];
    roles.extend(captured.vectors.get(3).map(|benign| benign[i].shallow_clone()));
    Ok(roles)
}

/// `x` with its rows drawn again with replacement.
fn resampled_rows(x: &Tensor, rng: &mut ChaCha8Rng) -> Result<Tensor> {
    let rows = resample(x.size()[0] as usize, rng);
    Ok(x.f_index_select(0, &Tensor::f_from_slice(&rows)?)?)
}

/// What is measured at one window layer: the pairs, the energy fractions and the centring.
struct Window<'a> {
    pairs: &'a [(usize, usize)],
    energy: &'a [f64],
    centered: bool,
}

impl Window<'_> {
    /// Each pair's overlaps at every energy fraction, from the role matrices `roles`.
    fn overlaps(&self, roles: &[Tensor], rng: &mut ChaCha8Rng) -> Result<Vec<Vec<Overlap>>> {
        let spectra: Vec<Spectrum> = roles.iter().map(|x| self.spectrum(x, rng)).collect::<Result<_>>()?;
        self.pairs.iter().map(|&(a, b)| overlaps(&spectra[a], &spectra[b], self.energy)).collect()
    }

    /// Each pair's MSO at every energy fraction after its two sets' prompts are relabelled at
    /// random (pooled, permuted, split again at the first set's size); `None` for the halves.
    fn relabelled(&self, roles: &[Tensor], rng: &mut ChaCha8Rng) -> Result<Vec<Option<Vec<f64>>>> {
        self.pairs
            .iter()
            .enumerate()
            .map(|(p, &(a, b))| {
                if p == HALVES_INDEX {
                    return Ok(None);
                }
                let pooled = Tensor::f_cat(&[&roles[a], &roles[b]], 0)?;
                let order = Tensor::f_from_slice(&permutation(pooled.size()[0] as usize, rng))?;
                let shuffled = pooled.f_index_select(0, &order)?;
                let first = roles[a].size()[0];
                let (x, y) = (shuffled.f_narrow(0, 0, first)?, shuffled.f_narrow(0, first, shuffled.size()[0] - first)?);
                let overlaps = overlaps(&self.spectrum(&x, rng)?, &self.spectrum(&y, rng)?, self.energy)?;
                Ok(Some(overlaps.iter().map(|o| o.mso).collect()))
            })
            .collect()
    }

    /// The energy basis of a set's activations, mean-centred first when `centered`.
    fn spectrum(&self, x: &Tensor, rng: &mut ChaCha8Rng) -> Result<Spectrum> {
        let x = if self.centered { x.f_sub(&x.f_mean_dim(0, true, None)?)? } else { x.shallow_clone() };
        Spectrum::of(&x.f_tr()?, SvdMode::Exact, rng)
    }
}

/// The one-sided permutation p-value of an observed `mso` against its relabelled values:
/// (1 + those at most as large) / (1 + their number); `None` without any (no resamples, or a
/// pair that is not tested).
fn permutation_p(mso: f64, relabelled: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let values: Vec<f64> = relabelled.collect::<Option<_>>()?;
    if values.is_empty() {
        return None;
    }
    let as_low = values.iter().filter(|&&v| v <= mso).count();
    Some((1 + as_low) as f64 / (1 + values.len()) as f64)
}

/// One pair at one energy fraction.
#[derive(Clone, Copy)]
struct Cell {
    pair: usize,
    energy: usize,
}

impl Cell {
    /// The pair's MSO minus the control's, both from `overlaps` (one draw).
    fn vs_control(self, overlaps: &[Vec<Overlap>]) -> f64 {
        overlaps[self.pair][self.energy].mso - overlaps[CONTROL_INDEX][self.energy].mso
    }
}
