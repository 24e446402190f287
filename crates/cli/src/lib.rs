//! The shared shell of every entangle stage binary (`entangle-prepare`, `entangle-train`,
//! `entangle-project`, …): logging configured from `RUST_LOG` (default `info`, to stderr), and
//! the exit convention — success exits 0, any error prints one line `error: <cause chain>` to
//! stderr and exits 1. Every stage takes [`StageArgs`] (`--run DIR`, `--force`). A binary's
//! `main` parses its flags and calls its library inside [`main`]:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     entangle_cli::main(|| {
//!         // parse flags, then call the stage library
//!         Ok(())
//!     })
//! }
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// The flags every stage binary shares; flatten them into its own (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct StageArgs {
    /// The run directory (holding pipeline.toml).
    #[arg(long)]
    pub run: PathBuf,
    /// Redo the stage even when the manifest says its outputs are up to date.
    #[arg(long)]
    pub force: bool,
}

/// Sets up logging, runs `body`, and turns its result into the process exit code.
pub fn main(body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    init_logging();
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr at the level `RUST_LOG` asks for, `info` by default.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The error and its causes on one line, outermost first.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_as_one_line_with_their_causes() {
        let err = anyhow::anyhow!("bad\nvalue").context("reading runs/x/pipeline.toml");
        assert_eq!(one_line(&err), "reading runs/x/pipeline.toml: bad value");
    }
}
