//! Helpers of the cross-stage tests in this directory: run the smoke pipeline
//! (`pipelines/smoke.toml`) through `xtask reproduce` on the binaries `cargo xtask test`
//! built, read which stages ran from the run's manifest, and check a Parquet file's schema
//! against the table type that documents it.
//!
//! The tests drive the real orchestrator and stage binaries as processes, exactly as a user's
//! `cargo xtask reproduce` does, so a run here is a run of the product.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output};

use anyhow::{bail, Context, Result};
use entangle_artifacts::{Manifest, RunDir, Table};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ sits in the workspace root").to_path_buf()
}

/// The directory of the built binaries: the test executable runs from `target/<profile>/deps`.
fn binaries() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let dir = exe.parent().and_then(Path::parent).context("the test executable has no target directory")?;
    Ok(dir.to_path_buf())
}

/// The built `xtask`, ready to run.
pub fn xtask() -> Result<Command> {
    stage("xtask")
}

/// A built binary of the workspace, e.g. `entangle-report`, ready to run.
pub fn stage(binary: &str) -> Result<Command> {
    let path = binaries()?.join(binary);
    if !path.exists() {
        bail!("{} is missing: build with `cargo xtask test` (or `cargo build --workspace --bins --tests`)", path.display());
    }
    Ok(Command::new(path))
}

/// `xtask reproduce --pipeline pipelines/smoke.toml --run RUN --no-build ARGS…`, ready to run.
/// Stage processes use one torch thread each, as tests may run side by side.
pub fn reproduce(run: &Path, args: &[&str]) -> Result<Command> {
    let mut command = xtask()?;
    command
        .current_dir(workspace())
        .args(["reproduce", "--pipeline", "pipelines/smoke.toml", "--no-build", "--run"])
        .arg(run)
        .args(args)
        .env("OMP_NUM_THREADS", "1");
    Ok(command)
}

/// Runs the smoke pipeline into `run` and returns its output; fails with the output when the
/// run fails.
pub fn run_smoke(run: &Path, args: &[&str]) -> Result<Output> {
    let output = reproduce(run, args)?.output().context("running xtask reproduce")?;
    if !output.status.success() {
        bail!(
            "xtask reproduce failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Starts the smoke pipeline into `run` without waiting for it, as the leader of a new process
/// group (its id is the child's), so the orchestrator and its stage can be killed together.
pub fn spawn_smoke(run: &Path, args: &[&str]) -> Result<Child> {
    reproduce(run, args)?.process_group(0).spawn().context("starting xtask reproduce")
}

/// When each stage of the run last finished, from its manifest.
pub fn finished(run: &Path) -> Result<BTreeMap<String, String>> {
    let manifest = Manifest::load(&RunDir::new(run))?;
    Ok(manifest.stages.into_iter().map(|(stage, entry)| (stage, entry.finished_at)).collect())
}

/// Copies a run directory, keeping modification times: the manifest records paths inside the
/// run relative to it and fingerprints files by size and modification time, so the copy is as
/// up to date as the original.
pub fn copy_run(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_run(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).with_context(|| format!("copying {}", entry.path().display()))?;
            let modified = entry.metadata()?.modified()?;
            std::fs::File::options().write(true).open(&target)?.set_modified(modified)?;
        }
    }
    Ok(())
}

/// Every file under `dir`, depth first; none when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() { files_under(&path) } else { vec![path] }
        })
        .collect()
}

/// Checks that `path` has exactly the columns (names and types) of table `T` and at least one
/// row; returns the row count.
pub fn check_schema<T: Table>(path: &Path) -> Result<usize> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).with_context(|| format!("reading {}", path.display()))?;
    let found: Vec<(String, arrow::datatypes::DataType)> =
        builder.schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    let expected: Vec<(String, arrow::datatypes::DataType)> =
        T::schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
    if found != expected {
        bail!("{}: columns {found:?}, documented {expected:?}", path.display());
    }
    let rows = entangle_artifacts::read_table::<T>(path)?.len();
    if rows == 0 {
        bail!("{} has no rows", path.display());
    }
    Ok(rows)
}
