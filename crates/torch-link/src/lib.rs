//! Build-script helper for every entangle crate that links libtorch through tch.
//!
//! tch's build script links libtorch but leaves two things to the final binaries: finding the
//! shared libraries at run time, and keeping `libtorch_cuda.so` linked. The linker's
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

/// Prints the cargo instructions that give the crate's binaries and tests an rpath to
/// libtorch's `lib` directory and, when that libtorch has CUDA, a hard dependency on
/// `libtorch_cuda.so`.
pub fn emit_link_args() {
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
