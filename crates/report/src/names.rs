//! Checkpoint names of `eval/summary.parquet`: a model of the run (`aligned`) or a projection
//! merge `FINETUNE:KIND:METHOD:FRACTION` (`useful:topk:orth:0.25`).

use std::cmp::Ordering;

use entangle_pipeline::Pipeline;

/// A parsed checkpoint name.
#[derive(Debug, Clone, PartialEq)]
pub enum Checkpoint {
    /// A model by name: `base`, `aligned`, a fine-tune, …
    Model(String),
    Merge(Merge),
}

/// A projection merge (METHOD.md, experiment 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Merge {
    pub ft: String,
    pub kind: String,
    pub method: String,
    pub frac: f64,
}

impl Checkpoint {
    /// Parses `name`; anything that is not four colon-separated parts ending in a number is a
    /// model name.
    pub fn parse(name: &str) -> Checkpoint {
        let parts: Vec<&str> = name.split(':').collect();
        if let [ft, kind, method, frac] = parts[..] {
            if let Ok(frac) = frac.parse::<f64>() {
                if [ft, kind, method].iter().all(|p| !p.is_empty()) {
                    return Checkpoint::Merge(Merge {
                        ft: ft.to_owned(),
                        kind: kind.to_owned(),
                        method: method.to_owned(),
                        frac,
                    });
                }
            }
        }
        Checkpoint::Model(name.to_owned())
    }
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
    match (Checkpoint::parse(a), Checkpoint::parse(b)) {
        (Checkpoint::Model(x), Checkpoint::Model(y)) => model_rank(&x).cmp(&model_rank(&y)).then(x.cmp(&y)),
        (Checkpoint::Model(_), Checkpoint::Merge(_)) => Ordering::Less,
        (Checkpoint::Merge(_), Checkpoint::Model(_)) => Ordering::Greater,
        (Checkpoint::Merge(x), Checkpoint::Merge(y)) => model_rank(&x.ft)
            .cmp(&model_rank(&y.ft))
            .then_with(|| x.ft.cmp(&y.ft))
            .then_with(|| rank(&kinds, &x.kind).cmp(&rank(&kinds, &y.kind)))
            .then_with(|| x.kind.cmp(&y.kind))
            .then_with(|| rank(&methods, &x.method).cmp(&rank(&methods, &y.method)))
            .then_with(|| x.method.cmp(&y.method))
            .then_with(|| x.frac.total_cmp(&y.frac)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_into_models_and_merges() {
        fn check(name: &str, expected: Option<(&str, &str, &str, f64)>) {
            let expected = match expected {
                Some((ft, kind, method, frac)) => {
                    Checkpoint::Merge(Merge { ft: ft.into(), kind: kind.into(), method: method.into(), frac })
                }
                None => Checkpoint::Model(name.into()),
            };
            assert_eq!(Checkpoint::parse(name), expected, "{name}");
        }
        check("useful:topk:orth:0.25", Some(("useful", "topk", "orth", 0.25)));
        check("contaminated:random:same:0.99", Some(("contaminated", "random", "same", 0.99)));
        check("aligned", None);
        check("useful:topk:orth", None);
        check("useful:topk:orth:quarter", None);
        check("useful::orth:0.5", None);
        check("org/model:topk:orth:0.5:x", None);
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
