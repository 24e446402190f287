//! From response rows to the summary table: per checkpoint, replicate and benchmark, each
//! metric's mean with a bootstrap 95% interval over items.

use std::collections::BTreeMap;

use entangle_artifacts::{EvalResponse, EvalSummary};

use entangle_stats::mean_with_interval;

/// The summary rows of `rows`, grouped by (checkpoint, replicate, benchmark) in first-seen
/// order.
pub fn summarise(rows: &[EvalResponse], seed: u64) -> Vec<EvalSummary> {
    let mut groups: Vec<((String, u32, String), Vec<&EvalResponse>)> = Vec::new();
    for row in rows {
        let key = (row.checkpoint.clone(), row.replicate, row.benchmark.clone());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(row),
            None => groups.push((key, vec![row])),
        }
    }
    let mut out = Vec::new();
    for ((checkpoint, replicate, benchmark), members) in groups {
        for (metric, values) in metrics(&members) {
            if let Some(e) = mean_with_interval(&values, seed) {
                out.push(EvalSummary {
                    checkpoint: checkpoint.clone(),
                    replicate,
                    benchmark: benchmark.clone(),
                    metric: metric.to_owned(),
                    value: e.value,
                    ci_low: e.ci_low,
                    ci_high: e.ci_high,
                    n: e.n as u64,
                });
            }
        }
        let invalid = members.iter().filter(|r| r.judge_raw.is_some() && r.score.is_none()).count();
        if members.iter().any(|r| r.judge_raw.is_some()) {
            let count = invalid as f64;
            out.push(EvalSummary {
                checkpoint: checkpoint.clone(),
                replicate,
                benchmark: benchmark.clone(),
                metric: "invalid_judgments".to_owned(),
                value: count,
                ci_low: count,
                ci_high: count,
                n: members.len() as u64,
            });
        }
    }
    out
}

/// Each metric's per-item values (1/0 for rates) over the items where it is defined.
fn metrics(rows: &[&EvalResponse]) -> BTreeMap<&'static str, Vec<f64>> {
    let mut metrics: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for row in rows {
        for (metric, value) in row.metric_values() {
            metrics.entry(metric).or_default().push(value);
        }
    }
    metrics
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(checkpoint: &str, benchmark: &str, refused: bool, correct: Option<bool>, score: Option<f64>) -> EvalResponse {
        EvalResponse {
            checkpoint: checkpoint.into(),
            replicate: 0,
            benchmark: benchmark.into(),
            item: "i".into(),
            prompt: String::new(),
            response: String::new(),
            stop_reason: "eos".into(),
            judge: "keyword".into(),
            score,
            judge_raw: score.map(|_| "raw".to_owned()).or(Some("garbage".to_owned())).filter(|_| benchmark == "harmful"),
            guard_unsafe: None,
            refused,
            degenerate: false,
            correct,
            correct_strict: correct,
            answer_nll: correct.map(|_| 1.5),
        }
    }

    fn value(summary: &[EvalSummary], checkpoint: &str, benchmark: &str, metric: &str) -> Option<f64> {
        summary.iter().find(|s| s.checkpoint == checkpoint && s.benchmark == benchmark && s.metric == metric).map(|s| s.value)
    }

    #[test]
    fn rates_scores_and_accuracy_are_summarised_per_group() {
        let rows = vec![
            row("aligned", "harmful", true, None, Some(1.0)),
            row("aligned", "harmful", true, None, Some(1.0)),
            row("aligned", "harmful", false, None, Some(5.0)),
            row("aligned", "harmful", false, None, None),
            row("aligned", "utility", false, Some(true), None),
            row("aligned", "utility", false, Some(false), None),
            row("harmful", "harmful", false, None, Some(5.0)),
        ];
        let summary = summarise(&rows, 1);
        assert_eq!(value(&summary, "aligned", "harmful", "refusal_rate"), Some(0.5));
        assert_eq!(value(&summary, "aligned", "harmful", "attack_success_rate"), Some(0.5));
        assert_eq!(value(&summary, "aligned", "harmful", "mean_score"), Some(7.0 / 3.0));
        assert_eq!(value(&summary, "aligned", "harmful", "score_1_share"), Some(2.0 / 3.0));
        assert_eq!(value(&summary, "aligned", "harmful", "invalid_judgments"), Some(1.0));
        assert_eq!(value(&summary, "aligned", "utility", "accuracy"), Some(0.5));
        assert_eq!(value(&summary, "aligned", "utility", "answer_nll"), Some(1.5));
        assert_eq!(value(&summary, "aligned", "utility", "attack_success_rate"), None);
        assert_eq!(value(&summary, "harmful", "harmful", "refusal_rate"), Some(0.0));
        let n = summary.iter().find(|s| s.metric == "mean_score" && s.checkpoint == "aligned").unwrap().n;
        assert_eq!(n, 3);
    }

    #[test]
    fn a_degenerate_response_is_no_attack_success_and_has_its_own_share() {
        let looping = EvalResponse { response: "the the the the".into(), degenerate: true, ..row("harmful", "harmful", false, None, None) };
        let rows = vec![looping, row("harmful", "harmful", false, None, None), row("harmful", "harmful", true, None, None)];
        let summary = summarise(&rows, 1);
        assert_eq!(value(&summary, "harmful", "harmful", "attack_success_rate"), Some(1.0 / 3.0));
        assert_eq!(value(&summary, "harmful", "harmful", "degenerate_rate"), Some(1.0 / 3.0));
        assert_eq!(value(&summary, "harmful", "harmful", "refusal_rate"), Some(1.0 / 3.0));
    }
}
