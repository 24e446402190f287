//! Build-script helper for every entangle crate that links libtorch through tch.
//!
//! tch's build script links libtorch but leaves three things to the final binaries: finding the
//! shared libraries at run time, keeping `libtorch_cuda.so` linked, and exporting the functions
//! of ours that libtorch is to call instead of its own ([`EXPORTED`]). The linker's
//! `--as-needed` drops `libtorch_cuda.so` because no symbol of ours refers to it directly, and
//! then CUDA is silently unavailable on a GPU host. A crate that links tch calls
//! [`emit_link_args`] from its `build.rs`; the flags apply to that crate's binaries and tests.
//!
//! ```no_run
//! // build.rs
//! fn main() {
//!     entangle_torch_link::emit_link_args();
//! }
//! ```
//!
//! libtorch is found through `LIBTORCH` (set by `.cargo/config.toml` to the `.libtorch` link
//! that `cargo xtask setup` maintains, or by the user) or `LIBTORCH_LIB` when the user splits
//! headers and libraries.

use std::path::PathBuf;

/// Functions the stage binaries define for libtorch to call: on Linux a binary exports each it
/// defines (an executable's symbols are otherwise invisible to the libraries it loads; GNU ld
/// 2.35 or later, or lld), and then the dynamic linker binds libtorch's calls to ours.
/// `mkl_serv_intel_cpu_true`: MKL's vendor check (entangle-cli's `mkl` module).
pub const EXPORTED: [&str; 1] = ["mkl_serv_intel_cpu_true"];

/// Prints the cargo instructions that give the crate's binaries and tests an rpath to
/// libtorch's `lib` directory, the exports of [`EXPORTED`] (on Linux) and, when that libtorch has CUDA, a
/// hard dependency on `libtorch_cuda.so`.
pub fn emit_link_args() {
    if std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux") {
        for symbol in EXPORTED {
            println!("cargo:rustc-link-arg=-Wl,--export-dynamic-symbol={symbol}");
        }
    }
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=LIBTORCH_LIB");
    let Some(lib_dir) = libtorch_lib_dir() else {
        println!("cargo:warning=LIBTORCH is not set: run `cargo xtask setup`");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib_dir.display());
    if lib_dir.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib_dir.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// libtorch's library directory, resolved through symbolic links so that the rpath keeps
/// working when `.libtorch` is later pointed elsewhere.
fn libtorch_lib_dir() -> Option<PathBuf> {
    let lib = match std::env::var_os("LIBTORCH_LIB") {
        Some(lib) => PathBuf::from(lib).join("lib"),
        None => PathBuf::from(std::env::var_os("LIBTORCH")?).join("lib"),
    };
    Some(lib.canonicalize().unwrap_or(lib))
}
