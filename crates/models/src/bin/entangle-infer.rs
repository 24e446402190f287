//! `entangle-infer info | generate | logits MODEL …`: look into a model directory, generate
//! from it, or dump its last-token logits and hidden states; `entangle-infer import-gguf FILE
//! OUT_DIR`: a GGUF file as a checkpoint directory.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    entangle_cli::main(|| entangle_models::infer::run(&entangle_models::infer::Cli::parse()))
}
