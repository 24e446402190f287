//! `entangle-report --run DIR [--force] [--font FILE]`: write the run's report.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use entangle_artifacts::RunDir;
use entangle_cli::StageArgs;
use entangle_report::{system_font, Options};

/// Write the human-readable report of a run from its tables: report/index.html (self-contained),
/// report/report.md and every figure as SVG (and PNG when a font is available).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    stage: StageArgs,
    /// TrueType font for the PNG figures; default: DejaVu Sans or Liberation Sans if installed.
    #[arg(long)]
    font: Option<PathBuf>,
}

fn main() -> ExitCode {
    entangle_cli::main(|| {
        let args = Args::parse();
        let options = Options { force: args.stage.force, font: args.font.or_else(system_font) };
        entangle_report::run(&RunDir::new(&args.stage.run), &options).map(|_| ())
    })
}
