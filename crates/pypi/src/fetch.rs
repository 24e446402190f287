//! Fetching a wheel with `pip download` into the cache, once.
//!
//! The wheel of `name==version` goes to `<cache>/pypi/<name>-<version>/` (the cache is
//! `$ENTANGLE_CACHE_DIR`, else `$XDG_CACHE_HOME/entangle`, else `~/.cache/entangle`, as for
//! `cargo xtask setup`). pip is `$ENTANGLE_PIP` (a command line, e.g. `/opt/venv/bin/pip` or
//! `python3.12 -m pip`), else `python3 -m pip`; `$ENTANGLE_PIP_ARGS` adds arguments to `pip
//! download` (e.g. `--index-url https://mirror/simple`, or `--no-index --find-links DIR` offline).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use tracing::info;

/// How wheels are fetched: the pip command, extra `pip download` arguments, the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipSettings {
    /// Program and leading arguments, e.g. `["python3", "-m", "pip"]`.
    pub command: Vec<String>,
    /// Appended to `pip download`, e.g. `["--no-index", "--find-links", "/wheels"]`.
    pub extra_args: Vec<String>,
    /// The entangle cache; wheels go to `<cache>/pypi/<name>-<version>/`.
    pub cache: PathBuf,
}

impl PipSettings {
    /// `$ENTANGLE_PIP` (else `python3 -m pip`), `$ENTANGLE_PIP_ARGS` and the cache directory,
    /// each split on whitespace.
    pub fn from_env() -> Result<PipSettings> {
        let words = |name: &str| {
            let value = std::env::var(name).unwrap_or_default();
            value.split_whitespace().map(str::to_owned).collect::<Vec<_>>()
        };
        let mut command = words("ENTANGLE_PIP");
        if command.is_empty() {
            command = vec!["python3".into(), "-m".into(), "pip".into()];
        }
        Ok(PipSettings { command, extra_args: words("ENTANGLE_PIP_ARGS"), cache: cache_dir()? })
    }
}

/// The entangle cache: `$ENTANGLE_CACHE_DIR`, else `$XDG_CACHE_HOME/entangle`, else
/// `~/.cache/entangle` (an empty variable counts as unset). Wheels, and xtask's libtorch venv.
pub fn cache_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("ENTANGLE_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("entangle"));
    }
    let home = var("HOME").ok_or_else(|| anyhow!("HOME is not set: set ENTANGLE_CACHE_DIR"))?;
    Ok(PathBuf::from(home).join(".cache").join("entangle"))
}

/// A package name as PyPI compares them (PEP 503): lower case, runs of `-_.` as one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if "-_.".contains(c) {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The wheel of `name==version` in the cache, downloaded with pip unless it is already there.
/// pip writes into a temporary directory in the cache, and the wheel is renamed into place
/// when complete, so an interrupted download never looks finished.
pub fn fetch_wheel(name: &str, version: &str, pip: &PipSettings) -> Result<PathBuf> {
    let root = pip.cache.join("pypi");
    let dir = root.join(format!("{}-{version}", normalize(name)));
    if let Some(wheel) = find_wheel(&dir)? {
        return Ok(wheel);
    }
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&root)
        .with_context(|| format!("creating a directory in {}", root.display()))?;
    let spec = format!("{name}=={version}");
    let (program, leading) = pip.command.split_first().ok_or_else(|| anyhow!("ENTANGLE_PIP: empty pip command"))?;
    info!("fetching {spec} with {}", pip.command.join(" "));
    let mut command = Command::new(program);
    command.args(leading).args(["download", "--no-deps", "--only-binary=:all:", "--ignore-requires-python"]);
    command.args(["--disable-pip-version-check", "--no-input", "--dest"]).arg(tmp.path());
    command.args(&pip.extra_args).arg(&spec);
    let output = command.output().map_err(|e| {
        anyhow!("cannot run {} to fetch {spec}: {e}; set ENTANGLE_PIP to a pip command", pip.command.join(" "))
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
        bail!("pip download {spec} failed ({}): {last}", output.status);
    }
    let downloaded = find_wheel(tmp.path())?
        .ok_or_else(|| anyhow!("pip download {spec} wrote no wheel into {}", tmp.path().display()))?;
    let file_name = downloaded.file_name().map(OsString::from).unwrap_or_default();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let wheel = dir.join(file_name);
    std::fs::rename(&downloaded, &wheel)
        .with_context(|| format!("moving {} to {}", downloaded.display(), wheel.display()))?;
    info!("cached {}", wheel.display());
    Ok(wheel)
}

/// The first `*.whl` in `dir` by name; `None` when there is none or `dir` does not exist.
fn find_wheel(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut wheels = Vec::new();
    for entry in entries {
        let path = entry.with_context(|| format!("listing {}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "whl") && path.is_file() {
            wheels.push(path);
        }
    }
    wheels.sort();
    Ok(wheels.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{test_pip, write_wheel};

    #[test]
    fn pip_fetches_once_into_the_cache() {
        let (index, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let files: &[(&str, &[u8])] = &[("toy/data/a.jsonl", b"{\"x\": 1}\n")];
        write_wheel(index.path(), "toy-data", "1.2.0", "License-Expression: MIT", files).unwrap();
        let pip = test_pip(cache.path(), index.path()).unwrap();
        let wheel = fetch_wheel("Toy_Data", "1.2.0", &pip).unwrap();
        assert_eq!(wheel, cache.path().join("pypi/toy-data-1.2.0/toy_data-1.2.0-py3-none-any.whl"));
        let leftovers: Vec<_> =
            std::fs::read_dir(cache.path().join("pypi")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["toy-data-1.2.0"], "the temporary download directory is gone");
        // A second fetch uses the cache: pip cannot run now, yet the wheel is found.
        let offline = PipSettings { command: vec!["/nonexistent/pip".into()], ..pip };
        assert_eq!(fetch_wheel("toy-data", "1.2.0", &offline).unwrap(), wheel);
    }

    #[test]
    fn pip_failure_is_one_line_with_pips_last_words() {
        let (index, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let pip = test_pip(cache.path(), index.path()).unwrap();
        let err = format!("{:#}", fetch_wheel("toy-data", "9.9.9", &pip).unwrap_err());
        assert!(err.starts_with("pip download toy-data==9.9.9 failed (exit status: 1): "), "{err}");
        assert!(err.contains("toy-data==9.9.9") && !err.contains('\n'), "{err}");
        assert!(!cache.path().join("pypi/toy-data-9.9.9").exists());
        let missing = PipSettings { command: vec!["/nonexistent/pip".into()], ..pip };
        let err = format!("{:#}", fetch_wheel("toy-data", "9.9.9", &missing).unwrap_err());
        assert!(err.starts_with("cannot run /nonexistent/pip to fetch toy-data==9.9.9: "), "{err}");
        assert!(err.ends_with("; set ENTANGLE_PIP to a pip command"), "{err}");
    }

    #[test]
    fn package_names_normalize_as_on_pypi() {
        assert_eq!(normalize("Toy_Data"), "toy-data");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("a--_b"), "a-b");
    }
}
