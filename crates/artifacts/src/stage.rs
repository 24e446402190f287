//! The stage harness every stage runs through: take the run's lock, skip when the manifest
//! shows the outputs up to date for this code, configuration and inputs, otherwise do the work
//! and record what it wrote and how long it took.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;

use crate::{config_hash, lock, stamp_inputs, FileStamp, Manifest, RunDir, StageEntry};

/// What a stage's outputs depend on in its code: the crate's version and a number the stage
/// bumps whenever a change to it would change what it writes (a schema or an algorithm).
/// [`stage_version!`](crate::stage_version) fills in the calling crate's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StageVersion {
    pub crate_version: &'static str,
    pub algorithm: u32,
}

/// The [`StageVersion`] of the calling crate with algorithm number `$algorithm`.
#[macro_export]
macro_rules! stage_version {
    ($algorithm:expr) => {
        $crate::StageVersion { crate_version: env!("CARGO_PKG_VERSION"), algorithm: $algorithm }
    };
}

/// How a stage call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The stage did its work and recorded its outputs.
    Finished,
    /// The manifest showed the outputs up to date; nothing was done.
    UpToDate,
}

/// A stage about to run: its manifest name, key (code version and configuration) and inputs.
pub struct Stage<'a> {
    run: &'a RunDir,
    name: String,
    key: String,
    inputs: Vec<FileStamp>,
}

/// The key a stage is recorded under: its code version and its configuration.
#[derive(Serialize)]
struct StageKey<'a, C: Serialize> {
    version: StageVersion,
    config: &'a C,
}

impl<'a> Stage<'a> {
    /// Takes the run's lock (see [`lock::hold`]) and stamps `inputs`, paths as opened (under the
    /// run directory or anywhere else). `config` is everything else the outputs depend on.
    pub fn new(
        run: &'a RunDir,
        name: &str,
        version: StageVersion,
        config: &impl Serialize,
        inputs: &[&Path],
    ) -> Result<Stage<'a>> {
        lock::hold(run)?;
        Ok(Stage {
            run,
            name: name.to_owned(),
            key: config_hash(&StageKey { version, config })?,
            inputs: stamp_inputs(run, inputs)?,
        })
    }

    /// The stage's manifest name, e.g. `train:useful`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A hash of the stage's key and inputs: what a state saved for resuming is valid for.
    pub fn fingerprint(&self) -> Result<String> {
        config_hash(&(&self.key, &self.inputs))
    }

    /// Whether the manifest records this stage with the same key and inputs, and its outputs
    /// still exist.
    pub fn is_up_to_date(&self) -> Result<bool> {
        Ok(Manifest::load(self.run)?.is_fresh(self.run, &self.name, &self.key, &self.inputs))
    }

    /// Whether the manifest records this stage at all, up to date or not.
    pub fn was_recorded(&self) -> Result<bool> {
        Ok(Manifest::load(self.run)?.stages.contains_key(&self.name))
    }

    /// Runs `work` unless the stage is up to date and not `force`d, then records the outputs
    /// `work` returns (paths under the run directory) and the time it took.
    pub fn run(self, force: bool, work: impl FnOnce() -> Result<Vec<PathBuf>>) -> Result<Outcome> {
        if !force && self.is_up_to_date()? {
            tracing::info!("{} is up to date; skipped (pass --force to redo it)", self.name);
            return Ok(Outcome::UpToDate);
        }
        let started = Instant::now();
        let outputs = work()?;
        let seconds = started.elapsed().as_secs_f64();
        let outputs = outputs.iter().map(|p| self.run.relative(p).display().to_string()).collect();
        Manifest::record(self.run, &self.name, StageEntry::finished_now(self.key, self.inputs, outputs, seconds))?;
        tracing::info!("{} finished in {seconds:.1} s", self.name);
        Ok(Outcome::Finished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage<'a>(run: &'a RunDir, algorithm: u32, lr: f64) -> Stage<'a> {
        let input = run.root.join("in.txt");
        Stage::new(run, "train:x", StageVersion { crate_version: "0.1.0", algorithm }, &lr, &[&input]).unwrap()
    }

    fn write_output(run: &RunDir) -> Result<Vec<PathBuf>> {
        let out = run.root.join("out.txt");
        std::fs::write(&out, b"out")?;
        Ok(vec![out])
    }

    #[test]
    fn a_stage_runs_once_until_its_code_configuration_or_input_changes() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::write(dir.path().join("in.txt"), b"in").unwrap();
        assert_eq!(stage(&run, 1, 0.1).run(false, || write_output(&run)).unwrap(), Outcome::Finished);
        assert_eq!(Manifest::load(&run).unwrap().stages["train:x"].outputs, vec!["out.txt"]);
        let never = || -> Result<Vec<PathBuf>> { panic!("an up-to-date stage must not run") };
        assert_eq!(stage(&run, 1, 0.1).run(false, never).unwrap(), Outcome::UpToDate);
        assert_eq!(stage(&run, 2, 0.1).run(false, || write_output(&run)).unwrap(), Outcome::Finished, "new algorithm");
        assert_eq!(stage(&run, 2, 0.2).run(false, || write_output(&run)).unwrap(), Outcome::Finished, "new config");
        assert_eq!(stage(&run, 2, 0.2).run(true, || write_output(&run)).unwrap(), Outcome::Finished, "forced");
        std::fs::remove_file(dir.path().join("out.txt")).unwrap();
        assert!(!stage(&run, 2, 0.2).is_up_to_date().unwrap(), "an output is missing");
    }

    #[test]
    fn a_failed_stage_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::write(dir.path().join("in.txt"), b"in").unwrap();
        assert!(stage(&run, 1, 0.1).run(false, || anyhow::bail!("diverged")).is_err());
        assert!(!stage(&run, 1, 0.1).was_recorded().unwrap());
    }

    #[test]
    fn the_macro_takes_the_calling_crates_version() {
        assert_eq!(stage_version!(3), StageVersion { crate_version: env!("CARGO_PKG_VERSION"), algorithm: 3 });
    }
}
