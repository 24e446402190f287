//! Finding a model directory: a local path, or a Hugging Face hub id fetched into the standard
//! cache (the same cache transformers uses, so models are shared with Python).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hf_hub::RepoType;
use serde::Deserialize;

use crate::hub::HubSettings;
use crate::write::TOKENIZER_FILES;

/// Resolves a model reference with settings from the environment; see [`resolve_with`].
pub fn resolve(reference: &str) -> Result<PathBuf> {
    resolve_with(reference, &HubSettings::from_env())
}

/// The directory of the model `reference`: an existing local directory as is, otherwise a hub
/// id (`org/name` or `org/name@revision`) whose config, tokenizer and safetensors weights are
/// fetched into the hub cache; the cache's snapshot directory is returned.
pub fn resolve_with(reference: &str, hub: &HubSettings) -> Result<PathBuf> {
    let path = Path::new(reference);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    if !looks_like_hub_id(reference) {
        bail!("model directory {reference} does not exist");
    }
    let cached = hub.is_cached(reference, "config.json");
    let config = hub.file(reference, RepoType::Model, "config.json")?;
    let listing = match hub.list(reference) {
        Ok(listing) => listing,
        // As huggingface_hub does: an unreachable hub falls back to what the cache holds.
        Err(err) if cached => {
            tracing::warn!("{err:#}; using the cached copy of {reference} in {}", hub.cache_dir.display());
            return resolve_with(reference, &HubSettings { offline: true, ..hub.clone() });
        }
        Err(err) => return Err(err),
    };
    let present = |name: &str| listing.as_ref().is_none_or(|files| files.contains(name));
    for name in TOKENIZER_FILES.iter().copied().filter(|name| present(name)) {
        // Offline, files that were never cached are simply not there.
        if let Err(err) = hub.file(reference, RepoType::Model, name) {
            if !hub.offline {
                return Err(err);
            }
        }
    }
    fetch_weights(reference, hub, &present)?;
    Ok(config.parent().context("cached config.json has no parent directory")?.to_path_buf())
}

fn fetch_weights(reference: &str, hub: &HubSettings, present: &dyn Fn(&str) -> bool) -> Result<()> {
    #[derive(Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    if present("model.safetensors.index.json") {
        if let Ok(index_path) = hub.file(reference, RepoType::Model, "model.safetensors.index.json") {
            let text = std::fs::read_to_string(&index_path)
                .with_context(|| format!("reading {}", index_path.display()))?;
            let index: Index = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a safetensors shard index", index_path.display()))?;
            let shards: BTreeSet<String> = index.weight_map.into_values().collect();
            for shard in shards {
                entangle_artifacts::check_path_component(&shard)
                    .with_context(|| format!("{}: a shard of the weight map", index_path.display()))?;
                hub.file(reference, RepoType::Model, &shard)?;
            }
            return Ok(());
        }
    }
    hub.file(reference, RepoType::Model, "model.safetensors")
        .with_context(|| format!("{reference} has no safetensors weights"))?;
    Ok(())
}

/// `org/name` or `org/name@revision`: exactly one slash, no leading dot or slash.
fn looks_like_hub_id(reference: &str) -> bool {
    let id = reference.split('@').next().unwrap_or(reference);
    id.matches('/').count() == 1 && !id.starts_with(['.', '/']) && !id.ends_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays out `org/name` in a hub cache as hf-hub and transformers do: a ref file naming a
    /// commit and a snapshot directory for it.
    fn cached_model(cache: &Path, files: &[&str]) -> PathBuf {
        let repo = cache.join("models--org--tiny");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
        let snapshot = repo.join("snapshots/0123abcd");
        std::fs::create_dir_all(&snapshot).unwrap();
        for file in files {
            std::fs::write(snapshot.join(file), b"{}").unwrap();
        }
        snapshot
    }

    fn offline(cache: &Path) -> HubSettings {
        HubSettings { cache_dir: cache.to_path_buf(), offline: true, ..HubSettings::default() }
    }

    /// Settings whose hub is an address nothing listens on: every request fails at once.
    fn unreachable(cache: &Path) -> HubSettings {
        HubSettings { cache_dir: cache.to_path_buf(), endpoint: Some("http://127.0.0.1:9".to_owned()), ..HubSettings::default() }
    }

    #[test]
    fn an_unreachable_hub_falls_back_to_the_cache_and_says_what_to_set_without_one() {
        let cache = tempfile::tempdir().unwrap();
        let snapshot = cached_model(cache.path(), &["config.json", "model.safetensors", "tokenizer.json"]);
        assert_eq!(resolve_with("org/tiny", &unreachable(cache.path())).unwrap(), snapshot);
        let err = format!("{:#}", resolve_with("org/absent", &unreachable(cache.path())).unwrap_err());
        assert!(err.contains("downloading config.json of org/absent at revision main from http://127.0.0.1:9"), "{err}");
        assert!(err.contains("HF_ENDPOINT") && err.contains("HF_HUB_OFFLINE=1"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    fn through(hub: &crate::test_hub::Hub, cache: &Path) -> HubSettings {
        HubSettings { cache_dir: cache.to_path_buf(), endpoint: Some(hub.endpoint.clone()), ..HubSettings::default() }
    }

    fn repo(id: &'static str, files: Vec<(&'static str, Vec<u8>)>, gated: bool) -> crate::test_hub::HubRepo {
        crate::test_hub::HubRepo { id, commit: "c0ffee", files, gated }
    }

    /// Through a mirror (HF_ENDPOINT) speaking the hub's protocol: the model lands in the cache
    /// at the commit the mirror names, and afterwards resolves from the cache with the mirror
    /// gone.
    #[test]
    fn a_mirror_serves_the_model_into_the_cache_which_then_serves_it_offline() {
        let hub = crate::test_hub::serve(vec![repo("org/tiny", crate::test_hub::model_files(), false)]);
        let cache = tempfile::tempdir().unwrap();
        let dir = resolve_with("org/tiny", &through(&hub, cache.path())).unwrap();
        assert_eq!(dir, cache.path().join("models--org--tiny/snapshots/c0ffee"));
        assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), br#"{"model_type": "llama"}"#);
        assert_eq!(std::fs::read(dir.join("model.safetensors")).unwrap(), b"weights");
        let requests = hub.requests.lock().unwrap().clone();
        assert!(requests.iter().any(|path| path == "/api/models/org/tiny/revision/main"), "{requests:?}");
        assert_eq!(resolve_with("org/tiny", &unreachable(cache.path())).unwrap(), dir, "cached: the hub is not needed");
    }

    /// A stage that reads a hub model stamps the directory resolve gives, and its manifest entry
    /// then names the repository, the branch and the commit.
    #[test]
    fn a_stage_reading_a_hub_model_records_its_commit() {
        let hub = crate::test_hub::serve(vec![repo("org/tiny", crate::test_hub::model_files(), false)]);
        let cache = tempfile::tempdir().unwrap();
        let dir = resolve_with("org/tiny", &through(&hub, cache.path())).unwrap();
        let run = entangle_artifacts::RunDir::new(&cache.path().join("run"));
        let inputs = entangle_artifacts::stamp_inputs(&run, &[&dir]).unwrap();
        let entry = entangle_artifacts::StageEntry::finished_now("h".into(), inputs, Vec::new(), 1.0);
        let recorded = entangle_artifacts::HubRevision {
            repository: "org/tiny".into(),
            kind: "model".into(),
            revision: "main".into(),
            commit: "c0ffee".into(),
        };
        assert_eq!(entry.hub, [recorded]);
    }

    #[test]
    fn a_gated_model_needs_a_token_and_a_missing_file_is_one_error() {
        let hub = crate::test_hub::serve(vec![
            repo("org/gated", crate::test_hub::model_files(), true),
            repo("org/noweights", crate::test_hub::model_files().into_iter().filter(|(f, _)| *f != "model.safetensors").collect(), false),
        ]);
        let cache = tempfile::tempdir().unwrap();
        let err = format!("{:#}", resolve_with("org/gated", &through(&hub, cache.path())).unwrap_err());
        assert!(err.contains("org/gated") && err.contains("401") && err.contains("HF_TOKEN"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let with_token = HubSettings { token: Some("hf_x".to_owned()), ..through(&hub, cache.path()) };
        assert!(resolve_with("org/gated", &with_token).unwrap().join("config.json").exists());
        let err = format!("{:#}", resolve_with("org/noweights", &through(&hub, cache.path())).unwrap_err());
        assert!(err.contains("org/noweights has no safetensors weights"), "{err}");
    }

    #[test]
    fn local_directory_resolves_to_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        assert_eq!(resolve_with(path, &offline(dir.path())).unwrap(), dir.path());
    }

    #[test]
    fn missing_local_path_is_not_sent_to_the_hub() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_with("./no/such/model", &offline(dir.path())).unwrap_err();
        assert_eq!(err.to_string(), "model directory ./no/such/model does not exist");
    }

    #[test]
    fn offline_hub_id_resolves_to_the_cached_snapshot() {
        let cache = tempfile::tempdir().unwrap();
        let snapshot = cached_model(cache.path(), &["config.json", "model.safetensors", "tokenizer.json"]);
        assert_eq!(resolve_with("org/tiny", &offline(cache.path())).unwrap(), snapshot);
    }

    #[test]
    fn offline_and_not_cached_names_id_and_cache() {
        let cache = tempfile::tempdir().unwrap();
        let err = format!("{:#}", resolve_with("org/absent", &offline(cache.path())).unwrap_err());
        assert!(err.contains("org/absent"), "{err}");
        assert!(err.contains(&cache.path().display().to_string()), "{err}");
        assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    }

    #[test]
    fn offline_cache_without_weights_is_an_error() {
        let cache = tempfile::tempdir().unwrap();
        cached_model(cache.path(), &["config.json"]);
        let err = format!("{:#}", resolve_with("org/tiny", &offline(cache.path())).unwrap_err());
        assert!(err.contains("org/tiny has no safetensors weights"), "{err}");
    }

    #[test]
    fn hub_ids_are_told_apart_from_paths() {
        for (reference, is_id) in [
            ("meta-llama/Llama-3.2-1B", true),
            ("Qwen/Qwen2.5-1.5B@main", true),
            ("runs/tiny/models/base", false),
            ("./model", false),
            ("/abs/model", false),
            ("model", false),
        ] {
            assert_eq!(looks_like_hub_id(reference), is_id, "{reference}");
        }
    }
}
