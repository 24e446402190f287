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

use clap::{Parser, Subcommand};

/// The project's own commands: libtorch set-up, the test gate, the study and the benchmarks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Provide the libtorch tch 0.24 builds against (a user's LIBTORCH, else the torch 2.11.0
    /// wheel in a cached venv).
    Setup,
    /// Set up, build every test and stage binary, check their links, and run every test (what
    /// CI runs).
    Test,
    /// Run the study of a pipeline file into a run directory, stage by stage.
    Reproduce(reproduce::Options),
    /// Measure entangle against the Python/transformers baselines.
    Bench(bench::Options),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = repo_root();
    let result = match &cli.command {
        Command::Setup => setup::setup(&root).map(|_| ()),
        Command::Test => test::test(&root),
        Command::Reproduce(options) => reproduce::reproduce(&root, options),
        Command::Bench(options) => bench::bench(&root, options),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses `cargo xtask ARGS…` as the binary does.
    pub(crate) fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|cli| cli.command)
    }

    #[test]
    fn every_command_answers_help() {
        for command in [&["--help"][..], &["reproduce", "--help"], &["bench", "--help"], &["test", "--help"], &["setup", "--help"]] {
            let err = parse(command).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp, "{command:?}");
        }
        assert!(parse(&["frobnicate"]).is_err());
    }
}
