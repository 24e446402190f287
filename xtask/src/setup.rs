//! `cargo xtask setup`: make a libtorch for tch 0.24 (PyTorch 2.11.0) available and point the
//! workspace's `.libtorch` link at it.
//!
//! A `LIBTORCH` set by the user is honoured as is. Otherwise the PyPI `torch==2.11.0` wheel is
//! installed once with pip into a venv in the cache directory (`$ENTANGLE_CACHE_DIR`, else
//! `$XDG_CACHE_HOME/entangle`, else `~/.cache/entangle`) and reused afterwards. The wheel ships
//! headers and shared libraries, CUDA included; it runs on CPU-only machines too.
//! `.cargo/config.toml` sets `LIBTORCH` to `.libtorch` for every cargo command, and
//! entangle-torch-link bakes the resolved library path into each binary as an rpath.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub const TORCH_VERSION: &str = "2.11.0";

/// Ensures libtorch is available and linked at `<root>/.libtorch`; returns its directory (the
/// one holding `include/` and `lib/`).
pub fn setup(root: &Path) -> Result<PathBuf> {
    let link = root.join(".libtorch");
    let dir = match user_libtorch(&link) {
        Some(dir) => {
            check_libtorch_dir(&dir).context("LIBTORCH is set but unusable")?;
            println!("xtask setup: using LIBTORCH={}", dir.display());
            dir
        }
        None => cached_wheel()?,
    };
    point_link(&link, &dir)?;
    Ok(dir)
}

/// The user's `LIBTORCH`, unless it is only the `.libtorch` default that `.cargo/config.toml`
/// puts into every process cargo starts, this one included.
fn user_libtorch(link: &Path) -> Option<PathBuf> {
    let value = PathBuf::from(std::env::var_os("LIBTORCH")?);
    (value != link).then_some(value)
}

fn check_libtorch_dir(dir: &Path) -> Result<()> {
    for needed in ["lib/libtorch_cpu.so", "include/torch"] {
        if !dir.join(needed).exists() {
            bail!("{} has no {needed}: expected a libtorch directory", dir.display());
        }
    }
    Ok(())
}

/// The venv that holds the torch wheel, in the cache the wheels of entangle-pypi share.
fn venv_dir() -> Result<PathBuf> {
    Ok(entangle_pypi::cache_dir()?.join(format!("torch-{TORCH_VERSION}")))
}

/// The Python interpreter of the cached venv, with torch installed first if needed: what runs
/// the benchmark baselines and fixture scripts.
pub fn venv_python() -> Result<PathBuf> {
    let python = venv_dir()?.join("bin").join("python");
    if installed_torch_dir(&python).is_none() {
        cached_wheel()?;
    }
    Ok(python)
}

/// The torch directory of the cached venv, installing the wheel first if needed.
fn cached_wheel() -> Result<PathBuf> {
    let venv = venv_dir()?;
    let python = venv.join("bin").join("python");
    if let Some(dir) = installed_torch_dir(&python) {
        println!("xtask setup: reusing torch {TORCH_VERSION} in {}", venv.display());
        return Ok(dir);
    }
    println!("xtask setup: installing torch {TORCH_VERSION} with pip into {} (once; about 3 GB)", venv.display());
    create_venv(&venv)?;
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", &format!("torch=={TORCH_VERSION}")])
        .status()
        .with_context(|| format!("running {} -m pip", python.display()))?;
    if !status.success() {
        bail!("pip could not install torch=={TORCH_VERSION} into {} ({status})", venv.display());
    }
    let dir = installed_torch_dir(&python)
        .with_context(|| format!("torch {TORCH_VERSION} is still not importable from {}", python.display()))?;
    println!("xtask setup: libtorch is {}", dir.display());
    Ok(dir)
}

fn create_venv(venv: &Path) -> Result<()> {
    let missing = "python3 with venv and pip is needed to install libtorch \
                   (Debian: apt-get install python3 python3-venv python3-pip), or set LIBTORCH to a libtorch 2.11.0 directory";
    let output = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(venv)
        .output()
        .map_err(|_| anyhow::anyhow!("{missing}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().last().unwrap_or("").trim();
        bail!("{missing}; `python3 -m venv` failed: {reason}");
    }
    Ok(())
}

/// The torch package directory of `python`, if that interpreter imports torch 2.11.0.
fn installed_torch_dir(python: &Path) -> Option<PathBuf> {
    if !python.exists() {
        return None;
    }
    let output = Command::new(python)
        .args(["-c", "import os, torch; print(torch.__version__); print(os.path.dirname(torch.__file__))"])
        .output()
        .ok()?;
    let stdout = String::from_utf8(output.stdout).ok()?;
    let mut lines = stdout.lines();
    let version = lines.next()?;
    let dir = PathBuf::from(lines.next()?);
    (output.status.success() && version.split('+').next() == Some(TORCH_VERSION) && check_libtorch_dir(&dir).is_ok())
        .then_some(dir)
}

/// Replaces the symbolic link `link` with one to `target`, atomically.
fn point_link(link: &Path, target: &Path) -> Result<()> {
    if std::fs::read_link(link).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let tmp = link.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).with_context(|| format!("creating {}", tmp.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("replacing {}", link.display()))
}
