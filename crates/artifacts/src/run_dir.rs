//! Where each artifact of a run lives. Stages ask [`RunDir`] for paths instead of joining
//! strings themselves, so the layout documented in docs/architecture.md has one owner.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Result};

/// A run directory, `runs/<pipeline>/` by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        RunDir { root: root.to_path_buf() }
    }

    /// `manifest.json`: one entry per finished stage.
    pub fn manifest(&self) -> PathBuf {
        self.root.join("manifest.json")
    }

    /// `.lock`: the advisory lock of the process writing to the run.
    pub fn lock(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// `pipeline.toml`: the pipeline file the run was started with.
    pub fn pipeline(&self) -> PathBuf {
        self.root.join("pipeline.toml")
    }

    /// `data/<set>.parquet`: a prepared train, eval or prompt set.
    pub fn data_set(&self, set: &str) -> PathBuf {
        self.root.join("data").join(format!("{set}.parquet"))
    }

    /// `tokenizer/`: the tokenizer the prepare stage trains for a model pretrained from scratch.
    pub fn tokenizer(&self) -> PathBuf {
        self.root.join("tokenizer")
    }

    /// `models/<name>/`: a checkpoint in Hugging Face layout.
    pub fn model(&self, name: &str) -> PathBuf {
        self.root.join("models").join(name)
    }

    /// `train/<job>.parquet`: the loss curve of a training job.
    pub fn loss_curve(&self, job: &str) -> PathBuf {
        self.root.join("train").join(format!("{job}.parquet"))
    }

    /// `train/<job>.state/`: the resumable state of a training job that saves one, until the
    /// job finishes.
    pub fn train_state(&self, job: &str) -> PathBuf {
        self.root.join("train").join(format!("{job}.state"))
    }

    /// `subspace/<kind>_svd.safetensors`: per-tensor SVD of the alignment update.
    pub fn svd(&self, kind: &str) -> PathBuf {
        self.root.join("subspace").join(format!("{kind}_svd.safetensors"))
    }

    /// `projection/diagnostics.parquet`: projection diagnostics summed over tensors.
    pub fn projection_diagnostics(&self) -> PathBuf {
        self.root.join("projection").join("diagnostics.parquet")
    }

    /// `projection/per_tensor.parquet`: projection diagnostics per tensor.
    pub fn projection_per_tensor(&self) -> PathBuf {
        self.root.join("projection").join("per_tensor.parquet")
    }

    /// `eval/responses.parquet`: one row per evaluated item and checkpoint.
    pub fn eval_responses(&self) -> PathBuf {
        self.root.join("eval").join("responses.parquet")
    }

    /// `eval/summary.parquet`: one row per checkpoint, benchmark and metric.
    pub fn eval_summary(&self) -> PathBuf {
        self.root.join("eval").join("summary.parquet")
    }

    /// `mso/update_spaces.parquet`: overlap of useful and harmful weight updates.
    pub fn update_mso(&self) -> PathBuf {
        self.root.join("mso").join("update_spaces.parquet")
    }

    /// `activations/<model>.parquet`: captured last-token hidden states.
    pub fn activations(&self, model: &str) -> PathBuf {
        self.root.join("activations").join(format!("{model}.parquet"))
    }

    /// `mso/activation_spaces.parquet`: overlap of prompt sets in activation space.
    pub fn activation_mso(&self) -> PathBuf {
        self.root.join("mso").join("activation_spaces.parquet")
    }

    /// `report/`: index.html, report.md and figures.
    pub fn report_dir(&self) -> PathBuf {
        self.root.join("report")
    }

    /// `replicates/<r>/`: replicate r's own artifacts (its fine-tunes, their loss curves and
    /// activations, its random bases), laid out as a run directory of their own.
    pub fn replicate(&self, replicate: u32) -> RunDir {
        RunDir::new(&self.root.join("replicates").join(replicate.to_string()))
    }

    /// `path` relative to the run root, for recording in the manifest; paths outside the run
    /// are kept whole.
    pub fn relative(&self, path: &Path) -> PathBuf {
        path.strip_prefix(&self.root).unwrap_or(path).to_path_buf()
    }
}

/// Checks that `name` is one plain path component — not empty, not `.` or `..`, without a
/// slash, backslash or NUL — so that joining it to a directory stays inside that directory. Names that
/// come from files or pipelines (shard files, jobs, models, runs) pass through it.
pub fn check_path_component(name: &str) -> Result<()> {
    let plain = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    ensure!(plain, "{name:?} is not a plain file name (expected no `/`, `\\`, `..`, and not empty)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_documented_run_directory() {
        let run = RunDir::new(Path::new("runs/tiny"));
        let check = |path: PathBuf, expected: &str| assert_eq!(run.relative(&path), Path::new(expected));
        check(run.manifest(), "manifest.json");
        check(run.data_set("harmful_eval"), "data/harmful_eval.parquet");
        check(run.model("aligned"), "models/aligned");
        check(run.tokenizer(), "tokenizer");
        check(run.loss_curve("useful"), "train/useful.parquet");
        check(run.svd("topk"), "subspace/topk_svd.safetensors");
        check(run.projection_diagnostics(), "projection/diagnostics.parquet");
        check(run.projection_per_tensor(), "projection/per_tensor.parquet");
        check(run.eval_responses(), "eval/responses.parquet");
        check(run.eval_summary(), "eval/summary.parquet");
        check(run.update_mso(), "mso/update_spaces.parquet");
        check(run.activations("base"), "activations/base.parquet");
        check(run.activation_mso(), "mso/activation_spaces.parquet");
        check(run.report_dir(), "report");
        check(run.lock(), ".lock");
    }

    #[test]
    fn only_plain_names_are_path_components() {
        for good in ["model-00001-of-00002.safetensors", "useful", "a..b", ".hidden"] {
            assert!(check_path_component(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "../x", "/x", "a/b", "a\\b", "x\0"] {
            let err = check_path_component(bad).unwrap_err().to_string();
            assert!(err.contains("is not a plain file name"), "{bad}: {err}");
        }
    }
}
