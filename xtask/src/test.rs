//! `cargo xtask test`: the README's test command and CI's only step. It sets up libtorch,
//! builds every test and binary, checks that each executable linking libtorch also keeps
//! `libtorch_cuda.so` (when that libtorch has CUDA) and that each stage binary linking it
//! exports the functions libtorch is to call instead of its own, then runs all tests, and the
//! crates' own tests once more on the kernels of another instruction set.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::setup::setup;

pub fn test(root: &Path) -> Result<()> {
    let libtorch = setup(root)?;
    let executables = build_tests(root)?;
    check_cuda_linked(&libtorch, &executables)?;
    check_exports(&executables)?;
    let status = cargo(root)
        .args(["test", "--workspace"])
        .status()
        .context("running cargo test")?;
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    test_on_generic_kernels(root)
}

/// Runs the crates' tests (not the end-to-end ones) again with libtorch, oneDNN and MKL held to
/// their generic code paths, as on a processor without AVX: their kernels round differently
/// from this machine's, so a tolerance that only this machine's rounding meets fails here too.
fn test_on_generic_kernels(root: &Path) -> Result<()> {
    println!("xtask test: the crates' tests again on the generic (pre-AVX) kernels");
    let status = cargo(root)
        .args(["test", "--workspace", "--exclude", "entangle-tests"])
        .env("ATEN_CPU_CAPABILITY", "default")
        .env("ONEDNN_MAX_CPU_ISA", "SSE41")
        .env("MKL_ENABLE_INSTRUCTIONS", "SSE4_2")
        .status()
        .context("running cargo test on the generic kernels")?;
    if !status.success() {
        bail!("cargo test on the generic kernels failed ({status})");
    }
    Ok(())
}

fn cargo(root: &Path) -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root);
    command
}

/// Builds every test and stage binary in one invocation, exactly as `cargo xtask reproduce`
/// does (the end-to-end tests run the stage binaries); returns the executables built, each
/// with the libraries it links (read once, for both link checks).
fn build_tests(root: &Path) -> Result<Vec<Executable>> {
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
            let test = message.pointer("/profile/test").and_then(serde_json::Value::as_bool).unwrap_or(true);
            let path = PathBuf::from(path);
            executables.push(Executable { needed: needed_libraries(&path)?, path, test });
        }
    }
    Ok(executables)
}

/// An executable cargo built: a test, or a binary (a stage's, `entangle-bench`, xtask).
struct Executable {
    path: PathBuf,
    test: bool,
    /// The shared libraries its dynamic section lists.
    needed: Vec<String>,
}

impl Executable {
    fn needs(&self, library: &str) -> bool {
        self.needed.iter().any(|lib| lib.starts_with(library))
    }
}

/// Every stage binary that links libtorch must export each of
/// [`entangle_torch_link::EXPORTED`] as a function it defines; otherwise libtorch calls its own
/// (for MKL's vendor check: the generic kernels on a non-Intel processor).
fn check_exports(executables: &[Executable]) -> Result<()> {
    let mut checked = 0;
    for exe in executables.iter().filter(|e| !e.test && e.needs("libtorch_cpu.so")) {
        let exported = exported_functions(&exe.path)?;
        if let Some(missing) = entangle_torch_link::EXPORTED.iter().find(|s| !exported.iter().any(|e| e == *s)) {
            bail!("{} does not export `{missing}`: libtorch would call its own", exe.path.display());
        }
        checked += 1;
    }
    if checked == 0 {
        bail!("no stage binary links libtorch, so the export check checked nothing");
    }
    println!("xtask test: all {checked} stage binaries that link libtorch export {:?}", entangle_torch_link::EXPORTED);
    Ok(())
}

/// The functions an ELF file defines in its dynamic symbol table, read with `readelf --dyn-syms`.
fn exported_functions(exe: &Path) -> Result<Vec<String>> {
    // Columns: Num: Value Size Type Bind Vis Ndx Name; an undefined symbol's Ndx is UND.
    Ok(readelf(&["--dyn-syms", "-W"], exe)?
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|cols| cols.len() >= 8 && cols[3] == "FUNC" && cols[6] != "UND")
        .map(|cols| cols[7].to_owned())
        .collect())
}

/// Every executable that links libtorch must list `libtorch_cuda.so` in its dynamic section
/// when the libtorch it was built against has one; otherwise `--as-needed` dropped it and CUDA
/// would be silently unavailable on a GPU host.
fn check_cuda_linked(libtorch: &Path, executables: &[Executable]) -> Result<()> {
    if !libtorch.join("lib/libtorch_cuda.so").exists() {
        println!("xtask test: {} has no CUDA library; skipping the link check", libtorch.display());
        return Ok(());
    }
    let mut checked = 0;
    for exe in executables.iter().filter(|e| e.needs("libtorch_cpu.so")) {
        if !exe.needs("libtorch_cuda.so") {
            bail!("{} links libtorch but not libtorch_cuda.so: CUDA would be unavailable", exe.path.display());
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
    Ok(readelf(&["-d"], exe)?
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .filter_map(|line| Some(line.split('[').nth(1)?.trim_end_matches(']').to_owned()))
        .collect())
}

/// What `readelf` (binutils) prints for `exe` with `flags`.
fn readelf(flags: &[&str], exe: &Path) -> Result<String> {
    let output = Command::new("readelf")
        .args(flags)
        .arg(exe)
        .output()
        .context("running readelf (binutils) to check the built executables")?;
    if !output.status.success() {
        bail!("readelf {} {} failed", flags.join(" "), exe.display());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
