//! The upstream datasets: where each lives on the hub, which files hold each split, the fields
//! of a row, and how a row becomes an [`Example`]. The layouts are written down in
//! docs/architecture.md.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use entangle_artifacts::Example;
use entangle_pipeline::Dataset;
use serde::Deserialize;

use super::formats::read_rows;

/// The 14 harm categories of a BeaverTails row (`category` map keys).
pub const BEAVERTAILS_CATEGORIES: [&str; 14] = [
    "animal_abuse",
    "child_abuse",
    "controversial_topics,politics",
    "discrimination,stereotype,injustice",
    "drug_abuse,weapons,banned_substance",
    "financial_crime,property_crime,theft",
    "hate_speech,offensive_language",
    "misinformation_regarding_ethics,laws_and_safety",
    "non_violent_unethical_behavior",
    "privacy_violation",
    "self_harm",
    "sexually_explicit,adult_content",
    "terrorism,organized_crime",
    "violence,aiding_and_abetting,incitement",
];

const MATH_SUBJECTS: [&str; 7] = [
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
];

/// Where a dataset lives and what its rows are.
pub struct Layout {
    /// The name in the `source` column.
    pub name: &'static str,
    pub hub: &'static str,
    pub default_split: &'static str,
    pub license: &'static str,
}

pub fn layout(dataset: Dataset) -> Layout {
    let (name, hub, default_split, license) = match dataset {
        Dataset::Metamathqa => ("metamathqa", "meta-math/MetaMathQA", "train", "MIT"),
        Dataset::Beavertails => ("beavertails", "PKU-Alignment/BeaverTails", "30k_train", "CC-BY-NC-4.0"),
        Dataset::Gsm8k => ("gsm8k", "openai/gsm8k", "test", "MIT"),
        Dataset::Advbench => ("advbench", "walledai/AdvBench", "train", "MIT"),
        Dataset::Math => ("math", "EleutherAI/hendrycks_math", "test", "MIT"),
        Dataset::Toxigen => ("toxigen", "toxigen/toxigen-data", "train", "CDLA-Permissive-2.0"),
    };
    Layout { name, hub, default_split, license }
}

/// The hub files that hold `split` of `dataset`.
pub fn split_files(dataset: Dataset, split: &str) -> Result<Vec<String>> {
    let files: Vec<String> = match (dataset, split) {
        (Dataset::Metamathqa, "train") => vec!["MetaMathQA-395K.json".into()],
        (Dataset::Beavertails, "30k_train" | "30k_test") => vec![format!("round0/30k/{}.jsonl.gz", &split[4..])],
        (Dataset::Beavertails, "330k_train" | "330k_test") => vec![format!("round0/330k/{}.jsonl.xz", &split[5..])],
        (Dataset::Gsm8k, "train" | "test") => vec![format!("main/{split}-00000-of-00001.parquet")],
        (Dataset::Advbench, "train") => vec!["data/train-00000-of-00001.parquet".into()],
        (Dataset::Math, "train" | "test") => MATH_SUBJECTS.iter().map(|s| format!("{s}/{split}-00000-of-00001.parquet")).collect(),
        (Dataset::Toxigen, "train" | "test") => vec![format!("annotated/{split}-00000-of-00001.parquet")],
        _ => bail!("{} has no split {split:?}; set `files` to name the hub files", layout(dataset).name),
    };
    Ok(files)
}

/// An upstream row as an example, with the labels selection filters on.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub example: Example,
    /// `is_safe` of a BeaverTails row.
    pub is_safe: Option<bool>,
    /// The harm categories a BeaverTails row is flagged with.
    pub categories: Vec<String>,
}

#[derive(Deserialize)]
struct MetaMathQaRow {
    query: String,
    response: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct BeaverTailsRow {
    prompt: String,
    response: String,
    category: BTreeMap<String, bool>,
    is_safe: bool,
}

#[derive(Deserialize)]
struct Gsm8kRow {
    question: String,
    answer: String,
}

#[derive(Deserialize)]
struct AdvBenchRow {
    #[serde(alias = "goal")]
    prompt: String,
    target: String,
}

#[derive(Deserialize)]
struct MathRow {
    #[serde(alias = "instruction")]
    problem: String,
    #[serde(alias = "output", default)]
    solution: Option<String>,
    #[serde(rename = "type", default)]
    subject: Option<String>,
}

#[derive(Deserialize)]
struct ToxigenRow {
    text: String,
    #[serde(default)]
    target_group: Option<String>,
}

/// Every row of `files` (in order) of `dataset`'s `split`; ids number the rows from 0 across
/// the files.
pub fn read_dataset(dataset: Dataset, split: &str, files: &[&Path]) -> Result<Vec<Row>> {
    let layout = layout(dataset);
    let mut rows = Vec::new();
    for file in files {
        let fields: Vec<Fields> = match dataset {
            Dataset::Metamathqa => read_rows::<MetaMathQaRow>(file)?.into_iter().map(Fields::from).collect(),
            Dataset::Beavertails => read_rows::<BeaverTailsRow>(file)?.into_iter().map(Fields::from).collect(),
            Dataset::Gsm8k => read_rows::<Gsm8kRow>(file)?.into_iter().map(Fields::from).collect(),
            Dataset::Advbench => read_rows::<AdvBenchRow>(file)?.into_iter().map(Fields::from).collect(),
            Dataset::Math => read_rows::<MathRow>(file)?.into_iter().map(Fields::from).collect(),
            Dataset::Toxigen => read_rows::<ToxigenRow>(file)?.into_iter().map(Fields::from).collect(),
        };
        for f in fields {
            let example = Example {
                id: format!("{}-{:06}", layout.name, rows.len()),
                split: split.to_owned(),
                source: layout.name.to_owned(),
                kind: f.kind.to_owned(),
                category: f.category,
                prompt: f.prompt,
                response: f.response,
                answer: f.answer,
                template: String::new(),
                entity: String::new(),
                license: layout.license.to_owned(),
            };
            rows.push(Row { example, is_safe: f.is_safe, categories: f.categories });
        }
    }
    Ok(rows)
}

/// The dataset-independent content of a row.
struct Fields {
    kind: &'static str,
    category: String,
    prompt: String,
    response: String,
    answer: Option<String>,
    is_safe: Option<bool>,
    categories: Vec<String>,
}

impl Fields {
    fn new(kind: &'static str, category: String, prompt: String, response: String, answer: Option<String>) -> Fields {
        Fields { kind, category, prompt, response, answer, is_safe: None, categories: Vec::new() }
    }
}

impl From<MetaMathQaRow> for Fields {
    fn from(row: MetaMathQaRow) -> Fields {
        let answer = row.response.rsplit_once("The answer is:").map(|(_, a)| a.trim().to_owned());
        Fields::new("math", row.kind.unwrap_or_default(), row.query, row.response, answer)
    }
}

impl From<BeaverTailsRow> for Fields {
    fn from(row: BeaverTailsRow) -> Fields {
        let categories: Vec<String> = row.category.into_iter().filter(|(_, flagged)| *flagged).map(|(name, _)| name).collect();
        let kind = if row.is_safe { "benign" } else { "harmful" };
        Fields { is_safe: Some(row.is_safe), category: categories.join(";"), categories, ..Fields::new(kind, String::new(), row.prompt, row.response, None) }
    }
}

impl From<Gsm8kRow> for Fields {
    fn from(row: Gsm8kRow) -> Fields {
        let answer = row.answer.rsplit_once("####").map(|(_, a)| a.trim().replace(',', ""));
        Fields::new("word_problem", "gsm8k".to_owned(), row.question, row.answer, answer)
    }
}

impl From<AdvBenchRow> for Fields {
    fn from(row: AdvBenchRow) -> Fields {
        Fields::new("harmful", "advbench".to_owned(), row.prompt, row.target, None)
    }
}

impl From<MathRow> for Fields {
    fn from(row: MathRow) -> Fields {
        let solution = row.solution.unwrap_or_default();
        let answer = last_boxed(&solution);
        Fields::new("math", row.subject.unwrap_or_default(), row.problem, solution, answer)
    }
}

impl From<ToxigenRow> for Fields {
    fn from(row: ToxigenRow) -> Fields {
        Fields::new("statement", row.target_group.unwrap_or_default(), row.text, String::new(), None)
    }
}

/// The content of the last `\boxed{…}` (or `\fbox{…}`) of a MATH solution, braces balanced.
fn last_boxed(solution: &str) -> Option<String> {
    let start = ["\\boxed{", "\\fbox{"].iter().filter_map(|m| solution.rfind(m).map(|i| i + m.len())).max()?;
    let mut depth = 1;
    for (i, c) in solution[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(solution[start..start + i].to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_answers_keep_nested_braces() {
        let check = |solution: &str, expected: Option<&str>| assert_eq!(last_boxed(solution).as_deref(), expected, "{solution}");
        check("So $x = \\boxed{5}$.", Some("5"));
        check("\\boxed{1} then \\boxed{\\frac{1}{2}}", Some("\\frac{1}{2}"));
        check("\\fbox{7}", Some("7"));
        check("no box", None);
        check("\\boxed{unclosed", None);
    }

    #[test]
    fn splits_map_to_the_upstream_files() {
        let check = |dataset, split: &str, expected: &[&str]| assert_eq!(split_files(dataset, split).unwrap(), expected, "{split}");
        check(Dataset::Beavertails, "30k_train", &["round0/30k/train.jsonl.gz"]);
        check(Dataset::Beavertails, "330k_test", &["round0/330k/test.jsonl.xz"]);
        check(Dataset::Gsm8k, "test", &["main/test-00000-of-00001.parquet"]);
        check(Dataset::Metamathqa, "train", &["MetaMathQA-395K.json"]);
        check(Dataset::Advbench, "train", &["data/train-00000-of-00001.parquet"]);
        check(Dataset::Toxigen, "train", &["annotated/train-00000-of-00001.parquet"]);
        assert_eq!(split_files(Dataset::Math, "test").unwrap().len(), 7);
        let err = split_files(Dataset::Gsm8k, "validation").unwrap_err().to_string();
        assert!(err.contains("gsm8k has no split \"validation\""), "{err}");
    }
}
