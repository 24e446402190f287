//! Paired comparisons of checkpoints, prompt by prompt (METHOD.md, "Beyond the paper"): every
//! difference the findings state — the aligned model against the base model and the harmful
//! fine-tune, the useful fine-tune against the aligned model, a subspace kind's merges against
//! the un-projected fine-tune and against the control kinds, per fraction and averaged over
//! fractions — with its 95% bootstrap interval (`entangle-stats`, prompts resampled in pairs)
//! and the verdict that interval gives: higher, lower, or no detectable difference. No ratio is
//! stated: one whose denominator's interval includes zero reads noise as an effect.

use std::collections::BTreeMap;

use entangle_artifacts::EvalResponse;
use entangle_stats::{difference_with_interval, Estimate, Verdict};

use crate::document::Table;
use crate::evaluation::{kind_label, Metric, Summary, ACCURACY, ANSWER_NLL, REFUSAL};
use crate::format::fixed;
use crate::names::{checkpoint, Checkpoint};

/// Every response's metric values, by checkpoint, benchmark and metric, then item.
pub struct Responses {
    values: BTreeMap<(String, String, &'static str), BTreeMap<String, f64>>,
}

impl Responses {
    pub fn of(rows: &[EvalResponse]) -> Responses {
        let mut values: BTreeMap<(String, String, &'static str), BTreeMap<String, f64>> = BTreeMap::new();
        for row in rows {
            for (metric, value) in row.metric_values() {
                let key = (row.checkpoint.clone(), row.benchmark.clone(), metric);
                values.entry(key).or_default().insert(row.item.clone(), value);
            }
        }
        Responses { values }
    }

    fn of_checkpoint(&self, checkpoint: &str, metric: &Metric) -> Option<&BTreeMap<String, f64>> {
        self.values.get(&(checkpoint.to_owned(), metric.benchmark.name().to_owned(), metric.name))
    }

    /// The mean over `pairs` (a, b) of a's `metric` minus b's, paired by prompt: per prompt the
    /// mean of its differences over the pairs (prompts every checkpoint has), then the mean over
    /// prompts with its interval. `None` when a checkpoint lacks the metric or no prompt is shared.
    pub fn difference(&self, pairs: &[(String, String)], metric: &Metric, seed: u64) -> Option<Estimate> {
        let sides: Vec<(&BTreeMap<String, f64>, &BTreeMap<String, f64>)> = pairs
            .iter()
            .map(|(a, b)| Some((self.of_checkpoint(a, metric)?, self.of_checkpoint(b, metric)?)))
            .collect::<Option<_>>()?;
        let (first, _) = sides.first()?;
        let per_prompt: Vec<f64> = first
            .keys()
            .filter_map(|item| {
                let differences: Vec<f64> =
                    sides.iter().map(|(a, b)| Some(a.get(item)? - b.get(item)?)).collect::<Option<_>>()?;
                Some(differences.iter().sum::<f64>() / differences.len() as f64)
            })
            .collect();
        difference_with_interval(&[per_prompt], seed)
    }
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
            findings.push(format!("The aligned model against {label}, paired by harmful prompt: {clause}."));
        }
    }
    for utility in [ACCURACY, ANSWER_NLL] {
        let pairs = [(useful.clone(), aligned.clone())];
        if let Some(clause) = clause(responses, &pairs, &utility, seed, "for the useful fine-tune") {
            findings.push(format!("The useful fine-tune against the aligned model, paired by problem: {clause}."));
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
                    "{} merges of the {} fine-tune with the {} directions, against {against}, paired by prompt and averaged over {} fraction(s): {}.",
                    capitalised(&group.method),
                    group.finetune,
                    kind_label(&group.kind),
                    merges.len(),
                    clauses.join("; ")
                )
            })
        })
        .collect()
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
}
