//! Activation-space overlap (`mso/activation_spaces.parquet`, METHOD.md experiment 3): do
//! harmful prompts occupy directions of the residual stream that useful prompts do not? The
//! paper's pair against the harmful-vs-harmful control and the useful-vs-useful ceiling, per
//! layer and per energy fraction, with the random baseline; and the intent-matched pair (harmful
//! requests against benign ones of the same templates), whose paired difference from the control
//! is what the findings conclude from.

use anyhow::Result;
use entangle_artifacts::ActivationMso;
use entangle_stats::{Estimate, Verdict};
use polars::prelude::*;

use crate::document::{Block, Section, Table};
use crate::figure::{Figure, Marker, Panel, Point, Series, GREY};
use crate::format::fixed;
use crate::frames::{bools, collect, floats, strings};

/// The compared pairs of prompt sets as the capture stage names them, with legend labels.
const PAIRS: [(&str, &str); 4] = [
    ("useful-harmful_a", "useful vs harmful A (paper)"),
    ("harmful_a-harmful_b", "harmful A vs harmful B (control)"),
    ("useful_1-useful_2", "useful halves (ceiling)"),
    ("benign-harmful_a", "benign vs harmful A (intent-matched)"),
];
const PAPER: &str = PAIRS[0].0;
const INTENT: &str = PAIRS[3].0;

/// One aggregated overlap: a model, pair and centring at an `x` (layer or energy fraction).
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    pub model: String,
    pub pair: String,
    pub centered: bool,
    pub x: f64,
    pub mso: f64,
    pub baseline: f64,
}

/// The aggregated activation overlaps of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Overlaps {
    /// Models in table order.
    pub models: Vec<String>,
    /// Whether the figures and findings use mean-centred activations (only when the table has
    /// no uncentred rows).
    pub centered: bool,
    /// The energy fraction of the per-layer figure: the middle of those measured.
    pub energy_frac: f64,
    /// Per layer at `energy_frac`.
    pub by_layer: Vec<Cell>,
    /// Per energy fraction, mean over layers.
    pub by_energy: Vec<Cell>,
    /// Mean over layers and energy fractions, for both centrings (x unused, 0).
    pub overall: Vec<Cell>,
    /// The layers measured.
    pub layers: Vec<u32>,
    /// The prompt format capture used (`[capture] format`).
    pub format: String,
    /// The paper's and the intent-matched pair's rows at the reference cell, the deepest window
    /// layer and `energy_frac`: every model, replicate and centring.
    pub cells: Vec<ActivationMso>,
}

fn frame(rows: &[ActivationMso]) -> Result<DataFrame> {
    Ok(df!(
        "model" => rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
        "pair" => rows.iter().map(|r| r.pair.as_str()).collect::<Vec<_>>(),
        "layer" => rows.iter().map(|r| r.layer).collect::<Vec<_>>(),
        "centered" => rows.iter().map(|r| r.centered).collect::<Vec<_>>(),
        "energy_frac" => rows.iter().map(|r| r.energy_frac).collect::<Vec<_>>(),
        "mso" => rows.iter().map(|r| r.mso).collect::<Vec<_>>(),
        "mso_random" => rows.iter().map(|r| r.mso_random).collect::<Vec<_>>(),
    )?)
}

/// Mean MSO and baseline per model, pair, centring and `x` (a column, or none), over the rows
/// `filter` keeps.
fn mean_by(frame: &DataFrame, filter: Expr, x: Option<&str>) -> Result<Vec<Cell>> {
    let mut keys = vec!["model", "pair", "centered"];
    keys.extend(x);
    let query = frame
        .clone()
        .lazy()
        .filter(filter)
        .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
        .agg([col("mso").mean(), col("mso_random").mean()])
        .sort(keys.clone(), SortMultipleOptions::default());
    let frame = collect(query, "mso/activation_spaces.parquet")?;
    let (models, pairs, centered) = (strings(&frame, "model")?, strings(&frame, "pair")?, bools(&frame, "centered")?);
    let xs = match x {
        Some(x) => floats(&frame, x)?,
        None => vec![0.0; models.len()],
    };
    let (mso, baseline) = (floats(&frame, "mso")?, floats(&frame, "mso_random")?);
    Ok((0..models.len())
        .map(|i| Cell {
            model: models[i].clone(),
            pair: pairs[i].clone(),
            centered: centered[i],
            x: xs[i],
            mso: mso[i],
            baseline: baseline[i],
        })
        .collect())
}

impl Overlaps {
    /// Aggregates `rows`; `models` gives the preferred model order (the pipeline's capture list),
    /// `format` the prompt format capture used.
    pub fn of(rows: &[ActivationMso], models: &[String], format: &str) -> Result<Overlaps> {
        let frame = frame(rows)?;
        let centered = !rows.iter().any(|r| !r.centered);
        let mut energies: Vec<f64> = rows.iter().filter(|r| r.centered == centered).map(|r| r.energy_frac).collect();
        energies.sort_by(f64::total_cmp);
        energies.dedup();
        let energy_frac = energies.get(energies.len() / 2).copied().unwrap_or(0.0);
        let mine = col("centered").eq(lit(centered));
        let by_layer = mean_by(&frame, mine.clone().and(col("energy_frac").eq(lit(energy_frac))), Some("layer"))?;
        let by_energy = mean_by(&frame, mine, Some("energy_frac"))?;
        let overall = mean_by(&frame, lit(true), None)?;
        let mut layers: Vec<u32> = rows.iter().map(|r| r.layer).collect();
        layers.sort_unstable();
        layers.dedup();
        let mut present: Vec<String> = Vec::new();
        for row in rows {
            if !present.contains(&row.model) {
                present.push(row.model.clone());
            }
        }
        let rank = |m: &String| models.iter().position(|n| n == m).unwrap_or(models.len());
        present.sort_by_key(rank);
        let deepest = layers.last().copied().unwrap_or(0);
        let cells = rows
            .iter()
            .filter(|r| (r.pair == PAPER || r.pair == INTENT) && r.layer == deepest && r.energy_frac == energy_frac)
            .cloned()
            .collect();
        let format = format.to_owned();
        Ok(Overlaps { models: present, centered, energy_frac, by_layer, by_energy, overall, layers, format, cells })
    }

    fn figure(&self, name: &str, title: String, cells: &[Cell], x_label: &str) -> Figure {
        let panels = self
            .models
            .iter()
            .map(|model| {
                let of = |pair: &str| -> Vec<&Cell> {
                    cells.iter().filter(|c| &c.model == model && c.pair == pair).collect()
                };
                let mut series: Vec<Series> = PAIRS
                    .iter()
                    .enumerate()
                    .filter(|(_, (pair, _))| !of(pair).is_empty())
                    .map(|(color, (pair, label))| Series {
                        label: (*label).to_owned(),
                        color,
                        dashed: false,
                        line: true,
                        marker: Marker::Circle,
                        points: of(pair).iter().map(|c| Point::new(c.x, c.mso)).collect(),
                    })
                    .collect();
                let paper = of(PAPER);
                if !paper.is_empty() {
                    series.push(Series {
                        label: "random baseline (paper pair)".into(),
                        color: GREY,
                        dashed: true,
                        line: true,
                        marker: Marker::None,
                        points: paper.iter().map(|c| Point::new(c.x, c.baseline)).collect(),
                    });
                }
                Panel {
                    title: model.clone(),
                    x_label: x_label.to_owned(),
                    y_label: "MSO".into(),
                    series,
                    references: Vec::new(),
                    y_range: Some((0.0, 1.0)),
                }
            })
            .collect::<Vec<_>>();
        Figure { name: name.to_owned(), title, columns: crate::figure::grid_columns(panels.len()), panels }
    }

    fn centring(&self) -> &'static str {
        if self.centered {
            "mean-centred"
        } else {
            "uncentred"
        }
    }

    pub fn layer_figure(&self) -> Figure {
        self.figure(
            "activation_mso_layers",
            format!(
                "Activation overlap per layer at e = {} ({} activations)",
                fixed(self.energy_frac, 2),
                self.centring()
            ),
            &self.by_layer,
            "hidden state (layer)",
        )
    }

    pub fn energy_figure(&self) -> Figure {
        self.figure(
            "activation_mso_energy",
            format!("Activation overlap per energy fraction, mean over layers ({} activations)", self.centring()),
            &self.by_energy,
            "energy fraction e",
        )
    }

    fn overall_of(&self, model: &str, pair: &str, centered: bool) -> Option<&Cell> {
        self.overall.iter().find(|c| c.model == model && c.pair == pair && c.centered == centered)
    }

    fn table(&self) -> Table {
        let mut header = vec!["model".to_owned(), "activations".to_owned()];
        header.extend(PAIRS.iter().map(|(_, label)| format!("{label}: MSO / baseline")));
        let mut rows = Vec::new();
        for model in &self.models {
            for centered in [false, true] {
                let cells: Vec<Option<&Cell>> =
                    PAIRS.iter().map(|(pair, _)| self.overall_of(model, pair, centered)).collect();
                if cells.iter().all(Option::is_none) {
                    continue;
                }
                let mut row = vec![model.clone(), if centered { "mean-centred" } else { "uncentred" }.to_owned()];
                row.extend(cells.iter().map(|c| {
                    c.map_or_else(String::new, |c| format!("{} / {}", fixed(c.mso, 3), fixed(c.baseline, 3)))
                }));
                rows.push(row);
            }
        }
        Table { caption: "Mean MSO and random baseline over layers and energy fractions".into(), header, rows }
    }

    /// The findings: per model and centring, the paper's pair and then the intent-matched pair
    /// against the harmful-vs-harmful control at the reference cell (the deepest window layer,
    /// the middle energy fraction), each called by its paired interval; for a model drawn per
    /// replicate, over its replicates.
    pub fn findings(&self) -> Vec<String> {
        let mut findings = Vec::new();
        for pair in [&PAPER_PAIR, &INTENT_PAIR] {
            for model in &self.models {
                for centered in [false, true] {
                    let rows: Vec<&ActivationMso> =
                        self.cells.iter().filter(|r| r.pair == pair.name && &r.model == model && r.centered == centered).collect();
                    if !rows.is_empty() {
                        findings.push(pair_sentence(pair, &rows, &self.format));
                    }
                }
                if pair.name == INTENT {
                    findings.extend(mean_only(&self.cells, model));
                }
            }
        }
        if !self.cells.iter().any(|r| r.pair == INTENT) {
            findings.push(format!(
                "No intent-matched pair was captured ([capture] benign unset): the paper's pair differs in topic and \
                 form as much as in intent, so these overlaps cannot show whether harmful intent has directions of its \
                 own ({} prompts).",
                self.format
            ));
        }
        findings
    }
}

/// A compared pair as the findings describe it.
struct PairWords {
    name: &'static str,
    /// What overlaps: "useful and harmful prompts".
    what: &'static str,
    /// The meaning of each verdict on its difference from the control.
    less: &'static str,
    more: &'static str,
    none: &'static str,
}

const PAPER_PAIR: PairWords = PairWords {
    name: PAPER,
    what: "useful and harmful prompts (the paper's pair)",
    less: "lower than the control, but the two sets differ in topic and form as well as in intent, so this does not \
           show a subspace of harmful intent",
    more: "higher than the control",
    none: "no detectable difference from the control: no evidence here that harmful prompts occupy a subspace of \
           their own",
};

const INTENT_PAIR: PairWords = PairWords {
    name: INTENT,
    what: "harmful requests and benign requests made from the same templates",
    less: "harmful intent occupies directions that benign requests of the same form do not, at this layer",
    more: "benign and harmful requests of the same form overlap more than two harmful sets do",
    none: "no detectable difference: no evidence here that harmful and benign intent occupy different directions",
};

impl PairWords {
    fn meaning(&self, verdict: Verdict) -> &'static str {
        match verdict {
            Verdict::Less => self.less,
            Verdict::More => self.more,
            Verdict::NoDetectableDifference => self.none,
        }
    }
}

/// The sentence on `pair` for one model and centring from its rows at the reference cell: one
/// row for the fixed subject, one per replicate for a fine-tune.
fn pair_sentence(pair: &PairWords, rows: &[&ActivationMso], format: &str) -> String {
    let first = rows[0];
    let centring = if first.centered { "mean-centred" } else { "uncentred" };
    let place = format!("{} ({format} prompts, {centring} activations, layer {}, e = {})", first.model, first.layer, fixed(first.energy_frac, 2));
    let span = |values: Vec<f64>| {
        let (low, high) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
        if rows.len() == 1 { fixed(low, 2) } else { format!("{}-{} over its {} replicates", fixed(low, 2), fixed(high, 2), rows.len()) }
    };
    let mut sentence = format!("In {place}, {} overlap with MSO {}", pair.what, span(rows.iter().map(|r| r.mso).collect()));
    if let [row] = rows {
        if let (Some(low), Some(high)) = (row.mso_ci_low, row.mso_ci_high) {
            sentence.push_str(&format!(" (95% CI {}-{})", fixed(low, 2), fixed(high, 2)));
        }
    }
    sentence.push_str(&format!(", two harmful sets with {}", span(rows.iter().map(|r| r.mso - r.vs_control).collect())));
    let differences: Option<Vec<Estimate>> = rows.iter().map(|r| control_difference(r)).collect();
    let Some(differences) = differences else {
        sentence.push_str(": no interval (capture.resamples = 0), so no verdict.");
        return sentence;
    };
    match differences.as_slice() {
        [one] => sentence.push_str(&format!(
            "; difference {} (95% CI {} to {}): {}.",
            crate::format::signed(one.value, 2),
            fixed(one.ci_low, 2),
            fixed(one.ci_high, 2),
            pair.meaning(one.verdict())
        )),
        many => {
            let verdicts: Vec<Verdict> = many.iter().map(Estimate::verdict).collect();
            if verdicts.iter().all(|v| *v == verdicts[0]) {
                sentence.push_str(&format!("; in every replicate the difference's 95% interval says: {}.", pair.meaning(verdicts[0])));
            } else {
                let count = |v: Verdict| verdicts.iter().filter(|w| **w == v).count();
                sentence.push_str(&format!(
                    "; the replicates disagree (lower in {}, higher in {}, no detectable difference in {}), so no verdict.",
                    count(Verdict::Less),
                    count(Verdict::More),
                    count(Verdict::NoDetectableDifference)
                ));
            }
        }
    }
    sentence.push_str(&permutation_clause(rows));
    sentence
}

/// What the permutation test says of the pair: a sentence, or nothing for an untested pair. A
/// small p says the sets differ beyond chance, not by how much: the size is the MSO itself.
fn permutation_clause(rows: &[&ActivationMso]) -> String {
    let Some(ps) = rows.iter().map(|r| r.permutation_p).collect::<Option<Vec<f64>>>() else { return String::new() };
    let detected = |p: f64| p < 0.05;
    let lead = " Permutation test (the same prompts relabelled at random, at the same set sizes):";
    match ps.as_slice() {
        [p] if detected(*p) => format!(
            "{lead} p = {}, the real sets overlap less than relabelled ones, a difference beyond chance (its size is the \
             MSO above, not p).",
            fixed(*p, 3)
        ),
        [p] => format!("{lead} p = {}, no difference from random relabelling detectable.", fixed(*p, 3)),
        many => {
            let (low, high) = many.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(*p), h.max(*p)));
            let count = many.iter().filter(|p| detected(**p)).count();
            format!(
                "{lead} p from {} to {} over its {} replicates, below 0.05 (a difference beyond chance) in {count}.",
                fixed(low, 3),
                fixed(high, 3),
                many.len()
            )
        }
    }
}

/// A pair's difference from the control with its paired interval, when it has one.
fn control_difference(row: &ActivationMso) -> Option<Estimate> {
    Some(Estimate { value: row.vs_control, ci_low: row.vs_control_ci_low?, ci_high: row.vs_control_ci_high?, n: 0 })
}

/// When the intent-matched pair of a fixed-subject `model` is separated from the control in
/// uncentred activations but not in centred ones, what that means.
fn mean_only(cells: &[ActivationMso], model: &str) -> Option<String> {
    let verdict = |centered: bool| -> Option<Verdict> {
        let rows: Vec<&ActivationMso> = cells.iter().filter(|r| r.pair == INTENT && r.model == model && r.centered == centered).collect();
        match rows.as_slice() {
            [row] => control_difference(row).map(|e| e.verdict()),
            _ => None,
        }
    };
    matches!((verdict(false)?, verdict(true)?), (Verdict::Less, Verdict::NoDetectableDifference)).then(|| {
        format!(
            "In {model}, uncentred activations separate harmful from benign requests of the same form and mean-centred \
             ones show no detectable difference: the difference found is mainly the mean activation — one \
             direction — with no evidence of one in the subspace the prompts spread over."
        )
    })
}

pub fn section(overlaps: Option<&Overlaps>) -> Section {
    let mut section = Section::new("activation-overlap", "Activation-space overlap");
    let Some(overlaps) = overlaps else {
        section.push(Block::Missing(
            "mso/activation_spaces.parquet is missing: run entangle-capture --run DIR --model NAME for the models of \
             [capture] to measure how harmful and useful prompts overlap in activation space."
                .into(),
        ));
        return section;
    };
    section.push(Block::Paragraph(format!(
        "Each prompt's residual-stream vector at its last real token, per layer of the depth window; a set's basis \
         keeps the fewest directions holding a fraction e of its energy. The paper compares useful prompts with \
         harmful prompts; two harmful sets (A, B) give the control for \"the same kind of prompt\", two halves of the \
         useful set the ceiling. The intent-matched pair compares harmful requests with benign requests made from the \
         same templates, so intent is all that differs; its findings use the paired bootstrap interval of its \
         difference from the control (prompts resampled). A permutation test asks of each pair whether its two sets \
         overlap less than the same prompts relabelled at random at the same sizes, which cancels MSO's dependence on \
         the number of prompts; the bootstrap intervals, whose resamples repeat prompts, run low. Prompts are laid out \
         as {}; figures use {} activations and average a fine-tune's replicates.",
        overlaps.format,
        overlaps.centring()
    )));
    section.push(Block::Figure {
        figure: overlaps.layer_figure(),
        caption: format!(
            "MSO per layer (hidden-state index; 0 is the embeddings) at the middle energy fraction measured, e = {}, \
             per model.",
            fixed(overlaps.energy_frac, 2)
        ),
    });
    section.push(Block::Figure {
        figure: overlaps.energy_figure(),
        caption: "MSO against the energy fraction, averaged over the layers of the window, per model.".into(),
    });
    section.push(Block::Table(overlaps.table()));
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, pair: &str, layer: u32, centered: bool, e: f64, mso: f64) -> ActivationMso {
        ActivationMso {
            replicate: 0,
            model: model.into(),
            pair: pair.into(),
            layer,
            centered,
            energy_frac: e,
            k_first: 2,
            k_second: 2,
            d: 20,
            mso,
            mso_random: 0.1,
            cos_mean: 0.5,
            cos_max: 0.9,
            mso_ci_low: None,
            mso_ci_high: None,
            vs_control: 0.0,
            vs_control_ci_low: None,
            vs_control_ci_high: None,
            permutation_p: None,
        }
    }

    fn rows(paper: f64) -> Vec<ActivationMso> {
        let mut rows = Vec::new();
        for layer in [2, 3] {
            for e in [0.1, 0.3, 0.5] {
                for centered in [false, true] {
                    let shift = if centered { -0.2 } else { 0.0 };
                    rows.push(row("aligned", PAPER, layer, centered, e, paper + e / 10.0 + shift));
                    rows.push(row("aligned", PAIRS[1].0, layer, centered, e, 0.6 + e / 10.0 + shift));
                    rows.push(row("aligned", PAIRS[2].0, layer, centered, e, 0.9 + shift));
                }
            }
        }
        rows.push(row("base", PAPER, 2, false, 0.3, 0.2));
        rows
    }

    #[test]
    fn overlaps_are_averaged_per_layer_and_energy() {
        let overlaps = Overlaps::of(&rows(0.5), &["base".into(), "aligned".into()], "instruction").unwrap();
        assert_eq!(overlaps.models, vec!["base", "aligned"]);
        assert!(!overlaps.centered);
        assert_eq!(overlaps.energy_frac, 0.3);
        assert_eq!(overlaps.layers, vec![2, 3]);
        let paper_layers: Vec<_> = overlaps
            .by_layer
            .iter()
            .filter(|c| c.model == "aligned" && c.pair == PAPER)
            .map(|c| (c.x, (c.mso * 1000.0).round() / 1000.0))
            .collect();
        assert_eq!(paper_layers, vec![(2.0, 0.53), (3.0, 0.53)]);
        let figure = overlaps.energy_figure();
        assert_eq!(figure.panels.len(), 2);
        let labels: Vec<_> = figure.panels[1].series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            vec![
                "useful vs harmful A (paper)",
                "harmful A vs harmful B (control)",
                "useful halves (ceiling)",
                "random baseline (paper pair)"
            ]
        );
        assert_eq!(overlaps.table().rows.len(), 3, "base uncentred, aligned both centrings");
    }

    /// A row of `pair` for `model` at the reference cell (layer 3, e = 0.3) with MSO 0.4, its
    /// difference from the control and that difference's interval.
    fn cell(pair: &str, model: &str, centered: bool, vs_control: f64, interval: Option<(f64, f64)>) -> ActivationMso {
        ActivationMso {
            mso_ci_low: Some(0.35),
            mso_ci_high: Some(0.45),
            vs_control,
            vs_control_ci_low: interval.map(|(low, _)| low),
            vs_control_ci_high: interval.map(|(_, high)| high),
            ..row(model, pair, 3, centered, 0.3, 0.4)
        }
    }

    #[test]
    fn each_pair_is_called_by_its_paired_interval_at_the_reference_cell() {
        let mut rows = rows(0.5);
        rows.push(ActivationMso { permutation_p: Some(0.01), ..cell(INTENT, "aligned", false, -0.3, Some((-0.4, -0.2))) });
        rows.push(ActivationMso { permutation_p: Some(0.4), ..cell(INTENT, "aligned", true, -0.05, Some((-0.15, 0.05))) });
        rows.push(cell(INTENT, "base", false, -0.3, None));
        let found = Overlaps::of(&rows, &["base".into(), "aligned".into()], "plain").unwrap().findings();
        let intent: Vec<&String> = found.iter().filter(|f| f.contains("benign requests made from the same templates")).collect();
        assert_eq!(intent.len(), 3, "{found:?}");
        assert!(intent[0].starts_with("In base (plain prompts, uncentred activations, layer 3, e = 0.30)") && intent[0].ends_with("so no verdict."));
        assert!(
            intent[1].contains("overlap with MSO 0.40 (95% CI 0.35-0.45), two harmful sets with 0.70; difference -0.30 (95% CI -0.40 to -0.20): harmful intent occupies directions"),
            "{}",
            intent[1]
        );
        assert!(intent[1].ends_with("p = 0.010, the real sets overlap less than relabelled ones, a difference beyond chance (its size is the MSO above, not p)."), "{}", intent[1]);
        assert!(intent[2].contains("mean-centred") && intent[2].contains("no detectable difference"), "{}", intent[2]);
        assert!(intent[2].ends_with("p = 0.400, no difference from random relabelling detectable."), "{}", intent[2]);
        assert!(found.iter().any(|f| f.starts_with("In aligned, uncentred activations separate") && f.contains("mainly the mean")), "{found:?}");
        assert!(!found.iter().any(|f| f.starts_with("No intent-matched pair")));
        let none = Overlaps::of(&super::tests::rows(0.5), &[], "plain").unwrap().findings();
        assert!(none.last().unwrap().starts_with("No intent-matched pair was captured"), "{none:?}");
    }

    #[test]
    fn a_fine_tunes_replicates_are_summarised_and_a_disagreement_gives_no_verdict() {
        let mut rows = Vec::new();
        for (replicate, vs_control, interval) in [(1, -0.3, (-0.4, -0.2)), (2, -0.2, (-0.3, -0.1)), (3, -0.25, (-0.35, -0.15))] {
            let permutation_p = Some(f64::from(replicate) / 50.0);
            rows.push(ActivationMso { replicate, permutation_p, ..cell(PAPER, "useful", false, vs_control, Some(interval)) });
        }
        rows.push(ActivationMso { replicate: 1, ..cell(PAPER, "contaminated", false, -0.3, Some((-0.4, -0.2))) });
        rows.push(ActivationMso { replicate: 2, ..cell(PAPER, "contaminated", false, 0.0, Some((-0.1, 0.1))) });
        let found = Overlaps::of(&rows, &["useful".into(), "contaminated".into()], "instruction").unwrap().findings();
        assert!(
            found[0].starts_with("In useful (instruction prompts, uncentred activations, layer 3, e = 0.30), useful and harmful prompts (the paper's pair) overlap with MSO 0.40-0.40 over its 3 replicates, two harmful sets with 0.60-0.70 over its 3 replicates; in every replicate the difference's 95% interval says: lower than the control, but the two sets differ in topic and form"),
            "{}",
            found[0]
        );
        assert!(found[0].ends_with("p from 0.020 to 0.060 over its 3 replicates, below 0.05 (a difference beyond chance) in 2."), "{}", found[0]);
        assert!(found[1].ends_with("the replicates disagree (lower in 1, higher in 0, no detectable difference in 1), so no verdict."), "{}", found[1]);
    }
}
