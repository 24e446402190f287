//! Projection diagnostics (`replicates/<r>/projection/diagnostics.parquet` and
//! `per_tensor.parquet`, METHOD.md experiment 1): how much of each fine-tune's update lies in
//! each subspace, the cosines, and the per-layer share, averaged over replicates.

use anyhow::Result;
use entangle_artifacts::{ProjectionDiagnostic, ProjectionPerTensor};
use entangle_pipeline::Pipeline;
use polars::prelude::*;

use crate::document::{Block, Section, Table};
use crate::figure::{Figure, Marker, Panel, Point, Series};
use crate::format::{fixed, percent, prose_list};
use crate::frames::{collect, floats, strings};

/// The report's order of a name among `preferred`, unknown names last.
fn rank(preferred: &[&str], name: &str) -> usize {
    preferred.iter().position(|p| *p == name).unwrap_or(preferred.len())
}

const KINDS: [&str; 3] = ["topk", "randomk", "random"];

fn kind_label(kind: &str) -> &str {
    match kind {
        "topk" => "top-k of alignment",
        "randomk" => "random k of alignment",
        "random" => "random Gaussian",
        other => other,
    }
}

/// The diagnostics averaged over replicates: one row per fine-tune, kind, method and
/// fraction, each quantity the mean of the replicates' (replicate 0).
pub fn averaged(rows: &[ProjectionDiagnostic]) -> Vec<ProjectionDiagnostic> {
    let mut groups: Vec<(ProjectionDiagnostic, f64)> = Vec::new();
    for row in rows {
        let same = |g: &&mut (ProjectionDiagnostic, f64)| {
            (&g.0.finetune, &g.0.kind, &g.0.method, g.0.fraction) == (&row.finetune, &row.kind, &row.method, row.fraction)
        };
        match groups.iter_mut().find(same) {
            Some((sum, count)) => {
                sum.energy_kept += row.energy_kept;
                sum.cos_task_kept += row.cos_task_kept;
                sum.cos_task_align += row.cos_task_align;
                sum.energy_removed += row.energy_removed;
                sum.task_energy += row.task_energy;
                sum.align_energy += row.align_energy;
                *count += 1.0;
            }
            None => groups.push((ProjectionDiagnostic { replicate: entangle_pipeline::FIXED, ..row.clone() }, 1.0)),
        }
    }
    groups
        .into_iter()
        .map(|(sum, n)| ProjectionDiagnostic {
            energy_kept: sum.energy_kept / n,
            cos_task_kept: sum.cos_task_kept / n,
            cos_task_align: sum.cos_task_align / n,
            energy_removed: sum.energy_removed / n,
            task_energy: sum.task_energy / n,
            align_energy: sum.align_energy / n,
            ..sum
        })
        .collect()
}

/// The diagnostics rows in report order: fine-tune, kind, method (pipeline order), fraction.
fn sorted<'a>(rows: &'a [ProjectionDiagnostic], pipeline: &Pipeline) -> Vec<&'a ProjectionDiagnostic> {
    let fts: Vec<&str> = pipeline.projection.finetunes.iter().map(String::as_str).collect();
    let methods: Vec<&str> = pipeline.projection.methods.iter().map(|m| m.name()).collect();
    let mut sorted: Vec<&ProjectionDiagnostic> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (rank(&fts, &a.finetune), &a.finetune, rank(&KINDS, &a.kind), &a.kind, rank(&methods, &a.method), &a.method)
            .cmp(&(rank(&fts, &b.finetune), &b.finetune, rank(&KINDS, &b.kind), &b.kind, rank(&methods, &b.method), &b.method))
            .then(a.fraction.total_cmp(&b.fraction))
    });
    sorted
}

fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for value in values {
        if !out.iter().any(|o| o == value) {
            out.push(value.to_owned());
        }
    }
    out
}

/// The middle fraction of those measured.
fn middle_fraction(rows: &[&ProjectionDiagnostic]) -> Option<f64> {
    let mut fractions: Vec<f64> = rows.iter().map(|r| r.fraction).collect();
    fractions.sort_by(f64::total_cmp);
    fractions.dedup();
    fractions.get(fractions.len() / 2).copied()
}

/// Share of each fine-tune's update energy that `same` keeps (the part inside the subspace)
/// against the fraction: a panel per fine-tune, a line per kind.
fn energy_figure(rows: &[&ProjectionDiagnostic]) -> Option<Figure> {
    let same: Vec<&&ProjectionDiagnostic> = rows.iter().filter(|r| r.method == "same").collect();
    if same.is_empty() {
        return None;
    }
    let fts = distinct(same.iter().map(|r| r.finetune.as_str()));
    let kinds = distinct(same.iter().map(|r| r.kind.as_str()));
    let panels: Vec<Panel> = fts
        .iter()
        .map(|ft| Panel {
            title: ft.clone(),
            x_label: "fraction f of each tensor's rank".into(),
            y_label: "update energy inside (%)".into(),
            series: kinds
                .iter()
                .map(|kind| Series {
                    label: kind_label(kind).to_owned(),
                    color: rank(&KINDS, kind),
                    dashed: false,
                    line: true,
                    marker: Marker::Circle,
                    points: same
                        .iter()
                        .filter(|r| &r.finetune == ft && &r.kind == kind)
                        .map(|r| Point::new(r.fraction, r.energy_kept * 100.0))
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect(),
            references: Vec::new(),
            y_range: Some((0.0, 100.0)),
        })
        .collect();
    Some(Figure {
        name: "projection_energy".into(),
        title: "Share of each fine-tune's update inside the subspace".into(),
        columns: crate::figure::grid_columns(panels.len()),
        panels,
    })
}

fn diagnostics_table(rows: &[&ProjectionDiagnostic]) -> Table {
    Table {
        caption:
            "Projection diagnostics, summed over all floating tensors (kept = P for same, T - P for orth, -P for opp)"
                .into(),
        header: ["fine-tune", "kind", "method", "f", "energy kept (%)", "cos(T, kept)", "energy removed"]
            .map(String::from)
            .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                vec![
                    r.finetune.clone(),
                    r.kind.clone(),
                    r.method.clone(),
                    fixed(r.fraction, 2),
                    fixed(r.energy_kept * 100.0, 1),
                    fixed(r.cos_task_kept, 3),
                    format!("{:.4e}", r.energy_removed),
                ]
            })
            .collect(),
    }
}

fn alignment_table(rows: &[&ProjectionDiagnostic]) -> Table {
    let fts = distinct(rows.iter().map(|r| r.finetune.as_str()));
    Table {
        caption: "Each fine-tune's update T against the alignment update A".into(),
        header: ["fine-tune", "cos(T, A)", "||T||^2", "||A||^2"].map(String::from).to_vec(),
        rows: fts
            .iter()
            .filter_map(|ft| rows.iter().find(|r| &r.finetune == ft))
            .map(|r| {
                vec![
                    r.finetune.clone(),
                    fixed(r.cos_task_align, 4),
                    format!("{:.4e}", r.task_energy),
                    format!("{:.4e}", r.align_energy),
                ]
            })
            .collect(),
    }
}

/// Layer labels in model order: the embedding, decoder layers by index, the final norm, the
/// head, anything else.
fn layer_key(layer: &str) -> (usize, usize, String) {
    match (layer, layer.parse::<usize>()) {
        ("embed", _) => (0, 0, String::new()),
        (_, Ok(index)) => (1, index, String::new()),
        ("norm", _) => (2, 0, String::new()),
        ("head", _) => (3, 0, String::new()),
        (other, _) => (4, 0, other.to_owned()),
    }
}

/// Per fine-tune and layer, the share of the update's energy inside the top-k subspace at
/// fraction `frac` (from the `same` rows: 1 − Σ‖T − P‖² / Σ‖T‖²), aggregated with polars.
fn layer_table(rows: &[ProjectionPerTensor], frac: f64, fts: &[String]) -> Result<Option<Table>> {
    let keep: Vec<&ProjectionPerTensor> =
        rows.iter().filter(|r| r.kind == "topk" && r.method == "same" && (r.fraction - frac).abs() < 1e-9).collect();
    if keep.is_empty() {
        return Ok(None);
    }
    let frame = df!(
        "finetune" => keep.iter().map(|r| r.finetune.as_str()).collect::<Vec<_>>(),
        "layer" => keep.iter().map(|r| r.layer.as_str()).collect::<Vec<_>>(),
        "removed" => keep.iter().map(|r| r.energy_removed).collect::<Vec<_>>(),
        "task" => keep.iter().map(|r| r.task_energy).collect::<Vec<_>>(),
    )?;
    let query = frame
        .lazy()
        .group_by([col("finetune"), col("layer")])
        .agg([col("removed").sum(), col("task").sum()])
        .with_column((lit(1.0) - col("removed") / col("task")).alias("inside"));
    let shares = collect(query, "projection/per_tensor.parquet")?;
    let (ft, layer, inside, task) =
        (strings(&shares, "finetune")?, strings(&shares, "layer")?, floats(&shares, "inside")?, floats(&shares, "task")?);
    let mut layers = distinct(layer.iter().map(String::as_str));
    layers.sort_by_key(|l| layer_key(l));
    let columns: Vec<&String> = fts.iter().filter(|f| ft.contains(*f)).collect();
    let mut header = vec!["layer".to_owned()];
    header.extend(columns.iter().map(|f| format!("{f} (%)")));
    let body = layers
        .iter()
        .map(|l| {
            let mut cells = vec![l.clone()];
            cells.extend(columns.iter().map(|f| {
                (0..ft.len())
                    .find(|&i| &ft[i] == *f && &layer[i] == l)
                    .filter(|&i| task[i] > 0.0)
                    .map_or_else(String::new, |i| fixed(inside[i] * 100.0, 1))
            }));
            cells
        })
        .collect();
    Ok(Some(Table {
        caption: format!(
            "Share of each layer's update energy inside the top-k alignment subspace at f = {}",
            fixed(frac, 2)
        ),
        header,
        rows: body,
    }))
}

/// Per fine-tune: how much of its update the top-k alignment subspace holds at the middle
/// fraction, against the control subspaces.
fn findings(rows: &[&ProjectionDiagnostic]) -> Vec<String> {
    let Some(frac) = middle_fraction(rows) else {
        return Vec::new();
    };
    let at: Vec<&&ProjectionDiagnostic> = rows.iter().filter(|r| r.method == "same" && r.fraction == frac).collect();
    distinct(at.iter().map(|r| r.finetune.as_str()))
        .iter()
        .filter_map(|ft| {
            let kept = |kind: &str| at.iter().find(|r| &r.finetune == ft && r.kind == kind).map(|r| r.energy_kept);
            let topk = kept("topk")?;
            let controls: Vec<String> = ["randomk", "random"]
                .iter()
                .filter_map(|kind| kept(kind).map(|v| format!("{} for {} directions", percent(v), kind_label(kind))))
                .collect();
            let cos = at.iter().find(|r| &r.finetune == ft).map_or(0.0, |r| r.cos_task_align);
            let mut sentence = format!(
                "At f = {}, the top-k alignment directions hold {} of the {ft} update's energy",
                fixed(frac, 2),
                percent(topk)
            );
            if !controls.is_empty() {
                sentence.push_str(&format!(", against {}", prose_list(&controls)));
            }
            sentence.push_str(&format!("; cos(T, A) = {}.", fixed(cos, 3)));
            Some(sentence)
        })
        .collect()
}

/// The section and its findings; `per_tensor` adds the per-layer table when present.
pub fn section(
    diagnostics: Option<&[ProjectionDiagnostic]>,
    per_tensor: Option<&[ProjectionPerTensor]>,
    pipeline: &Pipeline,
) -> Result<(Section, Vec<String>)> {
    let mut section = Section::new("projection", "Projection diagnostics");
    let Some(diagnostics) = diagnostics else {
        section.push(Block::Missing(
            "replicates/<r>/projection/diagnostics.parquet is missing: run entangle-project --run DIR --replicate R to \
             project the fine-tunes' updates onto the alignment subspace."
                .into(),
        ));
        return Ok((section, Vec::new()));
    };
    let rows = sorted(diagnostics, pipeline);
    section.push(Block::Paragraph(
        "How much of each fine-tune's update T = W_ft - W_aligned each merge keeps, summed over every floating tensor \
         and averaged over replicates. \
         `same` keeps the projection P onto the first k directions of the subspace, so its energy kept is the share of \
         T inside it; cos(T, A) compares T with the alignment update A = W_aligned - W_base."
            .into(),
    ));
    if let Some(figure) = energy_figure(&rows) {
        section.push(Block::Figure {
            figure,
            caption: "Energy of the update inside the subspace (energy kept by `same`) against the fraction f.".into(),
        });
    }
    section.push(Block::Table(alignment_table(&rows)));
    section.push(Block::Table(diagnostics_table(&rows)));
    let fts = distinct(rows.iter().map(|r| r.finetune.as_str()));
    match (per_tensor, middle_fraction(&rows)) {
        (Some(per_tensor), Some(frac)) => {
            if let Some(table) = layer_table(per_tensor, frac, &fts)? {
                section.push(Block::Table(table));
            }
        }
        (None, _) => section.push(Block::Missing(
            "replicates/<r>/projection/per_tensor.parquet is missing, so there is no per-layer breakdown.".into(),
        )),
        (Some(_), None) => {}
    }
    Ok((section, findings(&rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diagnostic(ft: &str, kind: &str, method: &str, frac: f64, kept: f64) -> ProjectionDiagnostic {
        ProjectionDiagnostic {
            replicate: 1,
            finetune: ft.into(),
            kind: kind.into(),
            method: method.into(),
            fraction: frac,
            energy_kept: kept,
            cos_task_kept: kept.sqrt(),
            cos_task_align: 0.125,
            energy_removed: 1.0 - kept,
            task_energy: 1.0,
            align_energy: 4.0,
        }
    }

    fn tensor(ft: &str, layer: &str, removed: f64, task: f64) -> ProjectionPerTensor {
        ProjectionPerTensor {
            replicate: 1,
            finetune: ft.into(),
            kind: "topk".into(),
            method: "same".into(),
            fraction: 0.5,
            tensor: format!("model.layers.{layer}.mlp.up_proj.weight"),
            layer: layer.into(),
            k: Some(4),
            energy_kept: 1.0 - removed / task,
            cos_task_kept: 0.5,
            cos_task_align: 0.1,
            energy_removed: removed,
            task_energy: task,
            align_energy: 1.0,
        }
    }

    fn rows(topk_kept: f64) -> Vec<ProjectionDiagnostic> {
        let mut rows = Vec::new();
        for frac in [0.25, 0.5, 0.75] {
            rows.push(diagnostic("harmful", "random", "same", frac, frac));
            rows.push(diagnostic("harmful", "topk", "same", frac, topk_kept));
            rows.push(diagnostic("harmful", "topk", "orth", frac, 1.0 - topk_kept));
        }
        rows
    }

    #[test]
    fn finding_compares_the_top_k_share_with_random() {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let diagnostics = rows(0.8);
        let (section, findings) = section(Some(&diagnostics), None, &pipeline).unwrap();
        assert_eq!(
            findings,
            vec![
                "At f = 0.50, the top-k alignment directions hold 80.0% of the harmful update's energy, against 50.0% \
                  for random Gaussian directions; cos(T, A) = 0.125."
            ]
        );
        assert!(
            matches!(section.blocks.last(), Some(Block::Missing(text)) if text.contains("per_tensor.parquet is missing"))
        );
        let Some(Block::Table(table)) = section
            .blocks
            .iter()
            .find(|b| matches!(b, Block::Table(t) if t.caption.starts_with("Projection diagnostics")))
        else {
            unreachable!("the diagnostics table is always there")
        };
        assert_eq!(table.rows[0], vec!["harmful", "topk", "same", "0.25", "80.0", "0.894", "2.0000e-1"]);
        assert_eq!(table.rows[3][2], "orth");
    }

    #[test]
    fn layer_table_sums_tensors_per_layer() {
        let tensors = vec![
            tensor("harmful", "1", 1.0, 4.0),
            tensor("harmful", "1", 1.0, 4.0),
            tensor("harmful", "0", 3.0, 4.0),
            tensor("useful", "0", 0.0, 2.0),
        ];
        let table = layer_table(&tensors, 0.5, &["useful".into(), "harmful".into()]).unwrap().unwrap();
        assert_eq!(table.header, vec!["layer", "useful (%)", "harmful (%)"]);
        assert_eq!(table.rows, vec![vec!["0", "100.0", "25.0"], vec!["1", "", "75.0"]]);
        assert!(layer_table(&tensors, 0.25, &[]).unwrap().is_none());
    }

    #[test]
    fn layers_sort_in_model_order() {
        let mut layers = vec!["head", "10", "norm", "2", "embed", "other"];
        layers.sort_by_key(|l| layer_key(l));
        assert_eq!(layers, vec!["embed", "2", "10", "norm", "head", "other"]);
    }
}
