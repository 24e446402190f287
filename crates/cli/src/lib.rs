//! The shared shell of every entangle stage binary (`entangle-prepare`, `entangle-train`,
//! `entangle-project`, …): logging configured from `RUST_LOG` (default `info`, to stderr), the
//! allocator settings libtorch's tensors run best with ([`keep_freed_memory`]), MKL's Intel
//! code paths on every x86-64 processor with AVX2 and FMA (`mkl`, on Linux), and the exit
//! convention — success exits 0, any error prints one line `error: <cause chain>` to
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

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
pub mod mkl;

use std::io::IsTerminal;
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

/// The `--replicate R` flag of the stages that run once per replicate (training a fine-tune of
/// the aligned model, projection, update overlap, capturing a fine-tune); flatten it too.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ReplicateArg {
    /// The replicate to work on, 1 to the pipeline's `replicates`: each draws the fine-tunes'
    /// data order and the random bases again; base and aligned are shared.
    #[arg(long, default_value_t = 1, value_name = "R")]
    pub replicate: u32,
}

/// Sets up logging and memory, runs `body`, and turns its result into the process exit code.
pub fn main(body: impl FnOnce() -> anyhow::Result<()>) -> ExitCode {
    init_logging();
    keep_freed_memory();
    match body() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// Tells glibc's malloc to serve every allocation from one heap and to keep what is freed,
/// rather than to map each large block (above glibc's mmap threshold, 128 KB rising to 32 MB:
/// a batch's logits always) fresh from the kernel and to unmap it when freed. libtorch
/// allocates and frees tensors of the same sizes at every step, so after the first step their
/// memory is reused instead of being faulted in, page by page, again; a stage's resident memory
/// stays at its peak until it exits. One heap (the main arena) for every thread, as the
/// training shards' threads otherwise each get an arena whose sub-heaps (64 MB at most) are
/// unmapped as soon as they are empty: at every step for blocks the size of a shard's logits.
/// It halves the training benchmark's page faults (bench/README.md, measurement history).
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before the stage allocates
    // tensors or starts threads, and a refused setting (return 0) leaves glibc's defaults.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Logs to stderr at the level `RUST_LOG` asks for, `info` by default; in colour only on a
/// terminal, so a batch job's log file holds no escape codes.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
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
