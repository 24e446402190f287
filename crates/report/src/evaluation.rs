//! Harmfulness and utility of every checkpoint (`eval/summary.parquet`): the metrics against
//! the projection fraction, the utility–harm trade-off of the merges, the summary tables, and the
//! findings about alignment, utility and the selectivity of the alignment subspace.

use entangle_artifacts::EvalSummary;
use entangle_pipeline::{Benchmark, Pipeline};

use crate::document::{Block, Section, Table};
use crate::figure::{Figure, Marker, Panel, Point, Reference, Series, BLACK, GREY};
use crate::format::{fixed, percent, prose_list};
use crate::names::{checkpoint, compare, Checkpoint, MergeSpec};

/// A metric of the summary table and how the report shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub benchmark: Benchmark,
    pub name: &'static str,
    pub label: &'static str,
    /// A share shown as a percentage.
    pub percent: bool,
    /// Whether a higher value means more harm (harm metrics) or more utility (utility metrics)
    /// — i.e. whether higher is "more of what the metric measures".
    pub higher_is_more: bool,
}

pub const ATTACK_SUCCESS: Metric = Metric {
    benchmark: Benchmark::Harmful,
    name: "attack_success_rate",
    label: "attack success rate",
    percent: true,
    higher_is_more: true,
};
pub const MEAN_SCORE: Metric = Metric {
    benchmark: Benchmark::Harmful,
    name: "mean_score",
    label: "mean judge score (1-5)",
    percent: false,
    higher_is_more: true,
};
pub const GUARD_UNSAFE: Metric = Metric {
    benchmark: Benchmark::Harmful,
    name: "guard_unsafe_rate",
    label: "unsafe per guard model",
    percent: true,
    higher_is_more: true,
};
pub const REFUSAL: Metric =
    Metric { benchmark: Benchmark::Harmful, name: "refusal_rate", label: "refusal rate", percent: true, higher_is_more: true };
pub const ACCURACY: Metric =
    Metric { benchmark: Benchmark::Utility, name: "accuracy", label: "accuracy", percent: true, higher_is_more: true };
pub const ANSWER_NLL: Metric = Metric {
    benchmark: Benchmark::Utility,
    name: "answer_nll",
    label: "answer NLL (nats/token)",
    percent: false,
    higher_is_more: false,
};
pub const OVER_REFUSAL: Metric = Metric {
    benchmark: Benchmark::Overrefusal,
    name: "refusal_rate",
    label: "over-refusal rate",
    percent: true,
    higher_is_more: true,
};

/// Metrics drawn against the projection fraction, each as one figure when the merges have it.
const FRACTION_METRICS: [Metric; 6] = [ATTACK_SUCCESS, MEAN_SCORE, GUARD_UNSAFE, ACCURACY, ANSWER_NLL, OVER_REFUSAL];

impl Metric {
    /// The value in the unit the report shows (percent for shares).
    pub fn scaled(&self, value: f64) -> f64 {
        if self.percent {
            value * 100.0
        } else {
            value
        }
    }

    fn axis_label(&self) -> String {
        if self.percent {
            format!("{} (%)", self.label)
        } else {
            self.label.to_owned()
        }
    }

    /// The value with its 95% interval: `12.5% (95% CI 10.1-15.2%)`.
    fn show_with_interval(&self, row: &EvalSummary) -> String {
        if self.percent {
            format!(
                "{} (95% CI {}-{}%)",
                percent(row.value),
                fixed(row.ci_low * 100.0, 1),
                fixed(row.ci_high * 100.0, 1)
            )
        } else {
            format!("{} (95% CI {}-{})", fixed(row.value, 2), fixed(row.ci_low, 2), fixed(row.ci_high, 2))
        }
    }
}

/// The summary table with the pipeline that names its models.
pub struct Summary<'a> {
    pub rows: Vec<EvalSummary>,
    pub pipeline: &'a Pipeline,
}

impl Summary<'_> {
    pub fn get(&self, checkpoint: &str, metric: &Metric) -> Option<&EvalSummary> {
        self.rows
            .iter()
            .find(|r| r.checkpoint == checkpoint && r.benchmark == metric.benchmark.name() && r.metric == metric.name)
    }

    /// Every merge that has `metric`, with its row.
    fn merges(&self, metric: &Metric) -> Vec<(MergeSpec, &EvalSummary)> {
        self.rows
            .iter()
            .filter(|r| r.benchmark == metric.benchmark.name() && r.metric == metric.name)
            .filter_map(|r| match checkpoint(&r.checkpoint) {
                Checkpoint::Merge(merge) => Some((merge, r)),
                Checkpoint::Model(_) => None,
            })
            .collect()
    }

    /// The harm metric of the findings and the trade-off: the LLM judge's mean score when it
    /// scored the merges (the paper's measure), else the keyword judge's attack success rate.
    pub fn harm_metric(&self) -> Option<Metric> {
        [MEAN_SCORE, ATTACK_SUCCESS].into_iter().find(|m| !self.merges(m).is_empty())
    }

    /// The utility metric of the findings and the trade-off: accuracy, else answer NLL.
    pub fn utility_metric(&self) -> Option<Metric> {
        [ACCURACY, ANSWER_NLL].into_iter().find(|m| !self.merges(m).is_empty())
    }

    fn finetunes(&self, merges: &[(MergeSpec, &EvalSummary)]) -> Vec<String> {
        let preferred: Vec<&str> = self.pipeline.projection.finetunes.iter().map(String::as_str).collect();
        ordered(merges.iter().map(|(m, _)| m.finetune.as_str()), &preferred)
    }

    fn methods(&self, merges: &[(MergeSpec, &EvalSummary)]) -> Vec<String> {
        let preferred: Vec<&str> = self.pipeline.projection.methods.iter().map(|m| m.name()).collect();
        ordered(merges.iter().map(|(m, _)| m.method.name()), &preferred)
    }

    fn kinds(&self, merges: &[(MergeSpec, &EvalSummary)]) -> Vec<String> {
        ordered(merges.iter().map(|(m, _)| m.kind.name()), &KINDS.map(|(kind, _)| kind))
    }

    /// Horizontal lines for the models a merge of `ft` is compared with.
    fn references(&self, metric: &Metric, ft: &str) -> Vec<Reference> {
        self.reference_models(ft)
            .into_iter()
            .filter_map(|(name, label, color)| {
                self.get(&name, metric).map(|row| Reference {
                    label: label.to_owned(),
                    y: metric.scaled(row.value),
                    color,
                })
            })
            .collect()
    }

    /// (checkpoint, legend label, colour) of base, aligned and the un-projected fine-tune `ft`.
    fn reference_models(&self, ft: &str) -> [(String, &'static str, usize); 3] {
        let projection = &self.pipeline.projection;
        [
            (projection.base.clone(), "base", GREY),
            (projection.aligned.clone(), "aligned", BLACK),
            (ft.to_owned(), "fine-tune, not projected", 3),
        ]
    }
}

/// Subspace kinds in the report's order, with their legend labels.
const KINDS: [(&str, &str); 3] =
    [("topk", "top-k of alignment"), ("randomk", "random k of alignment"), ("random", "random Gaussian")];

pub(crate) fn kind_label(kind: &str) -> String {
    KINDS.iter().find(|(k, _)| *k == kind).map_or_else(|| kind.to_owned(), |(_, label)| (*label).to_owned())
}

/// Colour of a kind: its position among the known kinds, other colours after them.
fn kind_color(kind: &str, kinds: &[String]) -> usize {
    KINDS
        .iter()
        .position(|(k, _)| *k == kind)
        .unwrap_or_else(|| KINDS.len() + 1 + kinds.iter().position(|k| k == kind).unwrap_or(0))
}

/// The distinct `values` in first-seen order, those named in `preferred` first in its order.
fn ordered<'a>(values: impl Iterator<Item = &'a str>, preferred: &[&str]) -> Vec<String> {
    let mut seen: Vec<&str> = Vec::new();
    for value in values {
        if !seen.contains(&value) {
            seen.push(value);
        }
    }
    let rank = |v: &str| preferred.iter().position(|p| *p == v).unwrap_or(preferred.len());
    seen.sort_by_key(|v| rank(v));
    seen.into_iter().map(str::to_owned).collect()
}

/// `metric` against the projection fraction: a panel per fine-tune and method, a line per
/// subspace kind; `None` when no merge has the metric.
pub fn fraction_figure(summary: &Summary, metric: &Metric) -> Option<Figure> {
    let merges = summary.merges(metric);
    if merges.is_empty() {
        return None;
    }
    let kinds = summary.kinds(&merges);
    let methods = summary.methods(&merges);
    let mut panels = Vec::new();
    for ft in summary.finetunes(&merges) {
        for method in &methods {
            let series = kinds
                .iter()
                .filter_map(|kind| {
                    let mut points: Vec<Point> = merges
                        .iter()
                        .filter(|(m, _)| m.finetune == ft && m.method.name() == method && m.kind.name() == kind)
                        .map(|(m, row)| Point {
                            y_interval: Some((metric.scaled(row.ci_low), metric.scaled(row.ci_high))),
                            ..Point::new(m.fraction, metric.scaled(row.value))
                        })
                        .collect();
                    points.sort_by(|a, b| a.x.total_cmp(&b.x));
                    (!points.is_empty()).then(|| Series {
                        label: kind_label(kind),
                        color: kind_color(kind, &kinds),
                        dashed: false,
                        line: true,
                        marker: Marker::Circle,
                        points,
                    })
                })
                .collect();
            panels.push(Panel {
                title: format!("{ft}, {method}"),
                x_label: "fraction f of each tensor's rank".into(),
                y_label: metric.axis_label(),
                series,
                references: summary.references(metric, &ft),
                y_range: None,
            });
        }
    }
    Some(Figure {
        name: format!("fraction_{}_{}", metric.benchmark.name(), metric.name),
        title: format!("{} of the merges against the projection fraction", capitalise(metric.label)),
        panels,
        columns: methods.len(),
    })
}

/// Utility against harm of every merge: a panel per fine-tune and method, a line per kind
/// through the fractions, the un-projected models as squares.
pub fn tradeoff_figure(summary: &Summary) -> Option<Figure> {
    let (harm, utility) = (summary.harm_metric()?, summary.utility_metric()?);
    let merges = summary.merges(&harm);
    let kinds = summary.kinds(&merges);
    let methods = summary.methods(&merges);
    let point = |harm_row: &EvalSummary, utility_row: &EvalSummary| Point {
        x: harm.scaled(harm_row.value),
        y: utility.scaled(utility_row.value),
        x_interval: Some((harm.scaled(harm_row.ci_low), harm.scaled(harm_row.ci_high))),
        y_interval: Some((utility.scaled(utility_row.ci_low), utility.scaled(utility_row.ci_high))),
    };
    let mut panels = Vec::new();
    for ft in summary.finetunes(&merges) {
        for method in &methods {
            let mut series: Vec<Series> = kinds
                .iter()
                .filter_map(|kind| {
                    let mut rows: Vec<(f64, Point)> = merges
                        .iter()
                        .filter(|(m, _)| m.finetune == ft && m.method.name() == method && m.kind.name() == kind)
                        .filter_map(|(m, h)| summary.get(&h.checkpoint, &utility).map(|u| (m.fraction, point(h, u))))
                        .collect();
                    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
                    (!rows.is_empty()).then(|| Series {
                        label: kind_label(kind),
                        color: kind_color(kind, &kinds),
                        dashed: false,
                        line: true,
                        marker: Marker::Circle,
                        points: rows.into_iter().map(|(_, p)| p).collect(),
                    })
                })
                .collect();
            for (name, label, color) in summary.reference_models(&ft) {
                if let (Some(h), Some(u)) = (summary.get(&name, &harm), summary.get(&name, &utility)) {
                    series.push(Series {
                        label: label.to_owned(),
                        color,
                        dashed: false,
                        line: false,
                        marker: Marker::Square,
                        points: vec![point(h, u)],
                    });
                }
            }
            panels.push(Panel {
                title: format!("{ft}, {method}"),
                x_label: harm.axis_label(),
                y_label: utility.axis_label(),
                series,
                references: Vec::new(),
                y_range: None,
            });
        }
    }
    Some(Figure {
        name: "tradeoff".into(),
        title: format!("{} against {} of the merges", capitalise(utility.label), harm.label),
        panels,
        columns: methods.len(),
    })
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// The section with the figures against fraction and the trade-off.
pub fn projection_section(summary: Option<&Summary>) -> Section {
    let mut section = Section::new("harm-utility", "Harmfulness and utility under projection");
    let Some(summary) = summary else {
        section.push(Block::Missing(MISSING.into()));
        return section;
    };
    section.push(Block::Paragraph(
        "Each merge adds to the aligned weights part of a fine-tune's update T: `same` keeps the part \
         inside the alignment subspace (the first k = max(1, round(f r)) directions of each tensor), `orth` \
         removes it, the \"protect the alignment subspace\" defence. Whiskers are 95% bootstrap intervals; dashed \
         lines are the base, aligned and un-projected fine-tuned models."
            .into(),
    ));
    let figures: Vec<Figure> = FRACTION_METRICS.iter().filter_map(|m| fraction_figure(summary, m)).collect();
    if figures.is_empty() {
        section.push(Block::Missing(
            "eval/summary.parquet has no merges (checkpoints FINETUNE:KIND:METHOD:FRACTION): evaluate them with \
             entangle-eval (eval.merges = true) to see harm and utility against the fraction."
                .into(),
        ));
        return section;
    }
    for figure in figures {
        let caption = format!("{} against the fraction f, per fine-tune (rows) and method (columns).", figure.title);
        section.push(Block::Figure { figure, caption });
    }
    match tradeoff_figure(summary) {
        Some(figure) => section.push(Block::Figure {
            figure,
            caption: "Each line runs through the fractions of one subspace kind; whiskers are 95% intervals in both \
                      directions; squares are the un-projected models. A subspace that held safety apart from \
                      utility would reach low harm at high utility; top-k and random directions tracing the same \
                      curve means they are not more selective."
                .into(),
        }),
        None => section.push(Block::Missing(
            "The trade-off figure needs a harm and a utility metric for the merges; eval/summary.parquet lacks one."
                .into(),
        )),
    }
    section
}

const MISSING: &str = "eval/summary.parquet is missing: run the evaluation (entangle-eval --run DIR) to score \
                       harmfulness and utility.";

/// One table per benchmark: every checkpoint's metrics with their 95% intervals; then, with the
/// responses, every paired difference of merges.
pub fn tables_section(summary: Option<&Summary>, responses: Option<&crate::comparisons::Responses>) -> Section {
    let mut section = Section::new("evaluation-tables", "Evaluation tables");
    let Some(summary) = summary else {
        section.push(Block::Missing(MISSING.into()));
        return section;
    };
    section.push(Block::Paragraph(
        "Every row of eval/summary.parquet: value [95% bootstrap interval]; rates and shares in percent. `items` is \
         the largest number of items behind the row's metrics."
            .into(),
    ));
    let benchmarks = ordered(summary.rows.iter().map(|r| r.benchmark.as_str()), &Benchmark::ALL.map(Benchmark::name));
    for benchmark in benchmarks {
        let rows: Vec<&EvalSummary> = summary.rows.iter().filter(|r| r.benchmark == benchmark).collect();
        let metrics = ordered(rows.iter().map(|r| r.metric.as_str()), &METRIC_ORDER);
        let mut checkpoints = ordered(rows.iter().map(|r| r.checkpoint.as_str()), &[]);
        checkpoints.sort_by(|a, b| compare(summary.pipeline, a, b));
        let mut header = vec!["checkpoint".to_owned()];
        header.extend(metrics.iter().map(|m| if is_share(m) { format!("{m} (%)") } else { m.clone() }));
        header.push("items".into());
        let body = checkpoints
            .iter()
            .map(|checkpoint| {
                let mine: Vec<&&EvalSummary> = rows.iter().filter(|r| &r.checkpoint == checkpoint).collect();
                let mut cells = vec![checkpoint.clone()];
                cells.extend(metrics.iter().map(|metric| {
                    mine.iter().find(|r| &r.metric == metric).map_or_else(String::new, |r| table_cell(r))
                }));
                cells.push(mine.iter().map(|r| r.n).max().unwrap_or(0).to_string());
                cells
            })
            .collect();
        section.push(Block::Table(Table { caption: format!("Benchmark `{benchmark}`"), header, rows: body }));
    }
    if let Some(paired) = responses.and_then(|responses| crate::comparisons::table(summary, responses)) {
        section.push(Block::Table(paired));
    }
    section
}

const METRIC_ORDER: [&str; 8] = [
    "refusal_rate",
    "attack_success_rate",
    "degenerate_rate",
    "mean_score",
    "guard_unsafe_rate",
    "accuracy",
    "accuracy_strict",
    "answer_nll",
];

fn is_share(metric: &str) -> bool {
    metric.ends_with("_rate") || metric.ends_with("_share") || metric.starts_with("accuracy")
}

fn table_cell(row: &EvalSummary) -> String {
    if row.metric == "invalid_judgments" {
        return fixed(row.value, 0);
    }
    let (scale, decimals) = if is_share(&row.metric) { (100.0, 1) } else { (1.0, 3) };
    format!(
        "{} [{}, {}]",
        fixed(row.value * scale, decimals),
        fixed(row.ci_low * scale, decimals),
        fixed(row.ci_high * scale, decimals)
    )
}

/// Findings about the models themselves: how alignment changed refusals, and what the useful
/// fine-tune did to utility.
pub fn model_findings(summary: &Summary) -> Vec<String> {
    let pipeline = summary.pipeline;
    let (base, aligned) = (&pipeline.projection.base, &pipeline.projection.aligned);
    let (useful, harmful) = (&pipeline.mso.useful, &pipeline.mso.harmful);
    let mut findings = Vec::new();
    if let Some(aligned_row) = summary.get(aligned, &REFUSAL) {
        let others: Vec<String> = [(base, "base"), (harmful, "the harmful fine-tune")]
            .into_iter()
            .filter_map(|(name, label)| summary.get(name, &REFUSAL).map(|row| format!("{label} {}", REFUSAL.show_with_interval(row))))
            .collect();
        let mut sentence = format!(
            "The aligned model refuses {} of held-out harmful requests",
            REFUSAL.show_with_interval(aligned_row)
        );
        if !others.is_empty() {
            sentence.push_str(&format!(" ({})", prose_list(&others)));
        }
        sentence.push('.');
        if let Some(over) = summary.get(aligned, &OVER_REFUSAL) {
            sentence.push_str(&format!(
                " It answers {} of benign requests phrased with alarming words (refuses {}).",
                percent(1.0 - over.value),
                OVER_REFUSAL.show_with_interval(over)
            ));
        }
        findings.push(sentence);
    }
    for utility in [ACCURACY, ANSWER_NLL] {
        if let (Some(after), Some(before)) = (summary.get(useful, &utility), summary.get(aligned, &utility)) {
            findings.push(format!(
                "Utility ({}): the useful fine-tune {}, the aligned model {}.",
                utility.label,
                utility.show_with_interval(after),
                utility.show_with_interval(before)
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(checkpoint: &str, benchmark: &str, metric: &str, value: f64) -> EvalSummary {
        EvalSummary {
            replicate: 0,
            checkpoint: checkpoint.into(),
            benchmark: benchmark.into(),
            metric: metric.into(),
            value,
            ci_low: (value - 0.05).max(0.0),
            ci_high: (value + 0.05).min(1.0),
            n: 100,
        }
    }

    /// A study where top-k orth removes `topk_harm` of attack success at `topk_cost` accuracy,
    /// and random directions remove `random_harm` at `random_cost`.
    fn study(pipeline: &Pipeline, topk: (f64, f64), random: (f64, f64)) -> Summary<'_> {
        let mut rows = vec![
            row("base", "harmful", "refusal_rate", 0.1),
            row("aligned", "harmful", "refusal_rate", 0.95),
            row("harmful", "harmful", "refusal_rate", 0.05),
            row("aligned", "overrefusal", "refusal_rate", 0.04),
            row("aligned", "utility", "accuracy", 0.30),
            row("useful", "utility", "accuracy", 0.45),
            row("harmful", "harmful", "attack_success_rate", 0.9),
            row("harmful", "utility", "accuracy", 0.4),
        ];
        for (kind, (harm_removed, cost)) in [("topk", topk), ("random", random)] {
            for frac in [0.25, 0.5, 0.75] {
                let name = format!("harmful:{kind}:orth:{frac}");
                rows.push(row(&name, "harmful", "attack_success_rate", 0.9 - harm_removed * frac * 2.0));
                rows.push(row(&name, "utility", "accuracy", 0.4 - cost * frac * 2.0));
            }
        }
        Summary { rows, pipeline }
    }

    #[test]
    fn findings_state_alignment_and_utility_with_their_numbers() {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let findings = model_findings(&study(&pipeline, (0.2, 0.1), (0.1, 0.1)));
        assert_eq!(
            findings[0],
            "The aligned model refuses 95.0% (95% CI 90.0-100.0%) of held-out harmful requests (base 10.0% (95% CI \
             5.0-15.0%) and the harmful fine-tune 5.0% (95% CI 0.0-10.0%)). It answers 96.0% of benign requests \
             phrased with alarming words (refuses 4.0% (95% CI 0.0-9.0%))."
        );
        assert_eq!(
            findings[1],
            "Utility (accuracy): the useful fine-tune 45.0% (95% CI 40.0-50.0%), the aligned model 30.0% (95% CI \
             25.0-35.0%)."
        );
    }

    #[test]
    fn figures_have_a_panel_per_finetune_and_method_and_the_reference_lines() {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let summary = study(&pipeline, (0.3, 0.1), (0.1, 0.1));
        let figure = fraction_figure(&summary, &ATTACK_SUCCESS).unwrap();
        assert_eq!(figure.name, "fraction_harmful_attack_success_rate");
        assert_eq!(figure.panels.len(), 1);
        let panel = &figure.panels[0];
        assert_eq!(panel.title, "harmful, orth");
        let labels: Vec<_> = panel.series.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, vec!["top-k of alignment", "random Gaussian"]);
        let xs: Vec<_> = panel.series[0].points.iter().map(|p| p.x).collect();
        assert_eq!(xs, vec![0.25, 0.5, 0.75]);
        assert!((panel.series[0].points[0].y - 75.0).abs() < 1e-9);
        let references: Vec<_> = panel.references.iter().map(|r| (r.label.as_str(), r.y)).collect();
        assert_eq!(references, vec![("fine-tune, not projected", 90.0)]);
        assert!(fraction_figure(&summary, &MEAN_SCORE).is_none());
        let tradeoff = tradeoff_figure(&summary).unwrap();
        assert_eq!(tradeoff.panels[0].series.len(), 3, "two kinds and the fine-tune's square");
    }

    #[test]
    fn tables_list_checkpoints_in_report_order_with_intervals() {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let summary = study(&pipeline, (0.3, 0.1), (0.1, 0.1));
        let section = tables_section(Some(&summary), None);
        let Block::Table(harmful) = &section.blocks[1] else { panic!("expected a table") };
        assert_eq!(harmful.header, vec!["checkpoint", "refusal_rate (%)", "attack_success_rate (%)", "items"]);
        assert_eq!(harmful.rows[0], vec!["base", "10.0 [5.0, 15.0]", "", "100"]);
        assert_eq!(harmful.rows[3][0], "harmful:topk:orth:0.25");
    }
}
