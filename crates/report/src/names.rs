//! Checkpoint names of `eval/summary.parquet`: a model of the run (`aligned`) or a projection
//! merge `FINETUNE:KIND:METHOD:FRACTION` (`useful:topk:orth:0.25`).

use std::cmp::Ordering;

pub use entangle_pipeline::{Checkpoint, MergeSpec};
use entangle_pipeline::Pipeline;

/// A checkpoint name of a table: a merge when it parses as one, else a model name (names in
/// tables were written by the evaluator, so any other is a model's).
pub fn checkpoint(name: &str) -> Checkpoint {
    Checkpoint::parse(name).unwrap_or_else(|_| Checkpoint::Model(name.to_owned()))
}

/// The order the report lists checkpoints in: base, aligned, the fine-tunes in pipeline order,
/// other models by name, then merges by fine-tune, kind, method (pipeline order) and fraction.
pub fn compare(pipeline: &Pipeline, a: &str, b: &str) -> Ordering {
    let projection = &pipeline.projection;
    let model_rank = |name: &str| {
        if name == projection.base {
            0
        } else if name == projection.aligned {
            1
        } else {
            2 + projection.finetunes.iter().position(|f| f == name).unwrap_or(projection.finetunes.len())
        }
    };
    let kinds: Vec<&str> = projection.kinds.iter().map(|k| k.name()).collect();
    let methods: Vec<&str> = projection.methods.iter().map(|m| m.name()).collect();
    let rank = |list: &[&str], name: &str| list.iter().position(|n| *n == name).unwrap_or(list.len());
    match (checkpoint(a), checkpoint(b)) {
        (Checkpoint::Model(x), Checkpoint::Model(y)) => model_rank(&x).cmp(&model_rank(&y)).then(x.cmp(&y)),
        (Checkpoint::Model(_), Checkpoint::Merge(_)) => Ordering::Less,
        (Checkpoint::Merge(_), Checkpoint::Model(_)) => Ordering::Greater,
        (Checkpoint::Merge(x), Checkpoint::Merge(y)) => model_rank(&x.finetune)
            .cmp(&model_rank(&y.finetune))
            .then_with(|| x.finetune.cmp(&y.finetune))
            .then_with(|| rank(&kinds, x.kind.name()).cmp(&rank(&kinds, y.kind.name())))
            .then_with(|| x.kind.name().cmp(y.kind.name()))
            .then_with(|| rank(&methods, x.method.name()).cmp(&rank(&methods, y.method.name())))
            .then_with(|| x.method.name().cmp(y.method.name()))
            .then_with(|| x.fraction.total_cmp(&y.fraction)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_merges_are_models() {
        for name in ["aligned", "useful:topk:orth", "useful:topk:orth:quarter", "useful::orth:0.5", "org/model:topk:orth:0.5:x"] {
            assert_eq!(checkpoint(name), Checkpoint::Model(name.into()), "{name}");
        }
        assert!(matches!(checkpoint("contaminated:random:same:0.99"), Checkpoint::Merge(m) if m.fraction == 0.99));
    }

    #[test]
    fn checkpoints_sort_models_first_then_merges_in_pipeline_order() {
        let pipeline = Pipeline::parse("name = \"t\"").unwrap();
        let mut names = vec![
            "useful:random:orth:0.5",
            "harmful",
            "useful:topk:orth:0.25",
            "zeta",
            "useful:topk:same:0.99",
            "aligned",
            "harmful:topk:same:0.01",
            "useful:topk:same:0.01",
            "useful",
            "base",
        ];
        names.sort_by(|a, b| compare(&pipeline, a, b));
        assert_eq!(
            names,
            vec![
                "base",
                "aligned",
                "useful",
                "harmful",
                "zeta",
                "useful:topk:same:0.01",
                "useful:topk:same:0.99",
                "useful:topk:orth:0.25",
                "useful:random:orth:0.5",
                "harmful:topk:same:0.01",
            ]
        );
    }
}
