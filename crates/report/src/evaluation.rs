//! Harmfulness and utility of every checkpoint (`eval/summary.parquet`): the metrics against
//! the projection fraction, the utility–harm trade-off of the merges, the summary tables, and the
//! findings about alignment, utility and the selectivity of the alignment subspace.

use entangle_artifacts::EvalSummary;
use entangle_pipeline::{Benchmark, Pipeline};

use crate::document::{Block, Section, Table};
use crate::figure::{Figure, Marker, Panel, Point, Reference, Series, BLACK, GREY};
use crate::format::{fixed, percent, prose_list, signed};
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

    fn show(&self, value: f64) -> String {
        if self.percent {
            percent(value)
        } else {
            fixed(value, 2)
        }
    }

    /// A difference in the report's unit: `-12.5 pp` or `+0.31`.
    fn show_difference(&self, difference: f64) -> String {
        if self.percent {
            format!("{} pp", signed(difference * 100.0, 1))
        } else {
            signed(difference, 2)
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

fn kind_label(kind: &str) -> String {
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

/// One table per benchmark: every checkpoint's metrics with their 95% intervals.
pub fn tables_section(summary: Option<&Summary>) -> Section {
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
        let comparisons: Vec<String> = [(base, "base"), (harmful, "the harmful fine-tune")]
            .into_iter()
            .filter_map(|(name, label)| {
                summary.get(name, &REFUSAL).map(|row| {
                    format!(
                        "{} {label} ({})",
                        comparative(aligned_row.value, row.value, "more than", "fewer than", "as many as"),
                        percent(row.value)
                    )
                })
            })
            .collect();
        let mut sentence = format!(
            "The aligned model refuses {} of held-out harmful requests",
            REFUSAL.show_with_interval(aligned_row)
        );
        if !comparisons.is_empty() {
            sentence.push_str(&format!(", {}", prose_list(&comparisons)));
        }
        sentence.push('.');
        if let Some(over) = summary.get(aligned, &OVER_REFUSAL) {
            sentence.push_str(&format!(
                " It answers {} of benign requests phrased with alarming words (refuses {}).",
                percent(1.0 - over.value),
                percent(over.value)
            ));
        }
        findings.push(sentence);
    }
    for utility in [ACCURACY, ANSWER_NLL] {
        if let (Some(after), Some(before)) = (summary.get(useful, &utility), summary.get(aligned, &utility)) {
            let better = if utility.higher_is_more { after.value > before.value } else { after.value < before.value };
            findings.push(format!(
                "The useful fine-tune {} utility: {} {} against {} for the aligned model ({}).",
                if better { "raises" } else { "does not raise" },
                utility.label,
                utility.show_with_interval(after),
                utility.show(before.value),
                utility.show_difference(after.value - before.value)
            ));
        }
    }
    findings
}

/// `more`, `less` or `same` as `a` compares with `b`.
fn comparative<'a>(a: f64, b: f64, more: &'a str, less: &'a str, same: &'a str) -> &'a str {
    if a > b {
        more
    } else if a < b {
        less
    } else {
        same
    }
}

/// How much harm a subspace kind's merges remove against how much utility they cost, relative to
/// the un-projected fine-tune, averaged over the fractions.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Removal {
    /// Mean harm removed (in the harm metric's raw unit; positive = less harm).
    harm: f64,
    /// Mean utility lost (positive = less utility).
    utility: f64,
    fractions: usize,
}

impl Removal {
    /// Harm removed per unit of utility lost, ranked: removing no harm is worst, removing harm at
    /// no utility cost is best (ranked by the harm removed).
    fn rank(&self) -> (u8, f64) {
        if self.harm <= 0.0 {
            (0, self.harm)
        } else if self.utility <= 0.0 {
            (2, self.harm)
        } else {
            (1, self.harm / self.utility)
        }
    }

    fn describe(&self, harm: &Metric, utility: &Metric) -> String {
        let per_unit = match self.rank() {
            (0, _) => "so it removes no harm".to_owned(),
            (2, _) => "so it removes harm at no utility cost".to_owned(),
            (_, ratio) => format!("so it removes {} units of harm per unit of utility lost", fixed(ratio, 2)),
        };
        format!(
            "{} by {} and {} by {}, {per_unit}",
            harm.label,
            harm.show_difference(-self.harm),
            utility.label,
            utility.show_difference(if utility.higher_is_more { -self.utility } else { self.utility }),
        )
    }
}

/// The [`Removal`] of `kind`'s `method` merges of `ft`, over the fractions that have both metrics.
fn removal(summary: &Summary, ft: &str, kind: &str, method: &str, harm: &Metric, utility: &Metric) -> Option<Removal> {
    let (ft_harm, ft_utility) = (summary.get(ft, harm)?, summary.get(ft, utility)?);
    let pairs: Vec<(f64, f64)> = summary
        .merges(harm)
        .iter()
        .filter(|(m, _)| m.finetune == ft && m.kind.name() == kind && m.method.name() == method)
        .filter_map(|(_, h)| summary.get(&h.checkpoint, utility).map(|u| (h.value, u.value)))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let n = pairs.len() as f64;
    let harm_removed = pairs.iter().map(|(h, _)| ft_harm.value - h).sum::<f64>() / n;
    let lost = pairs.iter().map(|(_, u)| ft_utility.value - u).sum::<f64>() / n;
    let utility_lost = if utility.higher_is_more { lost } else { -lost };
    Some(Removal { harm: harm_removed, utility: utility_lost, fractions: pairs.len() })
}

/// Per fine-tune: whether `orth` with the top-k alignment directions removes more harm per unit
/// of utility lost than with the control kinds.
pub fn selectivity_findings(summary: &Summary) -> Vec<String> {
    let (Some(harm), Some(utility)) = (summary.harm_metric(), summary.utility_metric()) else {
        return Vec::new();
    };
    let merges = summary.merges(&harm);
    let kinds = summary.kinds(&merges);
    let mut findings = Vec::new();
    for ft in summary.finetunes(&merges) {
        let Some(topk) = removal(summary, &ft, "topk", "orth", &harm, &utility) else {
            continue;
        };
        let controls: Vec<(String, Removal)> = kinds
            .iter()
            .filter(|k| *k != "topk")
            .filter_map(|k| removal(summary, &ft, k, "orth", &harm, &utility).map(|r| (k.clone(), r)))
            .collect();
        if controls.is_empty() {
            continue;
        }
        let over = match topk.fractions {
            1 => "at the one fraction measured".to_owned(),
            n => format!("averaged over {n} fractions"),
        };
        let mut sentence = format!(
            "Removing the top-k alignment directions (orth) from the {ft} fine-tune changes {}, {over}",
            topk.describe(&harm, &utility)
        );
        for (kind, control) in &controls {
            sentence.push_str(&format!(
                "; with {} directions it changes {}",
                kind_label(kind),
                control.describe(&harm, &utility)
            ));
        }
        let verdicts: Vec<String> =
            controls.iter().map(|(kind, control)| verdict(&topk, control, &kind_label(kind))).collect();
        sentence.push_str(&format!(". Top-k removes {}", verdicts.join("; it removes ")));
        if let Some(width) = mean_half_width(&merges, &ft) {
            sentence.push_str(&format!(
                " (a single merge's 95% interval of {} spans about ±{})",
                harm.label,
                if harm.percent { format!("{} pp", fixed(width * 100.0, 1)) } else { fixed(width, 2) }
            ));
        }
        sentence.push('.');
        findings.push(sentence);
    }
    findings
}

/// How top-k compares with a control, completing "Top-k removes …".
fn verdict(topk: &Removal, control: &Removal, control_label: &str) -> String {
    let (a, b) = (topk.rank(), control.rank());
    match (a.0, b.0) {
        (0, 0) => format!("no harm, and neither does {control_label}"),
        (0, _) => format!("no harm, unlike {control_label}"),
        (_, 0) => format!("harm where {control_label} removes none"),
        (2, 2) => format!("{} {control_label}, both at no utility cost", compared(a.1, b.1, "harm")),
        (2, _) => format!("harm at no utility cost, unlike {control_label}"),
        (_, 2) => format!(
            "{} {control_label}, but at a utility cost where {control_label} has none",
            compared(topk.harm, control.harm, "harm")
        ),
        _ => format!("{} {control_label}", compared(a.1, b.1, "harm per unit of utility lost")),
    }
}

/// "more {what} than", "less {what} than" or "as much {what} as", as `a` compares with `b`.
fn compared(a: f64, b: f64, what: &str) -> String {
    match a.partial_cmp(&b) {
        Some(std::cmp::Ordering::Greater) => format!("more {what} than"),
        Some(std::cmp::Ordering::Less) => format!("less {what} than"),
        _ => format!("as much {what} as"),
    }
}

fn mean_half_width(merges: &[(MergeSpec, &EvalSummary)], ft: &str) -> Option<f64> {
    let widths: Vec<f64> =
        merges.iter().filter(|(m, _)| m.finetune == ft).map(|(_, r)| (r.ci_high - r.ci_low) / 2.0).collect();
    (!widths.is_empty()).then(|| widths.iter().sum::<f64>() / widths.len() as f64)
}

/// Per fine-tune: whether harm and utility of its merges move together (the paper: same and orth
/// trade one for the other in lock-step), as the Pearson correlation over all its merges.
pub fn lockstep_findings(summary: &Summary) -> Vec<String> {
    let (Some(harm), Some(utility)) = (summary.harm_metric(), summary.utility_metric()) else {
        return Vec::new();
    };
    let merges = summary.merges(&harm);
    let mut findings = Vec::new();
    for ft in summary.finetunes(&merges) {
        let pairs: Vec<(f64, f64)> = merges
            .iter()
            .filter(|(m, _)| m.finetune == ft)
            .filter_map(|(_, h)| summary.get(&h.checkpoint, &utility).map(|u| (h.value, u.value)))
            .collect();
        let Some(r) = pearson(&pairs) else {
            continue;
        };
        let r = if utility.higher_is_more { r } else { -r };
        let verdict = if r >= 0.5 {
            "rise and fall together: the directions that carry harm carry utility too"
        } else if r > 0.0 {
            "move together only weakly"
        } else if r > -0.5 {
            "do not move together"
        } else {
            "move in opposite directions: the merges that keep more harm keep less utility"
        };
        findings.push(format!(
            "Across the {} merges of the {ft} fine-tune, harm and utility {verdict} (Pearson r = {} between {} and {}{}).",
            pairs.len(),
            fixed(r, 2),
            harm.label,
            if utility.higher_is_more { "" } else { "minus " },
            utility.label
        ));
    }
    findings
}

/// The Pearson correlation of the pairs; `None` for fewer than three or a constant variable.
fn pearson(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 3 {
        return None;
    }
    let n = pairs.len() as f64;
    let (mx, my) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = pairs.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = pairs.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let syy: f64 = pairs.iter().map(|(_, y)| (y - my).powi(2)).sum();
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn row(checkpoint: &str, benchmark: &str, metric: &str, value: f64) -> EvalSummary {
        EvalSummary {
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
            "The aligned model refuses 95.0% (95% CI 90.0-100.0%) of held-out harmful requests, more than base (10.0%) \
             and more than the harmful fine-tune (5.0%). It answers 96.0% of benign requests phrased with alarming \
             words (refuses 4.0%)."
        );
        assert_eq!(
            findings[1],
            "The useful fine-tune raises utility: accuracy 45.0% (95% CI 40.0-50.0%) against 30.0% for the aligned \
             model (+15.0 pp)."
        );
    }

    #[test]
    fn selectivity_finding_flips_with_the_data() {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let selective = selectivity_findings(&study(&pipeline, (0.3, 0.1), (0.1, 0.1)));
        assert_eq!(selective.len(), 1);
        assert!(
            selective[0].contains("Top-k removes more harm per unit of utility lost than random Gaussian"),
            "{}",
            selective[0]
        );
        assert!(
            selective[0].contains("attack success rate by -30.0 pp and accuracy by -10.0 pp, so it removes 3.00 units of harm per unit"),
            "{}",
            selective[0]
        );
        let not_selective = selectivity_findings(&study(&pipeline, (0.1, 0.1), (0.3, 0.1)));
        assert!(
            not_selective[0].contains("Top-k removes less harm per unit of utility lost than random Gaussian"),
            "{}",
            not_selective[0]
        );
        let free = selectivity_findings(&study(&pipeline, (0.1, 0.0), (0.3, 0.1)));
        assert!(free[0].contains("so it removes harm at no utility cost"), "{}", free[0]);
        assert!(free[0].contains("Top-k removes harm at no utility cost, unlike random Gaussian"), "{}", free[0]);
        let both_free = selectivity_findings(&study(&pipeline, (0.1, 0.0), (0.3, -0.1)));
        assert!(
            both_free[0].contains("Top-k removes less harm than random Gaussian, both at no utility cost"),
            "{}",
            both_free[0]
        );
        let costly = selectivity_findings(&study(&pipeline, (0.3, 0.1), (0.1, 0.0)));
        let expected = "Top-k removes more harm than random Gaussian, but at a utility cost where random Gaussian has none";
        assert!(costly[0].contains(expected), "{}", costly[0]);
        let even = selectivity_findings(&study(&pipeline, (0.1, 0.0), (0.1, -0.1)));
        assert!(even[0].contains("Top-k removes as much harm as random Gaussian, both at no utility cost"), "{}", even[0]);
        assert!(even[0].contains("averaged over 3 fractions"), "{}", even[0]);
        let mut one_fraction = study(&pipeline, (0.1, 0.0), (0.1, -0.1));
        one_fraction.rows.retain(|r| !r.checkpoint.ends_with(":0.25") && !r.checkpoint.ends_with(":0.75"));
        let one = selectivity_findings(&one_fraction);
        assert!(one[0].contains("so it removes harm at no utility cost, at the one fraction measured;"), "{}", one[0]);
        let none = selectivity_findings(&study(&pipeline, (-0.1, 0.1), (0.3, 0.1)));
        assert!(
            none[0].contains("so it removes no harm")
                && none[0].contains("Top-k removes no harm, unlike random Gaussian"),
            "{}",
            none[0]
        );
    }

    #[test]
    fn lockstep_finding_follows_the_correlation() {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let together = lockstep_findings(&study(&pipeline, (0.3, 0.1), (0.2, 0.07)));
        assert!(
            together[0].contains("rise and fall together") && together[0].contains("Pearson r = 1.00"),
            "{}",
            together[0]
        );
        let opposite = lockstep_findings(&study(&pipeline, (0.3, -0.1), (0.2, -0.07)));
        assert!(opposite[0].contains("move in opposite directions") && opposite[0].contains("r = -1.00"), "{}", opposite[0]);
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
        let section = tables_section(Some(&summary));
        let Block::Table(harmful) = &section.blocks[1] else { panic!("expected a table") };
        assert_eq!(harmful.header, vec!["checkpoint", "refusal_rate (%)", "attack_success_rate (%)", "items"]);
        assert_eq!(harmful.rows[0], vec!["base", "10.0 [5.0, 15.0]", "", "100"]);
        assert_eq!(harmful.rows[3][0], "harmful:topk:orth:0.25");
    }
}
