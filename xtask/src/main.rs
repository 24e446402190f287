//! `cargo xtask`: the project's own commands, in Rust so they need nothing but cargo.
//!
//! - `setup` provides the libtorch that tch 0.24 builds against (see [`setup`]);
//! - `test` sets up, builds, checks that CUDA stays linked, and runs every test;
//! - `reproduce` runs the study of a pipeline file stage by stage (see [`reproduce`]);
//! - `bench` measures entangle against the Python/transformers baselines (see [`bench`]).
//!
//! xtask never depends on tch, so it builds in seconds on a fresh clone.

mod bench;
mod reproduce;
mod setup;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <setup | test | reproduce | bench>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::setup(&repo_root()).map(|_| ()),
        Some("test") => test::test(&repo_root()),
        Some("reproduce") => reproduce::Options::parse(&args[1..])
            .and_then(|options| reproduce::reproduce(&repo_root(), &options)),
        Some("bench") => bench::Options::parse(&args[1..]).and_then(|options| bench::bench(&repo_root(), &options)),
        Some("-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command `{other}`; {USAGE}")),
        None => Err(anyhow::anyhow!("{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask's manifest directory is `<root>/xtask`.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
