//! Update-space overlap (`mso/update_spaces.parquet`, METHOD.md experiment 2): do the useful
//! and harmful weight updates use the same directions? MSO against the energy fraction with its
//! random baseline, overall and by module type, as figure, tables and findings.

use anyhow::Result;
use entangle_artifacts::UpdateMso;
use polars::prelude::*;

use crate::document::{Block, Section, Table};
use crate::figure::{Figure, Marker, Panel, Point, Series, GREY};
use crate::format::{fixed, signed};
use crate::frames::{collect, floats, strings};

/// The overlap at one energy fraction, aggregated over groups (layers or tensors).
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub energy_frac: f64,
    pub mso: f64,
    pub mso_min: f64,
    pub mso_max: f64,
    pub baseline: f64,
    pub groups: usize,
    /// Groups whose MSO exceeds their own random baseline.
    pub above: usize,
}

/// Module types drawn in their own panel, in order.
const MODULES: [&str; 5] = ["attention q", "attention k", "attention v", "attention o", "MLP"];

/// The module type of a tensor from its Hugging Face name.
pub fn module_of(tensor: &str) -> &'static str {
    let parts: Vec<&str> = tensor.split('.').collect();
    let has = |name: &str| parts.contains(&name);
    if has("q_proj") {
        "attention q"
    } else if has("k_proj") {
        "attention k"
    } else if has("v_proj") {
        "attention v"
    } else if has("o_proj") {
        "attention o"
    } else if has("mlp") || has("gate_proj") || has("up_proj") || has("down_proj") {
        "MLP"
    } else if parts.iter().any(|p| p.starts_with("embed")) {
        "embedding"
    } else if has("lm_head") {
        "head"
    } else if parts.iter().any(|p| p.ends_with("norm")) {
        "norm"
    } else {
        "other"
    }
}

/// The overlaps as a polars frame, with the module type and whether each row beats its baseline.
fn frame(rows: &[UpdateMso]) -> Result<DataFrame> {
    Ok(df!(
        "granularity" => rows.iter().map(|r| r.granularity.as_str()).collect::<Vec<_>>(),
        "module" => rows.iter().map(|r| module_of(&r.group)).collect::<Vec<_>>(),
        "energy_frac" => rows.iter().map(|r| r.energy_frac).collect::<Vec<_>>(),
        "mso" => rows.iter().map(|r| r.mso).collect::<Vec<_>>(),
        "mso_random" => rows.iter().map(|r| r.mso_random).collect::<Vec<_>>(),
        "above" => rows.iter().map(|r| r.mso > r.mso_random).collect::<Vec<_>>(),
    )?)
}

/// Per energy fraction (and per `keys`), the mean, minimum and maximum MSO, the mean baseline,
/// the number of groups and how many beat their baseline, over the rows `filter` keeps.
fn aggregate(frame: &DataFrame, filter: Expr, keys: &[&str]) -> Result<DataFrame> {
    let mut by: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    by.push(col("energy_frac"));
    let mut order: Vec<PlSmallStr> = keys.iter().map(|k| PlSmallStr::from(*k)).collect();
    order.push("energy_frac".into());
    let query = frame
        .clone()
        .lazy()
        .filter(filter)
        .group_by(by)
        .agg([
            col("mso").mean().alias("mean"),
            col("mso").min().alias("min"),
            col("mso").max().alias("max"),
            col("mso_random").mean().alias("baseline"),
            len().alias("groups"),
            col("above").sum().alias("above"),
        ])
        .sort(order, SortMultipleOptions::default());
    collect(query, "mso/update_spaces.parquet")
}

fn levels(frame: &DataFrame) -> Result<Vec<Level>> {
    let energy = floats(frame, "energy_frac")?;
    let (mean, min, max) = (floats(frame, "mean")?, floats(frame, "min")?, floats(frame, "max")?);
    let (baseline, groups, above) = (floats(frame, "baseline")?, floats(frame, "groups")?, floats(frame, "above")?);
    Ok((0..energy.len())
        .map(|i| Level {
            energy_frac: energy[i],
            mso: mean[i],
            mso_min: min[i],
            mso_max: max[i],
            baseline: baseline[i],
            groups: groups[i] as usize,
            above: above[i] as usize,
        })
        .collect())
}

/// The aggregated overlaps of a run: overall at the coarsest granularity present, and per
/// module type from the per-tensor rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlaps {
    /// `layer` when the table has per-layer rows, else `tensor`.
    pub granularity: String,
    pub overall: Vec<Level>,
    pub modules: Vec<(String, Vec<Level>)>,
}

impl Overlaps {
    pub fn of(rows: &[UpdateMso]) -> Result<Overlaps> {
        let frame = frame(rows)?;
        let granularity = if rows.iter().any(|r| r.granularity == "layer") { "layer" } else { "tensor" };
        let overall = levels(&aggregate(&frame, col("granularity").eq(lit(granularity)), &[])?)?;
        let by_module = aggregate(&frame, col("granularity").eq(lit("tensor")), &["module"])?;
        let names = strings(&by_module, "module")?;
        let all = levels(&by_module)?;
        let mut modules: Vec<(String, Vec<Level>)> = Vec::new();
        for (name, level) in names.into_iter().zip(all) {
            match modules.iter_mut().find(|(n, _)| *n == name) {
                Some((_, list)) => list.push(level),
                None => modules.push((name, vec![level])),
            }
        }
        let rank = |name: &str| MODULES.iter().position(|m| *m == name).unwrap_or(MODULES.len());
        modules.sort_by_key(|(name, _)| rank(name));
        Ok(Overlaps { granularity: granularity.to_owned(), overall, modules })
    }

    pub fn figure(&self) -> Figure {
        let panel = |title: String, levels: &[Level], whiskers: bool| Panel {
            title,
            x_label: "energy fraction e".into(),
            y_label: "MSO".into(),
            series: vec![
                Series {
                    label: "MSO of useful and harmful updates".into(),
                    color: 0,
                    dashed: false,
                    line: true,
                    marker: Marker::Circle,
                    points: levels
                        .iter()
                        .map(|l| Point {
                            y_interval: whiskers.then_some((l.mso_min, l.mso_max)),
                            ..Point::new(l.energy_frac, l.mso)
                        })
                        .collect(),
                },
                Series {
                    label: "random baseline max(k_u, k_h) / d".into(),
                    color: GREY,
                    dashed: true,
                    line: true,
                    marker: Marker::None,
                    points: levels.iter().map(|l| Point::new(l.energy_frac, l.baseline)).collect(),
                },
            ],
            references: Vec::new(),
            y_range: Some((0.0, 1.0)),
        };
        let mut panels = vec![panel(format!("mean over {}s (whiskers: range)", self.granularity), &self.overall, true)];
        panels.extend(
            self.modules
                .iter()
                .filter(|(name, _)| MODULES.contains(&name.as_str()))
                .map(|(name, levels)| panel(format!("{name} tensors (mean)"), levels, false)),
        );
        Figure {
            name: "update_mso".into(),
            title: "Overlap of the useful and harmful weight updates".into(),
            columns: crate::figure::grid_columns(panels.len()),
            panels,
        }
    }

    fn overall_table(&self) -> Table {
        Table {
            caption: format!("MSO per energy fraction over the {}s", self.granularity),
            header: ["e", "mean MSO", "min", "max", "mean baseline", "groups above their baseline"]
                .map(String::from)
                .to_vec(),
            rows: self
                .overall
                .iter()
                .map(|l| {
                    vec![
                        fixed(l.energy_frac, 2),
                        fixed(l.mso, 3),
                        fixed(l.mso_min, 3),
                        fixed(l.mso_max, 3),
                        fixed(l.baseline, 3),
                        format!("{} of {}", l.above, l.groups),
                    ]
                })
                .collect(),
        }
    }

    fn module_table(&self) -> Table {
        let mut energies: Vec<f64> = self.modules.iter().flat_map(|(_, ls)| ls.iter().map(|l| l.energy_frac)).collect();
        energies.sort_by(f64::total_cmp);
        energies.dedup();
        let mut header = vec!["module".to_owned(), "tensors".to_owned()];
        header.extend(energies.iter().map(|e| format!("e = {}", fixed(*e, 2))));
        let rows = self
            .modules
            .iter()
            .map(|(name, levels)| {
                let mut cells = vec![name.clone(), levels.first().map_or(0, |l| l.groups).to_string()];
                cells.extend(energies.iter().map(|e| {
                    levels
                        .iter()
                        .find(|l| l.energy_frac == *e)
                        .map_or_else(String::new, |l| format!("{} / {}", fixed(l.mso, 2), fixed(l.baseline, 2)))
                }));
                cells
            })
            .collect();
        Table { caption: "Mean MSO / mean random baseline per module type (per-tensor rows)".into(), header, rows }
    }

    pub fn findings(&self) -> Vec<String> {
        let mut findings = Vec::new();
        if let (Some(first), Some(last)) = (self.overall.first(), self.overall.last()) {
            let above: Vec<&Level> = self.overall.iter().filter(|l| l.mso > l.baseline).collect();
            let smallest = self.overall.iter().min_by(|a, b| (a.mso - a.baseline).total_cmp(&(b.mso - b.baseline)));
            let mut sentence = format!(
                "Useful and harmful weight updates overlap more than random subspaces of the same sizes at {} of {} \
                 energy fractions (mean over {}s): MSO goes from {} at e = {} to {} at e = {}, against a random \
                 baseline of {} to {}",
                above.len(),
                self.overall.len(),
                self.granularity,
                fixed(first.mso, 2),
                fixed(first.energy_frac, 2),
                fixed(last.mso, 2),
                fixed(last.energy_frac, 2),
                fixed(first.baseline, 2),
                fixed(last.baseline, 2)
            );
            if let Some(l) = smallest {
                sentence.push_str(&format!(
                    "; the margin is smallest at e = {} ({})",
                    fixed(l.energy_frac, 2),
                    signed(l.mso - l.baseline, 2)
                ));
            }
            let below: Vec<String> =
                self.overall.iter().filter(|l| l.mso <= l.baseline).map(|l| fixed(l.energy_frac, 2)).collect();
            if !below.is_empty() {
                sentence.push_str(&format!(" and MSO does not exceed the baseline at e = {}", below.join(", ")));
            }
            let (groups, beat): (usize, usize) =
                self.overall.iter().fold((0, 0), |(g, a), l| (g + l.groups, a + l.above));
            sentence.push_str(&format!(
                ". Per {}, MSO exceeds its own baseline in {beat} of {groups} ({}, e) pairs.",
                self.granularity, self.granularity
            ));
            findings.push(sentence);
        }
        let margins: Vec<(String, f64)> = self
            .modules
            .iter()
            .filter(|(name, _)| MODULES.contains(&name.as_str()))
            .map(|(name, levels)| {
                let margin = levels.iter().map(|l| l.mso - l.baseline).sum::<f64>() / levels.len().max(1) as f64;
                (name.clone(), margin)
            })
            .collect();
        let widest = margins.iter().max_by(|a, b| a.1.total_cmp(&b.1));
        let narrowest = margins.iter().min_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(widest), Some(narrowest)) = (widest, narrowest) {
            if margins.len() > 1 {
                findings.push(format!(
                    "By module type, the overlap's mean margin over its baseline (across energy fractions) is largest \
                     for {} tensors ({}) and smallest for {} tensors ({}).",
                    widest.0,
                    signed(widest.1, 2),
                    narrowest.0,
                    signed(narrowest.1, 2)
                ));
            }
        }
        findings
    }
}

/// The update-space section; `None` rows means the table is missing.
pub fn section(overlaps: Option<&Overlaps>) -> Section {
    let mut section = Section::new("update-overlap", "Update-space overlap");
    let Some(overlaps) = overlaps else {
        section.push(Block::Missing(
            "replicates/<r>/mso/update_spaces.parquet is missing: run entangle-mso --run DIR --replicate R to measure \
             the overlap of the useful and harmful updates."
                .into(),
        ));
        return section;
    };
    section.push(Block::Paragraph(
        "For each tensor or layer, the bases Q_u and Q_h hold the fewest left singular vectors of the useful and \
         harmful updates (relative to the aligned model) that carry a fraction e of their energy. MSO = \
         ||Q_u^T Q_h||_F^2 / min(k_u, k_h) is 1 when one subspace contains the other; max(k_u, k_h) / d is its \
         expected value for random subspaces of those sizes."
            .into(),
    ));
    let figure = overlaps.figure();
    section.push(Block::Figure {
        figure,
        caption: "MSO against the energy fraction e with the random baseline (dashed): the first panel over all \
                  groups of the coarsest granularity, the others per module type from the per-tensor rows."
            .into(),
    });
    section.push(Block::Table(overlaps.overall_table()));
    if !overlaps.modules.is_empty() {
        section.push(Block::Table(overlaps.module_table()));
    }
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(group: &str, granularity: &str, e: f64, mso: f64, baseline: f64) -> UpdateMso {
        UpdateMso {
            replicate: 1,
            group: group.into(),
            granularity: granularity.into(),
            layer: "0".into(),
            tensors: 1,
            energy_frac: e,
            k_useful: 1,
            k_harmful: 1,
            d: 64,
            mso,
            mso_random: baseline,
            cos_mean: 0.5,
            cos_max: 0.9,
        }
    }

    fn rows(layer_mso: [f64; 2]) -> Vec<UpdateMso> {
        let mut rows = Vec::new();
        for (e, baseline) in [(0.1, 0.05), (0.9, 0.45)] {
            rows.push(row("0", "layer", e, layer_mso[0] + e / 10.0, baseline));
            rows.push(row("1", "layer", e, layer_mso[1] + e / 10.0, baseline));
            rows.push(row("model.layers.0.self_attn.q_proj.weight", "tensor", e, 0.8, baseline));
            rows.push(row("model.layers.1.self_attn.q_proj.weight", "tensor", e, 0.6, baseline));
            rows.push(row("model.layers.0.mlp.down_proj.weight", "tensor", e, 0.3, baseline));
            rows.push(row("model.norm.weight", "tensor", e, 1.0, baseline));
        }
        rows
    }

    #[test]
    fn module_types_come_from_tensor_names() {
        fn check(name: &str, expected: &str) {
            assert_eq!(module_of(name), expected, "{name}");
        }
        check("model.layers.3.self_attn.q_proj.weight", "attention q");
        check("model.layers.3.self_attn.k_proj.bias", "attention k");
        check("model.layers.3.self_attn.v_proj.weight", "attention v");
        check("model.layers.3.self_attn.o_proj.weight", "attention o");
        check("model.layers.3.mlp.gate_proj.weight", "MLP");
        check("model.layers.3.mlp.down_proj.weight", "MLP");
        check("model.embed_tokens.weight", "embedding");
        check("lm_head.weight", "head");
        check("model.layers.3.input_layernorm.weight", "norm");
        check("model.norm.weight", "norm");
        check("something.else", "other");
    }

    #[test]
    fn overlaps_aggregate_per_energy_fraction_and_module() {
        let overlaps = Overlaps::of(&rows([0.5, 0.7])).unwrap();
        assert_eq!(overlaps.granularity, "layer");
        assert_eq!(overlaps.overall.len(), 2);
        let first = &overlaps.overall[0];
        assert_eq!(first.energy_frac, 0.1);
        assert!(
            (first.mso - 0.61).abs() < 1e-12
                && (first.mso_min - 0.51).abs() < 1e-12
                && (first.mso_max - 0.71).abs() < 1e-12
        );
        assert_eq!((first.groups, first.above), (2, 2));
        let names: Vec<_> = overlaps.modules.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["attention q", "MLP", "norm"]);
        assert!((overlaps.modules[0].1[0].mso - 0.7).abs() < 1e-12);
        let figure = overlaps.figure();
        let titles: Vec<_> = figure.panels.iter().map(|p| p.title.as_str()).collect();
        assert_eq!(
            titles,
            vec!["mean over layers (whiskers: range)", "attention q tensors (mean)", "MLP tensors (mean)"]
        );
    }

    #[test]
    fn findings_say_where_mso_beats_its_baseline() {
        let above = Overlaps::of(&rows([0.5, 0.7])).unwrap().findings();
        assert!(above[0].starts_with("Useful and harmful weight updates overlap more than random subspaces of the same sizes at 2 of 2 energy fractions"), "{}", above[0]);
        assert!(above[0].contains("exceeds its own baseline in 4 of 4 (layer, e) pairs"), "{}", above[0]);
        assert!(!above[0].contains("does not exceed"), "{}", above[0]);
        assert!(
            above[1].contains("largest for attention q tensors (+0.45) and smallest for MLP tensors (+0.05)"),
            "{}",
            above[1]
        );
        let below = Overlaps::of(&rows([0.0, 0.1])).unwrap().findings();
        assert!(below[0].contains("at 1 of 2 energy fractions"), "{}", below[0]);
        assert!(below[0].contains("does not exceed the baseline at e = 0.90"), "{}", below[0]);
    }
}
