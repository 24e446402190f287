//! `entangle-bench`: the entangle side of `cargo xtask bench model | train | eval`; prints one
//! JSON line of results.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use entangle_bench::{EvalOptions, ModelOptions, TrainOptions};
use serde::Serialize;

/// Measures the throughput of entangle's model runtime, trainer and evaluator on the inputs of
/// `bench/make_inputs.py`, as `cargo xtask bench` runs it against the Python baselines.
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    benchmark: Benchmark,
}

/// The model and thread count every benchmark takes.
#[derive(Args)]
struct Common {
    /// The model directory.
    #[arg(long)]
    model: PathBuf,
    /// Intra-op threads (torch.set_num_threads on the baseline's side).
    #[arg(long)]
    threads: usize,
}

#[derive(Subcommand)]
enum Benchmark {
    /// Forward tokens/s of one batch and greedy-generation tokens/s.
    Model {
        #[command(flatten)]
        common: Common,
        /// JSON {"ids": [[token id, …], …]}: the prompts, one batch.
        #[arg(long)]
        prompts: PathBuf,
        #[arg(long, default_value_t = 64)]
        new_tokens: usize,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
    },
    /// Training tokens/s.
    Train {
        #[command(flatten)]
        common: Common,
        /// JSON {"ids": [[token id, …], …]}: sequences of one length.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        #[arg(long, default_value_t = 2)]
        warmup_steps: usize,
    },
    /// Generation tokens/s of a harmful-benchmark pass with the keyword judge.
    Eval {
        #[command(flatten)]
        common: Common,
        /// JSON {"instructions": ["…", …]}.
        #[arg(long)]
        instructions: PathBuf,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// Where the prompts and settings for the baseline go.
        #[arg(long)]
        settings_out: PathBuf,
    },
}

fn main() -> ExitCode {
    entangle_cli::main(|| run(Cli::parse().benchmark))
}

fn run(benchmark: Benchmark) -> Result<()> {
    match benchmark {
        Benchmark::Model { common, prompts, new_tokens, repeats } => print_line(&entangle_bench::model(&ModelOptions {
            model: common.model,
            prompts,
            threads: common.threads,
            new_tokens,
            repeats,
        })?),
        Benchmark::Train { common, data, batch_size, warmup_steps } => print_line(&entangle_bench::train(&TrainOptions {
            model: common.model,
            data,
            threads: common.threads,
            batch_size,
            warmup_steps,
        })?),
        Benchmark::Eval { common, instructions, batch_size, max_new_tokens, settings_out } => {
            print_line(&entangle_bench::eval(&EvalOptions {
                model: common.model,
                instructions,
                threads: common.threads,
                batch_size,
                max_new_tokens,
                settings_out,
            })?)
        }
    }
}

fn print_line(result: &impl Serialize) -> Result<()> {
    println!("{}", serde_json::to_string(result)?);
    Ok(())
}
