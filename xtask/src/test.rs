//! `cargo xtask test`: the README's test command and CI's only step. It sets up libtorch,
//! builds every test and binary, checks that each executable linking libtorch also keeps
//! `libtorch_cuda.so` (when that libtorch has CUDA), then runs all tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::setup::setup;

pub fn test(root: &Path) -> Result<()> {
    let libtorch = setup(root)?;
    let executables = build_tests(root)?;
    check_cuda_linked(&libtorch, &executables)?;
    let status = cargo(root)
        .args(["test", "--workspace"])
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

/// Builds every test and stage binary in one invocation, exactly as `cargo xtask reproduce`
/// does (the end-to-end tests run the stage binaries); returns the executables built.
fn build_tests(root: &Path) -> Result<Vec<PathBuf>> {
    let output = cargo(root)
        .args(["build", "--workspace", "--bins", "--tests", "--message-format=json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build --bins --tests")?;
    if !output.status.success() {
        bail!("building the tests failed ({})", output.status);
    }
    let mut executables = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(path) = message.get("executable").and_then(|e| e.as_str()) {
            executables.push(PathBuf::from(path));
        }
    }
    Ok(executables)
}

/// Every executable that links libtorch must list `libtorch_cuda.so` in its dynamic section
/// when the libtorch it was built against has one; otherwise `--as-needed` dropped it and CUDA
/// would be silently unavailable on a GPU host.
fn check_cuda_linked(libtorch: &Path, executables: &[PathBuf]) -> Result<()> {
    if !libtorch.join("lib/libtorch_cuda.so").exists() {
        println!("xtask test: {} has no CUDA library; skipping the link check", libtorch.display());
        return Ok(());
    }
    let mut checked = 0;
    for exe in executables {
        let needed = needed_libraries(exe)?;
        if !needed.iter().any(|lib| lib.starts_with("libtorch_cpu.so")) {
            continue;
        }
        if !needed.iter().any(|lib| lib.starts_with("libtorch_cuda.so")) {
            bail!("{} links libtorch but not libtorch_cuda.so: CUDA would be unavailable", exe.display());
        }
        checked += 1;
    }
    if checked == 0 {
        bail!("no built executable links libtorch, so the CUDA link check checked nothing");
    }
    println!("xtask test: libtorch_cuda.so is linked into all {checked} executables that link libtorch");
    Ok(())
}

/// The `NEEDED` entries of an ELF file's dynamic section, read with `readelf -d`.
fn needed_libraries(exe: &Path) -> Result<Vec<String>> {
    let output = Command::new("readelf")
        .arg("-d")
        .arg(exe)
        .output()
        .context("running readelf (binutils) to check linked libraries")?;
    if !output.status.success() {
        bail!("readelf -d {} failed", exe.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split('[').nth(1)?.trim_end_matches(']').to_owned()))
        .collect())
}
