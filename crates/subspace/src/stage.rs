//! What every stage of this crate does around its work: skip when the manifest says its outputs
//! are up to date, record itself when finished, and show progress.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use entangle_artifacts::{config_hash, stamp_inputs, FileStamp, Manifest, RunDir, StageEntry};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// How a stage call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The stage computed and wrote its outputs.
    Finished,
    /// The manifest showed the outputs up to date for this configuration and these inputs.
    UpToDate,
}

/// A stage about to run: its manifest name, configuration hash and input fingerprints.
pub(crate) struct Stage<'a> {
    run: &'a RunDir,
    name: String,
    config_hash: String,
    inputs: Vec<FileStamp>,
    started: Instant,
}

impl<'a> Stage<'a> {
    /// `inputs` are paths as opened (under the run directory, or anywhere else).
    pub(crate) fn new(run: &'a RunDir, name: &str, config: &impl Serialize, inputs: &[&Path]) -> Result<Stage<'a>> {
        Ok(Stage {
            run,
            name: name.to_owned(),
            config_hash: config_hash(config)?,
            inputs: stamp_inputs(run, &inputs)?,
            started: Instant::now(),
        })
    }

    /// Whether the manifest records this stage with the same configuration and inputs, and its
    /// outputs still exist.
    pub(crate) fn is_up_to_date(&self) -> Result<bool> {
        Ok(Manifest::load(self.run)?.is_fresh(self.run, &self.name, &self.config_hash, &self.inputs))
    }

    /// Records the finished stage and its `outputs` in the manifest.
    pub(crate) fn finish(self, outputs: &[&Path]) -> Result<()> {
        let outputs = outputs.iter().map(|p| self.run.relative(p).display().to_string()).collect();
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::info!("{} finished in {seconds:.1} s", self.name);
        Manifest::record(self.run, &self.name, StageEntry::finished_now(self.config_hash, self.inputs, outputs, seconds))
    }
}

/// A progress bar over `len` tensors or groups, labelled `what`; hidden when stderr is not a
/// terminal.
pub(crate) fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed_precise} ({eta} left)")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len as u64).with_style(style).with_message(what.to_owned())
}
