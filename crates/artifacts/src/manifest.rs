//! The stage manifest, `manifest.json`: what each finished stage was run with and produced,
//! so that a re-run skips a stage exactly when its configuration and inputs are unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{write_atomic, RunDir};

/// All finished stages of a run, keyed by stage name (e.g. `train:useful`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stages: BTreeMap<String, StageEntry>,
}

/// One finished stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageEntry {
    /// [`config_hash`] of the configuration the stage ran with.
    pub config_hash: String,
    /// The files the stage read, with their fingerprints at the time.
    pub inputs: Vec<FileStamp>,
    /// The artifacts the stage wrote, relative to the run directory.
    pub outputs: Vec<String>,
    /// Wall-clock duration of the stage.
    pub seconds: f64,
    /// RFC 3339 time at which the stage finished.
    pub finished_at: String,
    /// The Hugging Face hub repositories among the inputs, each at the commit the stage read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hub: Vec<HubRevision>,
}

/// A hub repository a stage read, and the commit it read it at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HubRevision {
    /// `org/name`.
    pub repository: String,
    /// `model` or `dataset`.
    pub kind: String,
    /// The branch or tag the cache's refs point at this commit (`main`), or the commit itself
    /// where no ref names it (a revision pinned by commit).
    pub revision: String,
    /// The commit hash.
    pub commit: String,
}

impl HubRevision {
    /// The hub repository `path` lies in, when it is inside a hub cache's snapshot
    /// (`<cache>/models--org--name/snapshots/<commit>/…`, as huggingface_hub and hf-hub lay it
    /// out); the revision is read from the cache's refs.
    pub fn of_cached_path(path: &Path) -> Option<HubRevision> {
        let parts: Vec<&str> = path.iter().filter_map(|part| part.to_str()).collect();
        let at = parts.windows(3).position(|window| window[1] == "snapshots" && !window[2].is_empty())?;
        let (folder, commit) = (parts[at], parts[at + 2]);
        let (rest, kind) = [("models--", "model"), ("datasets--", "dataset")]
            .into_iter()
            .find_map(|(prefix, kind)| folder.strip_prefix(prefix).map(|rest| (rest, kind)))?;
        let repo_dir: std::path::PathBuf = parts[..=at].iter().collect();
        Some(HubRevision {
            repository: rest.replacen("--", "/", 1),
            kind: kind.to_owned(),
            revision: ref_naming(&repo_dir.join("refs"), commit).unwrap_or_else(|| commit.to_owned()),
            commit: commit.to_owned(),
        })
    }
}

/// The ref under `refs` (a branch or tag file holding a commit hash) that names `commit`,
/// preferring `main`.
fn ref_naming(refs: &Path, commit: &str) -> Option<String> {
    let mut names: Vec<String> = walk_files(refs)
        .into_iter()
        .filter(|file| std::fs::read_to_string(file).is_ok_and(|text| text.trim() == commit))
        .filter_map(|file| file.strip_prefix(refs).ok().map(|name| name.to_string_lossy().into_owned()))
        .collect();
    names.sort_by_key(|name| (name != "main", name.clone()));
    names.into_iter().next()
}

/// Every file under `dir`, recursively (a ref name may contain `/`); none if it is unreadable.
fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() { walk_files(&path) } else { vec![path] }
        })
        .collect()
}

/// A file or directory and its [`fingerprint`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    pub path: String,
    pub fingerprint: String,
}

impl Manifest {
    /// Reads the run's manifest; a run without one has finished no stage.
    pub fn load(run: &RunDir) -> Result<Manifest> {
        let path = run.manifest();
        if !path.exists() {
            return Ok(Manifest::default());
        }
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid stage manifest", path.display()))
    }

    /// Records `entry` for `stage` in the run's manifest, replacing the file atomically.
    pub fn record(run: &RunDir, stage: &str, entry: StageEntry) -> Result<()> {
        let mut manifest = Manifest::load(run)?;
        manifest.stages.insert(stage.to_owned(), entry);
        let json = serde_json::to_vec_pretty(&manifest).context("serialising the manifest")?;
        write_atomic(&run.manifest(), |w| Ok(w.write_all(&json)?))
    }

    /// Removes `stage` from the run's manifest, so that it runs again.
    pub fn forget(run: &RunDir, stage: &str) -> Result<()> {
        let mut manifest = Manifest::load(run)?;
        if manifest.stages.remove(stage).is_some() {
            let json = serde_json::to_vec_pretty(&manifest).context("serialising the manifest")?;
            write_atomic(&run.manifest(), |w| Ok(w.write_all(&json)?))?;
        }
        Ok(())
    }

    /// Whether `stage` finished with this configuration, these inputs unchanged, and all of its
    /// outputs still present.
    pub fn is_fresh(&self, run: &RunDir, stage: &str, config_hash: &str, inputs: &[FileStamp]) -> bool {
        let Some(entry) = self.stages.get(stage) else {
            return false;
        };
        entry.config_hash == config_hash
            && entry.inputs == inputs
            && entry.outputs.iter().all(|output| run.root.join(output).exists())
    }
}

impl StageEntry {
    /// An entry for a stage that finished now after `seconds`.
    pub fn finished_now(config_hash: String, inputs: Vec<FileStamp>, outputs: Vec<String>, seconds: f64) -> StageEntry {
        let finished_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let hub: BTreeSet<HubRevision> =
            inputs.iter().filter_map(|input| HubRevision::of_cached_path(Path::new(&input.path))).collect();
        StageEntry { config_hash, inputs, outputs, seconds, finished_at, hub: hub.into_iter().collect() }
    }
}

/// Stamps each input path, as the stage opened it (absolute or relative to the working
/// directory), with its [`fingerprint`]. Paths inside the run are recorded relative to it,
/// others absolute, so a run directory can move without every stage rerunning.
pub fn stamp_inputs(run: &RunDir, paths: &[&Path]) -> Result<Vec<FileStamp>> {
    paths
        .iter()
        .map(|path| {
            let recorded = match path.strip_prefix(&run.root) {
                Ok(inside) => inside.to_path_buf(),
                Err(_) => std::path::absolute(path).with_context(|| format!("resolving {}", path.display()))?,
            };
            Ok(FileStamp { path: recorded.display().to_string(), fingerprint: fingerprint(path)? })
        })
        .collect()
}

/// A hex SHA-256 of a configuration's canonical JSON form. serde_json writes struct fields in
/// declaration order and maps in key order (BTreeMap), so equal configurations hash equally.
pub fn config_hash(config: &impl Serialize) -> Result<String> {
    let json = serde_json::to_vec(config).context("serialising the configuration to hash it")?;
    Ok(hex(&Sha256::digest(&json)))
}

/// A cheap identity of a file or directory tree: sizes and modification times of every file,
/// hashed. Model checkpoints are gigabytes, so contents are not read; any rewrite through
/// [`write_atomic`] creates a new file and changes the fingerprint.
pub fn fingerprint(path: &Path) -> Result<String> {
    let mut hasher = Sha256::new();
    hash_tree(path, Path::new(""), &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

fn hash_tree(path: &Path, relative: &Path, hasher: &mut Sha256) -> Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.is_dir() {
        let mut children: Vec<_> = std::fs::read_dir(path)
            .with_context(|| format!("listing {}", path.display()))?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("listing {}", path.display()))?;
        children.sort();
        for child in children {
            hash_tree(&path.join(&child), &relative.join(&child), hasher)?;
        }
        return Ok(());
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    hasher.update(relative.to_string_lossy().as_bytes());
    hasher.update(meta.len().to_le_bytes());
    hasher.update(modified.to_le_bytes());
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(hash: &str, inputs: Vec<FileStamp>, outputs: Vec<String>) -> StageEntry {
        StageEntry::finished_now(hash.to_owned(), inputs, outputs, 1.5)
    }

    /// A stage that read a hub model (pinned by branch) and a hub dataset (pinned by a commit
    /// no ref names) records both with their commits; files outside a hub cache record nothing.
    #[test]
    fn hub_inputs_are_recorded_with_their_revision_and_commit() {
        let cache = tempfile::tempdir().unwrap();
        let model = cache.path().join("models--meta-llama--Llama-3.2-1B");
        std::fs::create_dir_all(model.join("refs")).unwrap();
        std::fs::write(model.join("refs/main"), "4e20de36\n").unwrap();
        let snapshot = model.join("snapshots/4e20de36");
        let data = cache.path().join("datasets--walledai--AdvBench/snapshots/9a1b/data/train-00000-of-00001.parquet");
        for file in [snapshot.join("config.json"), data.clone(), cache.path().join("local.parquet")] {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, b"x").unwrap();
        }
        let run = RunDir::new(&cache.path().join("run"));
        let local = cache.path().join("local.parquet");
        let config = snapshot.join("config.json");
        let inputs = stamp_inputs(&run, &[&snapshot, &data, &local, &config]).unwrap();
        let recorded = |repository: &str, kind: &str, revision: &str, commit: &str| HubRevision {
            repository: repository.into(),
            kind: kind.into(),
            revision: revision.into(),
            commit: commit.into(),
        };
        assert_eq!(entry("h", inputs, Vec::new()).hub, [
            recorded("meta-llama/Llama-3.2-1B", "model", "main", "4e20de36"),
            recorded("walledai/AdvBench", "dataset", "9a1b", "9a1b"),
        ]);
    }

    #[test]
    fn a_manifest_from_before_the_hub_record_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let old = r#"{"stages": {"prepare": {"config_hash": "h", "inputs": [], "outputs": [], "seconds": 1.0, "finished_at": "2026-01-01T00:00:00Z"}}}"#;
        std::fs::write(run.manifest(), old).unwrap();
        assert!(Manifest::load(&run).unwrap().stages["prepare"].hub.is_empty());
    }

    #[test]
    fn recorded_stage_is_fresh_until_config_input_or_output_changes() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::write(dir.path().join("in.txt"), b"input").unwrap();
        std::fs::write(dir.path().join("out.txt"), b"output").unwrap();
        let input = dir.path().join("in.txt");
        let inputs = stamp_inputs(&run, &[&input]).unwrap();
        assert_eq!(inputs[0].path, "in.txt");
        Manifest::record(&run, "train:useful", entry("abc", inputs.clone(), vec!["out.txt".into()])).unwrap();

        let manifest = Manifest::load(&run).unwrap();
        assert!(manifest.is_fresh(&run, "train:useful", "abc", &inputs));
        assert!(!manifest.is_fresh(&run, "train:useful", "changed", &inputs));
        assert!(!manifest.is_fresh(&run, "train:harmful", "abc", &inputs));

        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("in.txt"), b"input, edited").unwrap();
        let edited = stamp_inputs(&run, &[&input]).unwrap();
        assert!(!manifest.is_fresh(&run, "train:useful", "abc", &edited));

        std::fs::remove_file(dir.path().join("out.txt")).unwrap();
        assert!(!manifest.is_fresh(&run, "train:useful", "abc", &inputs));
    }

    #[test]
    fn manifest_round_trips_and_forgets() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(Manifest::load(&run).unwrap(), Manifest::default());
        Manifest::record(&run, "a", entry("1", vec![], vec![])).unwrap();
        Manifest::record(&run, "b", entry("2", vec![], vec![])).unwrap();
        Manifest::forget(&run, "a").unwrap();
        let names: Vec<_> = Manifest::load(&run).unwrap().stages.into_keys().collect();
        assert_eq!(names, vec!["b"]);
    }

    #[test]
    fn corrupt_manifest_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("manifest.json"), b"{not json").unwrap();
        let err = Manifest::load(&RunDir::new(dir.path())).unwrap_err();
        assert!(format!("{err:#}").contains("manifest.json: not a valid stage manifest"), "{err:#}");
    }

    #[test]
    fn config_hash_is_stable_and_sensitive() {
        #[derive(Serialize)]
        struct Config {
            lr: f64,
            steps: u32,
        }
        let a = config_hash(&Config { lr: 1e-5, steps: 10 }).unwrap();
        assert_eq!(a, config_hash(&Config { lr: 1e-5, steps: 10 }).unwrap());
        assert_ne!(a, config_hash(&Config { lr: 1e-5, steps: 11 }).unwrap());
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn fingerprint_covers_directory_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("m")).unwrap();
        std::fs::write(dir.path().join("m/config.json"), b"{}").unwrap();
        let before = fingerprint(&dir.path().join("m")).unwrap();
        std::fs::write(dir.path().join("m/extra.json"), b"{}").unwrap();
        assert_ne!(before, fingerprint(&dir.path().join("m")).unwrap());
        assert!(format!("{:#}", fingerprint(&dir.path().join("none")).unwrap_err()).contains("none"));
    }
}
