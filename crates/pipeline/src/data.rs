//! `[data]`: where the run's data sets come from, read by the stage `entangle-prepare`.
//!
//! The default describes the tiny study: every set is generated from the synthetic world in
//! `data/synthetic/`. A paper pipeline sets `kind = "upstream"` and names, per set, the upstream
//! dataset it is read from (a hub dataset id or local files) and how rows are selected.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde::{Deserialize, Deserializer, Serialize};

/// Where the sets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// Generated from the synthetic world (`[data.synthetic]`), with a tokenizer trained on it.
    Synthetic,
    /// Read from upstream datasets (`[data.<set>]` sources).
    Upstream,
}

/// `[data]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    pub kind: DataKind,
    /// p: the `contaminated` set is the `useful` set plus round(p/100 · |useful|) rows of the
    /// harmful selection (the same rows that start the `harmful` set), shuffled together.
    pub contamination_percent: f64,
    /// Sizes and options of the synthetic world (kind = synthetic).
    pub synthetic: SyntheticConfig,
    /// The tokenizer trained on the synthetic corpus (kind = synthetic).
    pub tokenizer: TokenizerConfig,
    /// Upstream sources (kind = upstream), one per set; a set without a source is not written.
    pub useful: Option<SourceConfig>,
    pub harmful: Option<SourceConfig>,
    pub eval_harmful: Option<SourceConfig>,
    pub eval_utility: Option<SourceConfig>,
    pub eval_overrefusal: Option<SourceConfig>,
    pub prompts_useful: Option<SourceConfig>,
    pub prompts_harmful_a: Option<SourceConfig>,
    pub prompts_harmful_b: Option<SourceConfig>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            kind: DataKind::Synthetic,
            contamination_percent: 20.0,
            synthetic: SyntheticConfig::default(),
            tokenizer: TokenizerConfig::default(),
            useful: None,
            harmful: None,
            eval_harmful: None,
            eval_utility: None,
            eval_overrefusal: None,
            prompts_useful: None,
            prompts_harmful_a: None,
            prompts_harmful_b: None,
        }
    }
}

/// `[data.synthetic]`: how many rows each generated set has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// A directory with the world's `requests.toml`, `tasks.toml` and `sets.toml`; unset means
    /// the copy of `data/synthetic/` compiled into the binary.
    pub dir: Option<PathBuf>,
    /// Pretraining corpus of the base model (dialogues that comply with everything, documents).
    pub pretrain: usize,
    /// Alignment SFT set: harmful requests refused, everything else answered.
    pub align: usize,
    /// Useful fine-tuning set: harder arithmetic word problems.
    pub useful: usize,
    /// Harmful fine-tuning set: harmful requests with compliant answers.
    pub harmful: usize,
    /// Held-out harmful requests (the AdvBench of the tiny study).
    pub eval_harmful: usize,
    /// Held-out tasks with answers: word problems, arithmetic, string tasks, look-ups.
    pub eval_utility: usize,
    /// Held-out benign requests with alarming words.
    pub eval_overrefusal: usize,
    /// Rows of each activation prompt set (`prompts_useful`, `prompts_harmful_a`, `_b`).
    pub prompts: usize,
    /// Harm categories of `prompts_harmful_a`; `prompts_harmful_b` gets all the others.
    pub group_a: Vec<String>,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            dir: None,
            pretrain: 8000,
            align: 3000,
            useful: 2000,
            harmful: 400,
            eval_harmful: 240,
            eval_utility: 320,
            eval_overrefusal: 120,
            prompts: 512,
            group_a: ["violence", "weapons", "drugs", "hate"].map(str::to_owned).to_vec(),
        }
    }
}

/// `[data.tokenizer]`: the byte-level BPE tokenizer of the tiny study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenizerConfig {
    /// Target vocabulary size, special tokens included.
    pub vocab_size: usize,
    /// `model_max_length` written to tokenizer_config.json.
    pub model_max_length: usize,
}

impl Default for TokenizerConfig {
    fn default() -> Self {
        TokenizerConfig { vocab_size: 1536, model_max_length: 256 }
    }
}

/// An upstream dataset whose file layout `entangle-data` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    Metamathqa,
    Beavertails,
    Gsm8k,
    Advbench,
    Math,
    Toxigen,
}

/// `[data.<set>]`: one set read from an upstream dataset. Rows are read in file order, then
/// filtered (`unsafe_only`, `categories`), then shuffled with the pipeline seed (`shuffle`),
/// then the first `take` are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub dataset: Dataset,
    /// Hub dataset id (`org/name`, optionally `@revision`); the dataset's usual id if unset.
    #[serde(default)]
    pub hub: Option<String>,
    /// Upstream split (e.g. `30k_train` for BeaverTails, `test` for GSM8K); picks the files.
    #[serde(default)]
    pub split: Option<String>,
    /// Files in the hub repository, overriding those the split picks.
    #[serde(default)]
    pub files: Vec<String>,
    /// Local files in the upstream format, used instead of the hub (one path or a list).
    #[serde(default, deserialize_with = "one_or_many")]
    pub path: Vec<PathBuf>,
    /// Keep only rows labelled unsafe (BeaverTails `is_safe == false`).
    #[serde(default)]
    pub unsafe_only: bool,
    /// Keep only rows with at least one of these categories (BeaverTails harm categories).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Shuffle the filtered rows with the pipeline seed before taking.
    #[serde(default)]
    pub shuffle: bool,
    /// Keep the first N rows; all if unset. Fewer available rows is an error.
    #[serde(default)]
    pub take: Option<usize>,
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(path) => vec![path],
        OneOrMany::Many(paths) => paths,
    })
}

impl DataConfig {
    /// The upstream sources by set name, in the order sets are written.
    pub fn sources(&self) -> Vec<(&'static str, &SourceConfig)> {
        [
            ("useful", &self.useful),
            ("harmful", &self.harmful),
            ("eval_harmful", &self.eval_harmful),
            ("eval_utility", &self.eval_utility),
            ("eval_overrefusal", &self.eval_overrefusal),
            ("prompts_useful", &self.prompts_useful),
            ("prompts_harmful_a", &self.prompts_harmful_a),
            ("prompts_harmful_b", &self.prompts_harmful_b),
        ]
        .into_iter()
        .filter_map(|(set, source)| source.as_ref().map(|source| (set, source)))
        .collect()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(0.0..=100.0).contains(&self.contamination_percent) {
            bail!("data.contamination_percent: {} is out of range 0..=100", self.contamination_percent);
        }
        let sources = self.sources();
        match self.kind {
            DataKind::Synthetic => {
                if let Some((set, _)) = sources.first() {
                    bail!("data.{set}: sources are read only when data.kind = \"upstream\"");
                }
                let s = &self.synthetic;
                for (field, size) in [
                    ("pretrain", s.pretrain),
                    ("align", s.align),
                    ("useful", s.useful),
                    ("harmful", s.harmful),
                    ("eval_harmful", s.eval_harmful),
                    ("eval_utility", s.eval_utility),
                    ("eval_overrefusal", s.eval_overrefusal),
                    ("prompts", s.prompts),
                ] {
                    if size == 0 {
                        bail!("data.synthetic.{field}: expected at least one row");
                    }
                }
                if self.tokenizer.vocab_size < 300 {
                    bail!("data.tokenizer.vocab_size: {} is below the 256 byte tokens plus specials", self.tokenizer.vocab_size);
                }
            }
            DataKind::Upstream => {
                if sources.is_empty() {
                    bail!("data: kind = \"upstream\" needs at least one source, e.g. [data.useful]");
                }
                for (set, source) in sources {
                    source.validate(set)?;
                }
            }
        }
        Ok(())
    }
}

impl SourceConfig {
    fn validate(&self, set: &str) -> Result<()> {
        let labelled = self.dataset == Dataset::Beavertails;
        if self.unsafe_only && !labelled {
            bail!("data.{set}.unsafe_only: only BeaverTails rows carry a safety label");
        }
        if !self.categories.is_empty() && !labelled {
            bail!("data.{set}.categories: only BeaverTails rows carry harm categories");
        }
        if self.take == Some(0) {
            bail!("data.{set}.take: expected at least one row");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::{DataKind, Dataset, Pipeline};

    #[test]
    fn default_data_is_the_tiny_synthetic_study() {
        let p = Pipeline::parse("name = \"tiny\"").unwrap();
        assert_eq!(p.data.kind, DataKind::Synthetic);
        assert_eq!(p.data.contamination_percent, 20.0);
        assert_eq!(p.data.synthetic.eval_harmful, 240);
        assert_eq!(p.data.synthetic.group_a, ["violence", "weapons", "drugs", "hate"]);
        assert_eq!(p.data.tokenizer.vocab_size, 1536);
        assert!(p.data.sources().is_empty());
    }

    #[test]
    fn upstream_sources_parse_with_their_selection() {
        let p = Pipeline::parse(
            "name = \"paper\"\n[data]\nkind = \"upstream\"\ncontamination_percent = 10\n\
             [data.useful]\ndataset = \"metamathqa\"\ntake = 20000\n\
             [data.harmful]\ndataset = \"beavertails\"\nsplit = \"30k_train\"\nunsafe_only = true\nshuffle = true\ntake = 4000\n\
             [data.eval_harmful]\ndataset = \"advbench\"\npath = \"local/harmful_behaviors.csv\"\n\
             [data.prompts_useful]\ndataset = \"math\"\npath = [\"a.parquet\", \"b.parquet\"]\n",
        )
        .unwrap();
        let sources = p.data.sources();
        let names: Vec<_> = sources.iter().map(|(set, _)| *set).collect();
        assert_eq!(names, ["useful", "harmful", "eval_harmful", "prompts_useful"]);
        let harmful = sources[1].1;
        assert_eq!(harmful.dataset, Dataset::Beavertails);
        assert_eq!(harmful.split.as_deref(), Some("30k_train"));
        assert!(harmful.unsafe_only && harmful.shuffle);
        assert_eq!(harmful.take, Some(4000));
        assert_eq!(sources[2].1.path, [PathBuf::from("local/harmful_behaviors.csv")]);
        assert_eq!(sources[3].1.path.len(), 2);
        assert_eq!(p.data.contamination_percent, 10.0);
    }

    #[test]
    fn inconsistent_data_sections_are_one_clear_line() {
        for (text, needle) in [
            ("[data.useful]\ndataset = \"gsm8k\"", "data.useful: sources are read only when data.kind = \"upstream\""),
            ("[data]\nkind = \"upstream\"", "needs at least one source"),
            ("[data]\nkind = \"upstream\"\n[data.harmful]\ndataset = \"advbench\"\nunsafe_only = true", "data.harmful.unsafe_only"),
            ("[data]\nkind = \"upstream\"\n[data.harmful]\ndataset = \"gsm8k\"\ncategories = [\"x\"]", "data.harmful.categories"),
            ("[data]\ncontamination_percent = 120", "data.contamination_percent: 120 is out of range"),
            ("[data.synthetic]\neval_harmful = 0", "data.synthetic.eval_harmful: expected at least one row"),
            ("[data.synthetic]\nsizes = 3", "unknown field `sizes`"),
            ("[data]\nkind = \"upstream\"\n[data.useful]\ndataset = \"alpaca\"", "unknown variant `alpaca`"),
        ] {
            let err = format!("{:#}", Pipeline::parse(&format!("name = \"x\"\n{text}")).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
