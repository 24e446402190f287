//! Helpers for tests that read wheels, in this crate and in the crates using it: a wheel
//! written on the spot, and the pip of the test machine pointed at a local directory.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{cache_dir, PipSettings};

/// Writes a wheel of `name==version` holding `files` and a METADATA with `metadata` header
/// lines into `dir`, named as pip expects; returns its path.
pub fn write_wheel(dir: &Path, name: &str, version: &str, metadata: &str, files: &[(&str, &[u8])]) -> Result<PathBuf> {
    let dist = format!("{}-{version}", name.replace('-', "_"));
    let path = dir.join(format!("{dist}-py3-none-any.whl"));
    let mut zip = zip::ZipWriter::new(File::create(&path).with_context(|| format!("creating {}", path.display()))?);
    let options = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut write = |member: &str, bytes: &[u8]| -> Result<()> {
        zip.start_file(member, options)?;
        zip.write_all(bytes).with_context(|| format!("writing {member} into {}", path.display()))
    };
    let metadata_text =
        format!("Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{metadata}\nA description.\n");
    write(&format!("{dist}.dist-info/METADATA"), metadata_text.as_bytes())?;
    let wheel = b"Wheel-Version: 1.0\nGenerator: entangle-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    write(&format!("{dist}.dist-info/WHEEL"), wheel)?;
    for (member, bytes) in files {
        write(member, bytes)?;
    }
    zip.finish()?;
    Ok(path)
}

/// The pip of the test machine with `--no-index --find-links find_links` and `cache` as the
/// cache: `$ENTANGLE_PIP`, else the venv `cargo xtask setup` makes, else `python3 -m pip`. A
/// machine with none of them is an error that says how to get one.
pub fn test_pip(cache: &Path, find_links: &Path) -> Result<PipSettings> {
    let venv = cache_dir().map(|c| c.join("torch-2.11.0/bin/python")).ok().filter(|p| p.is_file());
    let command: Vec<String> = match (std::env::var("ENTANGLE_PIP").ok().filter(|v| !v.trim().is_empty()), venv) {
        (Some(pip), _) => pip.split_whitespace().map(str::to_owned).collect(),
        (None, Some(python)) => vec![python.display().to_string(), "-m".into(), "pip".into()],
        (None, None) => vec!["python3".into(), "-m".into(), "pip".into()],
    };
    let version = Command::new(&command[0]).args(&command[1..]).arg("--version").output();
    if !version.is_ok_and(|o| o.status.success()) {
        bail!(
            "these tests need pip: run `cargo xtask setup` (it makes ~/.cache/entangle/torch-2.11.0) \
             or set ENTANGLE_PIP; tried `{}`",
            command.join(" ")
        );
    }
    let extra_args = vec!["--no-index".into(), "--find-links".into(), find_links.display().to_string()];
    Ok(PipSettings { command, extra_args, cache: cache.to_path_buf() })
}
