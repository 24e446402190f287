//! Overlap of prompt sets' activation subspaces: per window layer, the energy bases of two sets'
//! activations (left singular vectors of Xᵀ in R^hidden) and their MSO, by the subspace crate's
//! [`Spectrum`] and [`overlaps`] — the same code as update-space overlap.

use anyhow::{ensure, Result};
use entangle_artifacts::ActivationMso;
use entangle_draw::tensor_rng;
use entangle_pipeline::{CaptureConfig, SvdMode};
use entangle_subspace::mso::{overlaps, Spectrum};
use tch::Tensor;

use crate::Captured;

/// The compared pairs, by the names written in the table: the paper's comparison and two
/// controls.
pub const PAIRS: [&str; 3] = ["useful-harmful_a", "harmful_a-harmful_b", "useful_1-useful_2"];

/// Every overlap row of model `model` (of replicate `replicate`, 0 for the fixed subject) from
/// its captured window.
pub fn activation_overlaps(model: &str, replicate: u32, captured: &Captured, config: &CaptureConfig, seed: u64) -> Result<Vec<ActivationMso>> {
    ensure!(captured.vectors.len() == 3, "expected the useful, harmful A and harmful B prompt sets");
    let mut rows = Vec::new();
    let centerings: &[bool] = if config.centered { &[false, true] } else { &[false] };
    for (i, &layer) in captured.layers.iter().enumerate() {
        let useful = &captured.vectors[0][i];
        let half = useful.size()[0] / 2;
        ensure!(half > 0, "the useful prompt set needs at least two prompts to be split in halves");
        let pairs = [
            (PAIRS[0], useful.shallow_clone(), captured.vectors[1][i].shallow_clone()),
            (PAIRS[1], captured.vectors[1][i].shallow_clone(), captured.vectors[2][i].shallow_clone()),
            (PAIRS[2], useful.f_narrow(0, 0, half)?, useful.f_narrow(0, half, half)?),
        ];
        for &centered in centerings {
            for (pair, a, b) in &pairs {
                let mut rng = tensor_rng(seed, "capture", pair);
                let mut spectrum = |x: &Tensor| -> Result<Spectrum> {
                    let x = if centered { x.f_sub(&x.f_mean_dim(0, true, None)?)? } else { x.shallow_clone() };
                    Spectrum::of(&x.f_tr()?, SvdMode::Exact, &mut rng)
                };
                let (sa, sb) = (spectrum(a)?, spectrum(b)?);
                for o in overlaps(&sa, &sb, &config.energy_fractions)? {
                    rows.push(ActivationMso {
                        model: model.to_owned(),
                        replicate,
                        pair: (*pair).to_owned(),
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
                    });
                }
            }
        }
    }
    Ok(rows)
}
