//! Checkpoint names, as pipelines, the command line and every table write them: a model by name
//! (`aligned`) or a projection merge (`useful:topk:orth:0.25`), and the SVD procedure. The one
//! parser of these names; the evaluator, the subspace stage and the report all use it.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use crate::{MergeMethod, Pipeline, SubspaceKind, SvdMode};

const KINDS: [SubspaceKind; 3] = [SubspaceKind::Topk, SubspaceKind::Randomk, SubspaceKind::Random];
const METHODS: [MergeMethod; 3] = [MergeMethod::Same, MergeMethod::Orth, MergeMethod::Opp];

/// One projection merge of METHOD.md: the aligned weights plus the part of a fine-tune's update
/// that `method` keeps of its projection on the `kind` subspace of dimension k =
/// max(1, round(fraction · r)). Written `FINETUNE:KIND:METHOD:FRACTION`, e.g.
/// `useful:topk:orth:0.25`.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeSpec {
    /// Name of the fine-tuned model (a model of the pipeline).
    pub finetune: String,
    pub kind: SubspaceKind,
    pub method: MergeMethod,
    /// In [0, 1]; 0 and 1 select the projection on the direction of A for every tensor.
    pub fraction: f64,
}

impl FromStr for MergeSpec {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<MergeSpec> {
        // One flat message: clap prints only the outermost context of an error.
        parse_spec(text).map_err(|err| {
            anyhow::anyhow!("invalid merge spec `{text}`: {err} (expected FINETUNE:KIND:METHOD:FRACTION, e.g. useful:topk:orth:0.25)")
        })
    }
}

fn parse_spec(text: &str) -> Result<MergeSpec> {
    let [finetune, kind, method, fraction] = text.split(':').collect::<Vec<_>>()[..] else {
        bail!("expected four fields separated by `:`");
    };
    if finetune.is_empty() {
        bail!("the fine-tune name is empty");
    }
    let kind = KINDS
        .into_iter()
        .find(|k| k.name() == kind)
        .with_context(|| format!("unknown kind `{kind}`: expected topk, randomk or random"))?;
    let method = METHODS
        .into_iter()
        .find(|m| m.name() == method)
        .with_context(|| format!("unknown method `{method}`: expected same, orth or opp"))?;
    let fraction: f64 = fraction
        .parse()
        .ok()
        .filter(|f: &f64| (0.0..=1.0).contains(f))
        .with_context(|| format!("fraction `{fraction}` is not a number between 0 and 1"))?;
    Ok(MergeSpec { finetune: finetune.to_owned(), kind, method, fraction })
}

impl fmt::Display for MergeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}:{}", self.finetune, self.kind.name(), self.method.name(), self.fraction)
    }
}

/// A checkpoint: a model of the run or of `[models]` by name, or a projection merge.
#[derive(Debug, Clone, PartialEq)]
pub enum Checkpoint {
    /// A model by name: `base`, `aligned`, a fine-tune, …
    Model(String),
    /// A projection merge.
    Merge(MergeSpec),
}

impl Checkpoint {
    /// A name with `:` is a merge spec, anything else a model name.
    pub fn parse(name: &str) -> Result<Checkpoint> {
        if name.contains(':') {
            Ok(Checkpoint::Merge(name.parse()?))
        } else {
            Ok(Checkpoint::Model(name.to_owned()))
        }
    }

    /// The models it is made of: itself, or a merge's base, aligned and fine-tuned models.
    pub fn models<'a>(&'a self, pipeline: &'a Pipeline) -> Vec<&'a str> {
        match self {
            Checkpoint::Model(name) => vec![name],
            Checkpoint::Merge(spec) => vec![&pipeline.projection.base, &pipeline.projection.aligned, &spec.finetune],
        }
    }

    /// The name as written in tables.
    pub fn name(&self) -> String {
        match self {
            Checkpoint::Model(name) => name.clone(),
            Checkpoint::Merge(spec) => spec.to_string(),
        }
    }
}

/// Parses `exact` or `reference`, the values of `--svd`.
pub fn parse_svd_mode(text: &str) -> Result<SvdMode> {
    match text {
        "exact" => Ok(SvdMode::Exact),
        "reference" => Ok(SvdMode::Reference),
        other => bail!("unknown SVD mode `{other}`: expected exact or reference"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_specs_parse_and_print_back() {
        let check = |text: &str, kind, method, fraction| {
            let spec: MergeSpec = text.parse().unwrap();
            assert_eq!(spec, MergeSpec { finetune: "useful".into(), kind, method, fraction });
            assert_eq!(spec.to_string(), text);
        };
        check("useful:topk:orth:0.25", SubspaceKind::Topk, MergeMethod::Orth, 0.25);
        check("useful:randomk:same:0.99", SubspaceKind::Randomk, MergeMethod::Same, 0.99);
        check("useful:random:opp:1", SubspaceKind::Random, MergeMethod::Opp, 1.0);
    }

    #[test]
    fn invalid_specs_say_what_is_wrong_in_one_line() {
        for (text, needle) in [
            ("useful:topk:orth", "expected four fields"),
            ("useful:topk:orth:0.25:x", "expected four fields"),
            (":topk:orth:0.25", "fine-tune name is empty"),
            ("useful:best:orth:0.25", "unknown kind `best`: expected topk, randomk or random"),
            ("useful:topk:keep:0.25", "unknown method `keep`: expected same, orth or opp"),
            ("useful:topk:orth:half", "fraction `half` is not a number between 0 and 1"),
            ("useful:topk:orth:1.5", "fraction `1.5` is not a number between 0 and 1"),
            ("useful:topk:orth:NaN", "fraction `NaN` is not a number between 0 and 1"),
        ] {
            let err = text.parse::<MergeSpec>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.contains(&format!("invalid merge spec `{text}`")), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn names_with_a_colon_are_merges() {
        assert_eq!(Checkpoint::parse("aligned").unwrap(), Checkpoint::Model("aligned".into()));
        let merge = Checkpoint::parse("useful:topk:orth:0.25").unwrap();
        assert_eq!(merge.name(), "useful:topk:orth:0.25");
        assert!(matches!(merge, Checkpoint::Merge(_)));
        assert!(Checkpoint::parse("useful:best:orth:0.25").is_err());
    }

    #[test]
    fn svd_modes_parse() {
        assert_eq!(parse_svd_mode("exact").unwrap(), SvdMode::Exact);
        assert_eq!(parse_svd_mode("reference").unwrap(), SvdMode::Reference);
        assert!(format!("{}", parse_svd_mode("fast").unwrap_err()).contains("unknown SVD mode `fast`"));
    }
}
