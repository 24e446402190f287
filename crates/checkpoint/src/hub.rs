//! The Hugging Face hub as huggingface_hub reaches it: settings from the same environment
//! variables, files fetched over the hub's file-resolution protocol into the same cache layout
//! (hf-hub's [`Cache`]: `refs/<revision>` naming a commit, `snapshots/<commit>/<file>` linking
//! to `blobs/<etag>`), so Python and entangle share one cache. The HTTP client is
//! entangle-http's, with its proxy set explicitly (`NO_PROXY` honoured).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hf_hub::{Cache, Repo, RepoType};
use serde::Deserialize;

/// How to reach the hub, normally read from the environment by [`HubSettings::from_env`].
#[derive(Debug, Clone, Default)]
pub struct HubSettings {
    /// The hub cache directory (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, default
    /// `~/.cache/huggingface/hub`).
    pub cache_dir: PathBuf,
    /// Access token for gated repositories (`HF_TOKEN`, else the token file: `HF_TOKEN_PATH`,
    /// default `$HF_HOME/token`).
    pub token: Option<String>,
    /// Never touch the network (`HF_HUB_OFFLINE=1`): only cached files resolve.
    pub offline: bool,
    /// The hub's address, for a mirror (`HF_ENDPOINT`); the public hub when unset.
    pub endpoint: Option<String>,
    /// The proxy variables the client follows.
    pub proxies: entangle_http::Proxies,
}

/// How long a hub request may wait for a connection, and then for each read.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
const READ_TIMEOUT: Duration = Duration::from_secs(120);

impl HubSettings {
    /// Settings from `HF_HUB_CACHE`, `HF_HOME`, `HF_TOKEN`, `HF_TOKEN_PATH`, `HF_HUB_OFFLINE` and
    /// `HF_ENDPOINT`, as huggingface_hub reads them, and the proxy variables.
    pub fn from_env() -> HubSettings {
        HubSettings::from_vars(|name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }

    /// Settings from the environment variables `var` gives (unset or empty: `None`).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> HubSettings {
        let home = var("HF_HOME").map(PathBuf::from);
        let cache_dir = match (var("HF_HUB_CACHE"), &home) {
            (Some(dir), _) => PathBuf::from(dir),
            (None, Some(home)) => home.join("hub"),
            (None, None) => Cache::default().path().clone(),
        };
        let home = home.or_else(|| cache_dir.parent().map(Path::to_path_buf)).unwrap_or_default();
        let token_file = var("HF_TOKEN_PATH").map_or_else(|| home.join("token"), PathBuf::from);
        let token = var("HF_TOKEN").or_else(|| {
            std::fs::read_to_string(token_file).ok().map(|text| text.trim().to_owned()).filter(|token| !token.is_empty())
        });
        let offline = var("HF_HUB_OFFLINE").is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"));
        let proxies = entangle_http::Proxies::from_vars(&var);
        HubSettings { cache_dir, token, offline, endpoint: var("HF_ENDPOINT"), proxies }
    }

    /// Where the hub is reached, for requests and messages.
    pub(crate) fn endpoint(&self) -> &str {
        self.endpoint.as_deref().unwrap_or("https://huggingface.co").trim_end_matches('/')
    }

    /// The local path of `filename` in the hub repository `repo_id` (`org/name`, optionally
    /// `@revision`) of type `repo_type`: the cached copy, else downloaded unless offline.
    pub fn file(&self, repo_id: &str, repo_type: RepoType, filename: &str) -> Result<PathBuf> {
        let repo = HubRepo::parse(repo_id, repo_type);
        if let Some(cached) = self.cached(&repo, filename) {
            return Ok(cached);
        }
        if self.offline {
            bail!(
                "{filename} of {} at revision {} is not in the Hugging Face cache at {} and HF_HUB_OFFLINE is set",
                repo.id,
                repo.revision,
                self.cache_dir.display()
            );
        }
        self.download(&repo, filename).with_context(|| {
            format!(
                "downloading {filename} of {} at revision {} from {} into {} (a gated model needs HF_TOKEN; for a mirror \
                 set HF_ENDPOINT; to use only the cache, HF_HUB_OFFLINE=1)",
                repo.id,
                repo.revision,
                self.endpoint(),
                self.cache_dir.display()
            )
        })
    }

    /// The cached copy of `filename` at the repository's revision, if the cache holds it.
    fn cached(&self, repo: &HubRepo, filename: &str) -> Option<PathBuf> {
        Cache::new(self.cache_dir.clone()).repo(repo.cache_key()).get(filename)
    }

    /// Whether the cache holds `filename` of the model repository `repo_id`.
    pub(crate) fn is_cached(&self, repo_id: &str, filename: &str) -> bool {
        self.cached(&HubRepo::parse(repo_id, RepoType::Model), filename).is_some()
    }

    /// The file names in the model repository at its revision, or `None` offline (the cache
    /// cannot list them).
    pub(crate) fn list(&self, repo_id: &str) -> Result<Option<BTreeSet<String>>> {
        #[derive(Deserialize)]
        struct Sibling {
            rfilename: String,
        }
        #[derive(Deserialize)]
        struct Info {
            siblings: Vec<Sibling>,
        }
        if self.offline {
            return Ok(None);
        }
        let repo = HubRepo::parse(repo_id, RepoType::Model);
        let url = format!("{}/api/{}", self.endpoint(), repo.api_path());
        let listing = || -> Result<Info> {
            let response = self.request(&self.agent(5)?, &url).call().map_err(http_error)?;
            response.into_json().context("the hub's repository listing is not the JSON expected")
        };
        let info = listing().with_context(|| format!("listing the files of {repo_id} on the Hugging Face hub at {}", self.endpoint()))?;
        Ok(Some(info.siblings.into_iter().map(|s| s.rfilename).collect()))
    }

    /// An agent for the hub that follows up to `redirects` redirects, through the proxy for the
    /// endpoint; the token goes only to the endpoint's host, not to a CDN it redirects to.
    fn agent(&self, redirects: u32) -> Result<ureq::Agent> {
        Ok(self
            .proxies
            .agent(self.endpoint())?
            .redirects(redirects)
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .timeout_connect(CONNECT_TIMEOUT)
            .timeout_read(READ_TIMEOUT)
            .user_agent(concat!("entangle/", env!("CARGO_PKG_VERSION")))
            .build())
    }

    /// A GET of `url` with the token, if any.
    fn request(&self, agent: &ureq::Agent, url: &str) -> ureq::Request {
        let request = agent.get(url);
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// Downloads `filename` into the cache as hf-hub and huggingface_hub do: the blob under its
    /// ETag (written to a temporary name, then renamed), a snapshot link for the commit, and the
    /// revision's ref.
    fn download(&self, repo: &HubRepo, filename: &str) -> Result<PathBuf> {
        let url = format!("{}/{}/resolve/{}/{filename}", self.endpoint(), repo.url_path(), repo.url_revision());
        let meta = self.metadata(&url)?;
        let folder = self.cache_dir.join(repo.cache_key().folder_name());
        let blob = folder.join("blobs").join(&meta.etag);
        if !blob.exists() {
            self.fetch_blob(&url, &blob, meta.size, filename)?;
        }
        let pointer = folder.join("snapshots").join(&meta.commit).join(filename);
        if !pointer.exists() {
            link(&blob, &pointer)?;
        }
        Cache::new(self.cache_dir.clone())
            .repo(repo.cache_key())
            .create_ref(&meta.commit)
            .with_context(|| format!("writing the ref {} under {}", repo.revision, folder.display()))?;
        Ok(pointer)
    }

    /// The commit, ETag and size the hub gives for a resolve URL: from a one-byte GET that
    /// follows only redirects within the hub (a relative `Location`), as huggingface_hub does.
    fn metadata(&self, url: &str) -> Result<FileMeta> {
        let agent = self.agent(0)?;
        let mut current = url.to_owned();
        for _ in 0..5 {
            let response = self.request(&agent, &current).set("Range", "bytes=0-0").call().map_err(http_error)?;
            let relative = response.header("Location").filter(|location| location.starts_with('/'));
            if (300..400).contains(&response.status()) {
                if let Some(location) = relative {
                    current = format!("{}{location}", origin(&current));
                    continue;
                }
            }
            return FileMeta::from_headers(&response);
        }
        bail!("{url}: more than 5 redirects")
    }

    /// Writes the file at `url` to `blob` through a temporary name, with a progress bar.
    fn fetch_blob(&self, url: &str, blob: &Path, size: Option<u64>, filename: &str) -> Result<()> {
        let dir = blob.parent().context("a blob path has a parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let response = self.request(&self.agent(5)?, url).call().map_err(http_error)?;
        let partial = blob.with_extension("incomplete");
        let mut file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
        let bar = entangle_artifacts::progress_bar(size.unwrap_or(0), "bytes");
        bar.set_message(filename.to_owned());
        let copied = std::io::copy(&mut bar.wrap_read(response.into_reader()), &mut file)
            .and_then(|_| file.flush())
            .with_context(|| format!("downloading {url} into {}", partial.display()));
        bar.finish_and_clear();
        if let Err(err) = copied {
            std::fs::remove_file(&partial).ok();
            return Err(err);
        }
        std::fs::rename(&partial, blob).with_context(|| format!("renaming {} to {}", partial.display(), blob.display()))
    }
}

/// `scheme://authority` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    url[after_scheme..].find('/').map_or(url, |slash| &url[..after_scheme + slash])
}

/// A hub error as one line: the status, the hub's own message if it sent one, and the URL.
fn http_error(err: ureq::Error) -> anyhow::Error {
    match err {
        ureq::Error::Status(code, response) => {
            let url = response.get_url().to_owned();
            let reason = response.header("X-Error-Message").map(str::to_owned).unwrap_or_else(|| response.status_text().to_owned());
            anyhow::anyhow!("HTTP {code} ({reason}) from {url}")
        }
        ureq::Error::Transport(transport) => anyhow::anyhow!("{transport}"),
    }
}

/// What the hub says of one file.
struct FileMeta {
    commit: String,
    etag: String,
    size: Option<u64>,
}

impl FileMeta {
    /// From the commit header, the (linked, for large files) ETag and size.
    fn from_headers(response: &ureq::Response) -> Result<FileMeta> {
        let url = response.get_url();
        let commit = response.header("X-Repo-Commit").with_context(|| format!("{url}: no X-Repo-Commit header"))?;
        let etag = response
            .header("X-Linked-Etag")
            .or_else(|| response.header("ETag"))
            .with_context(|| format!("{url}: no ETag header"))?
            .trim_start_matches("W/")
            .replace('"', "");
        entangle_artifacts::check_path_component(&etag).with_context(|| format!("{url}: the ETag"))?;
        entangle_artifacts::check_path_component(commit).with_context(|| format!("{url}: the commit"))?;
        let total = response.header("Content-Range").and_then(|range| range.rsplit('/').next()).and_then(|n| n.parse().ok());
        let size = response.header("X-Linked-Size").and_then(|n| n.parse().ok()).or(total);
        Ok(FileMeta { commit: commit.to_owned(), etag, size })
    }
}

/// Links `pointer` to `blob` with a relative symbolic link, as the hub cache does (a copy where
/// links are not available).
fn link(blob: &Path, pointer: &Path) -> Result<()> {
    let dir = pointer.parent().context("a snapshot path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    #[cfg(unix)]
    {
        let snapshots = dir.ancestors().find(|a| a.file_name().is_some_and(|n| n == "snapshots"));
        let depth = snapshots.map_or(0, |s| dir.strip_prefix(s).map_or(0, |rel| rel.components().count()));
        let mut target = PathBuf::from("..");
        for _ in 0..depth {
            target.push("..");
        }
        target.push("blobs");
        target.push(blob.file_name().context("a blob has a name")?);
        std::os::unix::fs::symlink(&target, pointer).with_context(|| format!("linking {}", pointer.display()))
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(blob, pointer).map(|_| ()).with_context(|| format!("copying {} to {}", blob.display(), pointer.display()))
    }
}

/// A hub repository at a revision.
struct HubRepo {
    id: String,
    revision: String,
    repo_type: RepoType,
}

impl HubRepo {
    /// `org/name` or `org/name@revision` (the default branch, `main`, if none).
    fn parse(repo_id: &str, repo_type: RepoType) -> HubRepo {
        let (id, revision) = repo_id.split_once('@').unwrap_or((repo_id, "main"));
        HubRepo { id: id.to_owned(), revision: revision.to_owned(), repo_type }
    }

    /// hf-hub's name for it, which knows the cache layout.
    fn cache_key(&self) -> Repo {
        Repo::with_revision(self.id.clone(), self.repo_type, self.revision.clone())
    }

    /// The repository's path in file URLs: `org/name`, `datasets/org/name`.
    fn url_path(&self) -> String {
        match self.repo_type {
            RepoType::Model => self.id.clone(),
            RepoType::Dataset => format!("datasets/{}", self.id),
            RepoType::Space => format!("spaces/{}", self.id),
        }
    }

    /// The revision in a URL path (a branch name may hold `/`).
    fn url_revision(&self) -> String {
        self.revision.replace('/', "%2F")
    }

    /// The repository's path in the API: `models/org/name/revision/<rev>`.
    fn api_path(&self) -> String {
        let kind = match self.repo_type {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        };
        format!("{kind}/{}/revision/{}", self.id, self.url_revision())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment variables `pairs` set.
    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn the_environment_is_read_as_huggingface_hub_reads_it() {
        let home = HubSettings::from_vars(vars(&[("HF_HOME", "/h"), ("HF_TOKEN", "t"), ("HF_HUB_OFFLINE", "True")]));
        assert_eq!((home.cache_dir, home.token.as_deref(), home.offline, home.endpoint), (PathBuf::from("/h/hub"), Some("t"), true, None));
        let cache = HubSettings::from_vars(vars(&[("HF_HOME", "/h"), ("HF_HUB_CACHE", "/c"), ("HF_ENDPOINT", "https://mirror.example")]));
        assert_eq!((cache.cache_dir, cache.offline), (PathBuf::from("/c"), false));
        assert_eq!(cache.endpoint.as_deref(), Some("https://mirror.example"));
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("token"), "hf_saved\n").unwrap();
        let home_var = home.path().display().to_string();
        let saved = HubSettings::from_vars(vars(&[("HF_HOME", &home_var), ("HF_HUB_CACHE", "/c")]));
        assert_eq!(saved.token.as_deref(), Some("hf_saved"), "the token file is $HF_HOME/token, wherever the cache is");
        let proxied = HubSettings::from_vars(vars(&[("https_proxy", "http://proxy:3128"), ("NO_PROXY", "mirror.example")]));
        assert!(proxied.proxies.proxy_for("https://huggingface.co").unwrap().is_some());
        assert!(proxied.proxies.proxy_for("https://mirror.example/api").unwrap().is_none());
    }

    fn settings(endpoint: &str, cache: &Path, pairs: &[(&str, &str)]) -> HubSettings {
        let proxies = entangle_http::Proxies::from_vars(vars(pairs));
        HubSettings { cache_dir: cache.to_path_buf(), endpoint: Some(endpoint.to_owned()), proxies, ..HubSettings::default() }
    }

    /// The hub is at an address nothing listens on; the proxy (the local hub server, which
    /// forwards to itself) reaches it. With `NO_PROXY` naming the hub's host the client goes
    /// direct, and fails with one line naming the hub.
    #[test]
    fn requests_go_through_the_proxy_unless_no_proxy_names_the_hub() {
        let hub = crate::test_hub::serve(vec![crate::test_hub::HubRepo {
            id: "org/tiny",
            commit: "c0ffee",
            files: crate::test_hub::model_files(),
            gated: false,
        }]);
        let proxy = hub.endpoint.as_str();
        let cache = tempfile::tempdir().unwrap();
        let unreachable = "http://127.0.0.1:9";
        let proxied = settings(unreachable, cache.path(), &[("HTTP_PROXY", proxy)]);
        let config = proxied.file("org/tiny", RepoType::Model, "config.json").unwrap();
        assert_eq!(std::fs::read(config).unwrap(), br#"{"model_type": "llama"}"#);
        let listed = proxied.list("org/tiny").unwrap().unwrap();
        assert!(listed.contains("model.safetensors"), "{listed:?}");
        let requests = hub.requests.lock().unwrap().clone();
        assert!(requests.iter().all(|target| target.starts_with(unreachable)), "every request went through the proxy: {requests:?}");
        assert!(requests.contains(&format!("{unreachable}/api/models/org/tiny/revision/main")), "{requests:?}");

        let direct = settings(unreachable, cache.path(), &[("HTTP_PROXY", proxy), ("NO_PROXY", "127.0.0.1")]);
        let err = format!("{:#}", direct.file("org/tiny", RepoType::Model, "tokenizer.json").unwrap_err());
        assert!(err.contains("downloading tokenizer.json of org/tiny at revision main from http://127.0.0.1:9"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        assert_eq!(hub.requests.lock().unwrap().len(), requests.len(), "NO_PROXY: the proxy saw nothing more");
    }

    /// A file in a folder of the repository links to its blob from as deep in the snapshot, and
    /// a second revision at the same commit shares the blob.
    #[test]
    fn files_in_folders_link_to_their_blobs_and_refs_name_the_commit() {
        let files = vec![("data/train.parquet", b"rows".to_vec())];
        let hub = crate::test_hub::serve(vec![crate::test_hub::HubRepo { id: "org/set", commit: "5eed", files, gated: false }]);
        let cache = tempfile::tempdir().unwrap();
        let hub_settings = settings(&hub.endpoint, cache.path(), &[]);
        let path = hub_settings.file("org/set@v1.0", RepoType::Dataset, "data/train.parquet").unwrap();
        let repo = cache.path().join("datasets--org--set");
        assert_eq!(path, repo.join("snapshots/5eed/data/train.parquet"));
        assert_eq!(std::fs::read(&path).unwrap(), b"rows");
        assert_eq!(std::fs::read_to_string(repo.join("refs/v1.0")).unwrap(), "5eed");
        assert!(hub.requests.lock().unwrap().iter().any(|target| target == "/datasets/org/set/resolve/v1.0/data/train.parquet"));
        assert!(std::fs::read_dir(repo.join("blobs")).unwrap().flatten().all(|blob| blob.path().extension().is_none_or(|e| e != "incomplete")));
    }

    #[test]
    fn the_origin_of_a_url_is_its_scheme_and_authority() {
        assert_eq!(origin("https://huggingface.co/org/m/resolve/main/config.json"), "https://huggingface.co");
        assert_eq!(origin("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    }
}
