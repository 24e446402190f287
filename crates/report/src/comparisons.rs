//! Paired comparisons of checkpoints, prompt by prompt (METHOD.md, "Beyond the paper"): every
//! difference the findings state — the aligned model against the base model and the harmful
//! fine-tune, the useful fine-tune against the aligned model, a subspace kind's merges against
//! the un-projected fine-tune and against the control kinds, per fraction and averaged over
//! fractions — with its 95% bootstrap interval (`entangle-stats`: replicates resampled, and
//! within each the prompts, in pairs) and the verdict that interval gives: higher, lower, or no detectable difference. No ratio is
//! stated: one whose denominator's interval includes zero reads noise as an effect.

use std::collections::BTreeMap;

use entangle_artifacts::{EvalResponse, EvalSummary};
use entangle_pipeline::FIXED;
use entangle_stats::{difference_with_interval, Estimate, Verdict};

use crate::document::Table;
use crate::evaluation::{kind_label, Metric, Summary, ACCURACY, ANSWER_NLL, REFUSAL};
use crate::format::fixed;
use crate::names::{checkpoint, Checkpoint};

/// One checkpoint's values of one metric: by replicate ([`FIXED`] for the fixed subject), then
/// item.
type ByReplicate = BTreeMap<u32, BTreeMap<String, f64>>;

/// Every response's metric values, by checkpoint, benchmark and metric, then replicate and item.
pub struct Responses {
    values: BTreeMap<(String, String, String), ByReplicate>,
}

impl Responses {
    pub fn of(rows: &[EvalResponse]) -> Responses {
        let mut values: BTreeMap<(String, String, String), ByReplicate> = BTreeMap::new();
        for row in rows {
            for (metric, value) in row.metric_values() {
                let key = (row.checkpoint.clone(), row.benchmark.clone(), metric.to_owned());
                values.entry(key).or_default().entry(row.replicate).or_default().insert(row.item.clone(), value);
            }
        }
        Responses { values }
    }

    fn of_checkpoint(&self, checkpoint: &str, benchmark: &str, metric: &str) -> Option<&ByReplicate> {
        self.values.get(&(checkpoint.to_owned(), benchmark.to_owned(), metric.to_owned()))
    }

    /// The mean over `pairs` (a, b) of a's `metric` minus b's, paired by prompt within each
    /// replicate: per replicate and prompt the mean of its differences over the pairs (prompts
    /// every checkpoint has; a side of the fixed subject is the same in every replicate), then
    /// the mean over replicates and prompts with its interval, replicates and prompts both
    /// resampled. `None` when a checkpoint lacks the metric or no prompt is shared.
    pub fn difference(&self, pairs: &[(String, String)], metric: &Metric, seed: u64) -> Option<Estimate> {
        let benchmark = metric.benchmark.name();
        let sides: Vec<(&ByReplicate, &ByReplicate)> = pairs
            .iter()
            .map(|(a, b)| Some((self.of_checkpoint(a, benchmark, metric.name)?, self.of_checkpoint(b, benchmark, metric.name)?)))
            .collect::<Option<_>>()?;
        let per_replicate: Vec<Vec<f64>> =
            replicates(sides.iter().flat_map(|(a, b)| [*a, *b])).into_iter().map(|r| paired(&sides, r)).collect::<Option<_>>()?;
        difference_with_interval(&per_replicate, seed)
    }

    /// The summary the report shows: one row per checkpoint, benchmark and metric of `summary`,
    /// pooled over replicates — a metric of the responses as its mean over replicates and items
    /// with an interval that resamples both, a count (`invalid_judgments`) summed.
    pub fn pooled(&self, summary: &[EvalSummary], seed: u64) -> Vec<EvalSummary> {
        let mut pooled: Vec<EvalSummary> = Vec::new();
        for row in summary {
            let same = |p: &&mut EvalSummary| p.checkpoint == row.checkpoint && p.benchmark == row.benchmark && p.metric == row.metric;
            if let Some(existing) = pooled.iter_mut().find(same) {
                if self.of_checkpoint(&row.checkpoint, &row.benchmark, &row.metric).is_none() {
                    existing.value += row.value;
                    (existing.ci_low, existing.ci_high, existing.n) = (existing.value, existing.value, existing.n + row.n);
                }
                continue;
            }
            let estimate = self.of_checkpoint(&row.checkpoint, &row.benchmark, &row.metric).and_then(|values| {
                let per_replicate: Vec<Vec<f64>> = values.values().map(|items| items.values().copied().collect()).collect();
                difference_with_interval(&per_replicate, seed)
            });
            let pooled_row = match estimate {
                Some(e) => EvalSummary { value: e.value, ci_low: e.ci_low, ci_high: e.ci_high, n: e.n as u64, ..row.clone() },
                None => row.clone(),
            };
            pooled.push(EvalSummary { replicate: FIXED, ..pooled_row });
        }
        pooled
    }
}

/// The replicates a comparison of `sides` spans: those any side has, or the fixed subject alone
/// when no side is drawn per replicate.
fn replicates<'a>(sides: impl Iterator<Item = &'a ByReplicate>) -> Vec<u32> {
    let all: std::collections::BTreeSet<u32> = sides.flat_map(|side| side.keys().copied()).collect();
    let drawn: Vec<u32> = all.iter().copied().filter(|&r| r != FIXED).collect();
    if drawn.is_empty() {
        vec![FIXED]
    } else {
        drawn
    }
}

/// Per prompt of replicate `replicate`, the mean over `sides` of a's value minus b's, over the
/// prompts every side has; a side without that replicate is the fixed subject's.
fn paired(sides: &[(&ByReplicate, &ByReplicate)], replicate: u32) -> Option<Vec<f64>> {
    fn of(side: &ByReplicate, replicate: u32) -> Option<&BTreeMap<String, f64>> {
        side.get(&replicate).or_else(|| side.get(&FIXED))
    }
    let sides: Vec<(&BTreeMap<String, f64>, &BTreeMap<String, f64>)> =
        sides.iter().map(|(a, b)| Some((of(a, replicate)?, of(b, replicate)?))).collect::<Option<_>>()?;
    let (first, _) = sides.first()?;
    Some(
        first
            .keys()
            .filter_map(|item| {
                let differences: Vec<f64> =
                    sides.iter().map(|(a, b)| Some(a.get(item)? - b.get(item)?)).collect::<Option<_>>()?;
                Some(differences.iter().sum::<f64>() / differences.len() as f64)
            })
            .collect(),
    )
}

/// A difference in the metric's unit with its interval: `-12.3 pp (95% CI -18.0 to -6.5 pp)`.
fn stated(metric: &Metric, estimate: &Estimate) -> String {
    let (scale, decimals, unit) = if metric.percent { (100.0, 1, " pp") } else { (1.0, 2, "") };
    format!(
        "{}{unit} (95% CI {} to {}{unit})",
        crate::format::signed(estimate.value * scale, decimals),
        fixed(estimate.ci_low * scale, decimals),
        fixed(estimate.ci_high * scale, decimals)
    )
}

/// The verdict of an interval in words, `subject`'s metric against the other side's.
fn verdict(estimate: &Estimate, subject: &str) -> String {
    match estimate.verdict() {
        Verdict::More => format!("higher {subject}"),
        Verdict::Less => format!("lower {subject}"),
        Verdict::NoDetectableDifference => "no detectable difference".to_owned(),
    }
}

/// "<metric> <difference>: <verdict>", or `None` without the data.
fn clause(responses: &Responses, pairs: &[(String, String)], metric: &Metric, seed: u64, subject: &str) -> Option<String> {
    let estimate = responses.difference(pairs, metric, seed)?;
    Some(format!("{} {}: {}", metric.label, stated(metric, &estimate), verdict(&estimate, subject)))
}

/// The findings the paired comparisons give, as sentences.
pub fn findings(summary: &Summary, responses: &Responses) -> Vec<String> {
    let pipeline = summary.pipeline;
    let seed = pipeline.seed;
    let (base, aligned) = (&pipeline.projection.base, &pipeline.projection.aligned);
    let (useful, harmful) = (&pipeline.mso.useful, &pipeline.mso.harmful);
    let mut findings = Vec::new();
    for (other, label) in [(base, "the base model"), (harmful, "the harmful fine-tune")] {
        let pairs = [(aligned.clone(), other.clone())];
        if let Some(clause) = clause(responses, &pairs, &REFUSAL, seed, "for the aligned model") {
            let over = replicates_clause(pipeline, other);
            findings.push(format!("The aligned model against {label}, paired by harmful prompt{over}: {clause}."));
        }
    }
    for utility in [ACCURACY, ANSWER_NLL] {
        let pairs = [(useful.clone(), aligned.clone())];
        if let Some(clause) = clause(responses, &pairs, &utility, seed, "for the useful fine-tune") {
            let over = replicates_clause(pipeline, useful);
            findings.push(format!("The useful fine-tune against the aligned model, paired by problem{over}: {clause}."));
        }
    }
    let groups = merge_groups(summary);
    for merges in groups.iter().filter(|g| g.method == "orth" && g.kind == "topk") {
        findings.extend(selectivity(summary, responses, &groups, merges));
    }
    findings
}

/// The merges of one fine-tune, kind and method, by fraction.
struct MergeGroup {
    finetune: String,
    kind: String,
    method: String,
    /// (fraction, checkpoint name), by fraction.
    merges: Vec<(f64, String)>,
}

/// Every merge the summary has, grouped by fine-tune, kind and method, in pipeline order.
fn merge_groups(summary: &Summary) -> Vec<MergeGroup> {
    let mut names: Vec<&str> = summary.rows.iter().map(|r| r.checkpoint.as_str()).collect();
    names.sort_by(|a, b| crate::names::compare(summary.pipeline, a, b));
    names.dedup();
    let mut groups: Vec<MergeGroup> = Vec::new();
    for name in names {
        let Checkpoint::Merge(spec) = checkpoint(name) else { continue };
        let (kind, method) = (spec.kind.name().to_owned(), spec.method.name().to_owned());
        match groups.iter_mut().find(|g| g.finetune == spec.finetune && g.kind == kind && g.method == method) {
            Some(group) => group.merges.push((spec.fraction, name.to_owned())),
            None => groups.push(MergeGroup { finetune: spec.finetune.clone(), kind, method, merges: vec![(spec.fraction, name.to_owned())] }),
        }
    }
    groups
}

/// The comparisons of one of `groups`: against its un-projected fine-tune, and against each
/// control kind's merges of the same fine-tune and method, at the fractions both have.
fn comparisons(groups: &[MergeGroup], group: &MergeGroup) -> Vec<(String, Vec<(f64, String, String)>)> {
    let against_finetune = group.merges.iter().map(|(f, m)| (*f, m.clone(), group.finetune.clone())).collect();
    let mut out = vec![(format!("the {} fine-tune itself", group.finetune), against_finetune)];
    for control in groups
        .iter()
        .filter(|g| g.finetune == group.finetune && g.method == group.method && g.kind != group.kind)
    {
        let shared: Vec<(f64, String, String)> = group
            .merges
            .iter()
            .filter_map(|(f, m)| control.merges.iter().find(|(g, _)| g == f).map(|(_, c)| (*f, m.clone(), c.clone())))
            .collect();
        if !shared.is_empty() {
            out.push((format!("{} directions", kind_label(&control.kind)), shared));
        }
    }
    out
}

/// Sentences for one group of merges: each comparison averaged over its fractions, for the harm
/// and the utility metric.
fn selectivity(summary: &Summary, responses: &Responses, groups: &[MergeGroup], group: &MergeGroup) -> Vec<String> {
    let metrics: Vec<Metric> = [summary.harm_metric(), summary.utility_metric()].into_iter().flatten().collect();
    let subject = format!("with {}", kind_label(&group.kind));
    comparisons(groups, group)
        .into_iter()
        .filter_map(|(against, merges)| {
            let pairs: Vec<(String, String)> = merges.iter().map(|(_, a, b)| (a.clone(), b.clone())).collect();
            let clauses: Vec<String> =
                metrics.iter().filter_map(|m| clause(responses, &pairs, m, summary.pipeline.seed, &subject)).collect();
            (!clauses.is_empty()).then(|| {
                format!(
                    "{} merges of the {} fine-tune with the {} directions, against {against}, paired by prompt{} and averaged over {} fraction(s): {}.",
                    capitalised(&group.method),
                    group.finetune,
                    kind_label(&group.kind),
                    replicates_clause(summary.pipeline, &merges[0].1),
                    merges.len(),
                    clauses.join("; ")
                )
            })
        })
        .collect()
}

/// ` within each of N replicates` when checkpoint `name` is drawn per replicate and there are
/// several, else nothing.
fn replicates_clause(pipeline: &entangle_pipeline::Pipeline, name: &str) -> String {
    let replicates = checkpoint(name).replicates(pipeline).len();
    if replicates > 1 {
        format!(" within each of {replicates} replicates")
    } else {
        String::new()
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// Every paired comparison of merges, per fraction and averaged: the findings' evidence.
pub fn table(summary: &Summary, responses: &Responses) -> Option<Table> {
    let metrics: Vec<Metric> = [summary.harm_metric(), summary.utility_metric()].into_iter().flatten().collect();
    let seed = summary.pipeline.seed;
    let mut rows = Vec::new();
    let groups = merge_groups(summary);
    for group in &groups {
        for (against, merges) in comparisons(&groups, group) {
            let averaged: Vec<(String, String)> = merges.iter().map(|(_, a, b)| (a.clone(), b.clone())).collect();
            let per_fraction = merges.iter().map(|(f, a, b)| (fixed(*f, 2), vec![(a.clone(), b.clone())]));
            for (fraction, pairs) in per_fraction.chain(std::iter::once(("mean".to_owned(), averaged))) {
                let mut cells = vec![group.finetune.clone(), group.kind.clone(), group.method.clone(), against.clone(), fraction];
                for metric in &metrics {
                    cells.push(responses.difference(&pairs, metric, seed).map_or_else(String::new, |e| {
                        let words = match e.verdict() {
                            Verdict::More => "higher",
                            Verdict::Less => "lower",
                            Verdict::NoDetectableDifference => "none detectable",
                        };
                        format!("{} — {words}", stated(metric, &e))
                    }));
                }
                rows.push(cells);
            }
        }
    }
    if rows.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["fine-tune", "kind", "method", "against", "fraction"].map(String::from).to_vec();
    header.extend(metrics.iter().map(|m| format!("Δ {}", m.label)));
    Some(Table {
        caption: "Paired differences: each merge minus what it is compared with, prompt by prompt, with 95% bootstrap \
                  intervals; a difference is called higher or lower only when its interval excludes zero"
            .into(),
        header,
        rows,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use entangle_artifacts::{EvalResponse, EvalSummary};
    use entangle_pipeline::Pipeline;

    use super::*;

    /// A response row of a keyword-judged checkpoint on item `item` of `benchmark`.
    pub(crate) fn response(checkpoint: &str, benchmark: &str, item: usize, refused: bool, correct: Option<bool>) -> EvalResponse {
        EvalResponse {
            checkpoint: checkpoint.into(),
            replicate: 0,
            benchmark: benchmark.into(),
            item: format!("{benchmark}-{item}"),
            prompt: String::new(),
            response: "text".into(),
            stop_reason: "eos".into(),
            judge: "keyword".into(),
            score: None,
            judge_raw: None,
            guard_unsafe: None,
            refused,
            degenerate: false,
            correct,
            correct_strict: correct,
            answer_nll: None,
        }
    }

    /// A study of the harmful fine-tune and its orth merges at two fractions, where on 100
    /// prompts each checkpoint complies (attack success) when `complies(checkpoint, prompt)`.
    fn study(complies: impl Fn(&str, usize) -> bool) -> (Vec<EvalSummary>, Vec<EvalResponse>) {
        let checkpoints = ["harmful", "harmful:topk:orth:0.25", "harmful:topk:orth:0.75", "harmful:random:orth:0.25", "harmful:random:orth:0.75"];
        let mut responses = Vec::new();
        for checkpoint in checkpoints {
            for i in 0..100 {
                responses.push(response(checkpoint, "harmful", i, !complies(checkpoint, i), None));
                responses.push(response(checkpoint, "utility", i, false, Some(i % 3 == 0)));
            }
        }
        let summary = checkpoints
            .iter()
            .flat_map(|c| {
                [("harmful", "attack_success_rate"), ("utility", "accuracy")].map(|(benchmark, metric)| EvalSummary {
                    checkpoint: (*c).into(),
                    replicate: 0,
                    benchmark: benchmark.into(),
                    metric: metric.into(),
                    value: 0.5,
                    ci_low: 0.4,
                    ci_high: 0.6,
                    n: 100,
                })
            })
            .collect();
        (summary, responses)
    }

    fn selectivity_findings(complies: impl Fn(&str, usize) -> bool) -> Vec<String> {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let (rows, responses) = study(complies);
        findings(&Summary { rows, pipeline: &pipeline }, &Responses::of(&responses))
    }

    #[test]
    fn a_difference_whose_interval_excludes_zero_is_called_and_printed_with_it() {
        // Top-k merges comply on 20 of 100 prompts, random ones on 60, the fine-tune on 90.
        let found = selectivity_findings(|checkpoint, i| match checkpoint {
            "harmful" => i < 90,
            c if c.contains(":topk:") => i < 20,
            _ => i < 60,
        });
        let against_random = found.iter().find(|f| f.contains("against random Gaussian directions")).unwrap();
        assert!(
            against_random.contains("attack success rate -40.0 pp (95% CI ")
                && against_random.contains("pp): lower with top-k of alignment")
                && against_random.contains("accuracy 0.0 pp (95% CI 0.0 to 0.0 pp): no detectable difference"),
            "{against_random}"
        );
        let against_finetune = found.iter().find(|f| f.contains("against the harmful fine-tune itself")).unwrap();
        assert!(against_finetune.contains("attack success rate -70.0 pp") && against_finetune.contains("lower"), "{against_finetune}");
        assert!(found.iter().all(|f| !f.contains("units of harm")), "no ratios: {found:?}");
    }

    #[test]
    fn a_difference_within_the_noise_is_no_detectable_difference() {
        // Top-k and random merges comply on different prompts, each on about half.
        let found = selectivity_findings(|checkpoint, i| match checkpoint {
            "harmful" => true,
            c if c.contains(":topk:") => (i * 7 + 3) % 10 < 5,
            _ => (i * 3 + 1) % 10 < 5,
        });
        let against_random = found.iter().find(|f| f.contains("against random Gaussian directions")).unwrap();
        assert!(against_random.contains("attack success rate") && against_random.contains(": no detectable difference;"), "{against_random}");
    }

    #[test]
    fn the_table_has_every_fraction_and_the_mean() {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let (rows, responses) = study(|checkpoint, i| checkpoint == "harmful" || i < 50);
        let summary = Summary { rows, pipeline: &pipeline };
        let table = table(&summary, &Responses::of(&responses)).unwrap();
        assert_eq!(table.header, ["fine-tune", "kind", "method", "against", "fraction", "Δ attack success rate", "Δ accuracy"]);
        let fractions: Vec<&str> = table.rows.iter().filter(|r| r[1] == "topk" && r[3].contains("itself")).map(|r| r[4].as_str()).collect();
        assert_eq!(fractions, ["0.25", "0.75", "mean"]);
        let mean = table.rows.iter().find(|r| r[1] == "topk" && r[3].contains("itself") && r[4] == "mean").unwrap();
        assert!(mean[5].starts_with("-50.0 pp (95% CI ") && mean[5].ends_with("— lower"), "{mean:?}");
    }

    /// The harmful fine-tune drawn in two replicates, complying on the first 90 and the first
    /// 70 of 100 prompts; the aligned model, evaluated once (replicate 0), on the first 10.
    fn replicated_rows() -> Vec<EvalResponse> {
        let mut rows: Vec<EvalResponse> = (0..100).map(|i| response("aligned", "harmful", i, i >= 10, None)).collect();
        for (replicate, complying) in [(1, 90), (2, 70)] {
            rows.extend((0..100).map(|i| EvalResponse { replicate, ..response("harmful", "harmful", i, i >= complying, None) }));
        }
        rows
    }

    #[test]
    fn a_fixed_side_pairs_with_every_replicate_and_replicates_widen_the_interval() {
        let responses = Responses::of(&replicated_rows());
        let pairs = [("harmful".to_owned(), "aligned".to_owned())];
        let both = responses.difference(&pairs, &crate::evaluation::ATTACK_SUCCESS, 3).unwrap();
        assert_eq!(both.n, 200, "every prompt of both replicates");
        assert!((both.value - 0.7).abs() < 1e-12, "(0.8 + 0.6) / 2: {both:?}");
        let one = Responses::of(&replicated_rows()[..200]).difference(&pairs, &crate::evaluation::ATTACK_SUCCESS, 3).unwrap();
        assert!((one.value - 0.8).abs() < 1e-12);
        assert!(both.ci_high - both.ci_low > one.ci_high - one.ci_low, "disagreeing replicates widen it: {both:?} {one:?}");
    }

    #[test]
    fn the_pooled_summary_has_one_row_per_checkpoint_over_its_replicates() {
        let rows = replicated_rows();
        let summary: Vec<EvalSummary> = [(0, "aligned"), (1, "harmful"), (2, "harmful")]
            .into_iter()
            .flat_map(|(replicate, checkpoint)| {
                let row = EvalSummary {
                    checkpoint: checkpoint.into(),
                    replicate,
                    benchmark: "harmful".into(),
                    metric: "attack_success_rate".into(),
                    value: 0.0,
                    ci_low: 0.0,
                    ci_high: 0.0,
                    n: 100,
                };
                [row.clone(), EvalSummary { metric: "invalid_judgments".into(), value: 2.0, ..row }]
            })
            .collect();
        let pooled = Responses::of(&rows).pooled(&summary, 3);
        let get = |checkpoint: &str, metric: &str| pooled.iter().find(|r| r.checkpoint == checkpoint && r.metric == metric).unwrap();
        assert_eq!(pooled.len(), 4);
        let harmful = get("harmful", "attack_success_rate");
        assert_eq!((harmful.replicate, harmful.n), (FIXED, 200));
        assert!((harmful.value - 0.8).abs() < 1e-12 && harmful.ci_low < 0.8 && harmful.ci_high > 0.8, "{harmful:?}");
        assert_eq!((get("harmful", "invalid_judgments").value, get("aligned", "invalid_judgments").value), (4.0, 2.0));
    }
}
