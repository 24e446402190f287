//! Test fixtures: a run directory with tiny random Llama-style models and a pipeline file.

use std::path::Path;

use entangle_artifacts::RunDir;
use entangle_checkpoint::{write_checkpoint, WriteOptions};
use tch::{Kind, Tensor};

use entangle_draw::{gaussian, tensor_rng};

/// The floating tensors of the tiny models: name and shape.
pub(crate) const TENSORS: &[(&str, &[i64])] = &[
    ("lm_head.weight", &[24, 8]),
    ("model.embed_tokens.weight", &[24, 8]),
    ("model.layers.0.input_layernorm.weight", &[8]),
    ("model.layers.0.mlp.down_proj.weight", &[8, 12]),
    ("model.layers.0.mlp.up_proj.weight", &[12, 8]),
    ("model.layers.0.self_attn.k_proj.weight", &[4, 8]),
    ("model.layers.0.self_attn.q_proj.weight", &[8, 8]),
    ("model.layers.1.input_layernorm.weight", &[8]),
    ("model.layers.1.self_attn.q_proj.weight", &[8, 8]),
    ("model.norm.weight", &[8]),
];

/// An integer tensor every model carries unchanged.
pub(crate) const INDEX_TENSOR: &str = "model.layers.0.self_attn.positions";

/// A seeded Gaussian draw of `shape` for tensor `name`.
pub(crate) fn draw(name: &str, shape: &[i64], seed: u64) -> Tensor {
    gaussian(shape, Kind::Float, &mut tensor_rng(seed, "fixture", name)).unwrap()
}

/// The weights of a model: a seeded base plus `scale × draw(seed)` for each of `updates`.
pub(crate) fn weights(updates: &[(u64, f64)]) -> Vec<(String, Tensor)> {
    let mut tensors: Vec<(String, Tensor)> = TENSORS
        .iter()
        .map(|&(name, shape)| {
            let weight = updates
                .iter()
                .fold(draw(name, shape, 1), |w, &(seed, scale)| w + draw(name, shape, seed) * scale);
            (name.to_owned(), weight)
        })
        .collect();
    tensors.push((INDEX_TENSOR.to_owned(), Tensor::arange(4, (Kind::Int64, tch::Device::Cpu))));
    tensors
}

/// The updates of each model of the run: aligned = base + 0.1·draw(2); each fine-tune adds its
/// own 0.01·draw.
pub(crate) fn model_updates(name: &str) -> Vec<(u64, f64)> {
    let aligned = (2, 0.1);
    match name {
        "base" => vec![],
        "aligned" => vec![aligned],
        "useful" => vec![aligned, (3, 0.01)],
        "harmful" => vec![aligned, (4, 0.01)],
        "contaminated" => vec![aligned, (3, 0.01), (4, 0.002)],
        other => panic!("no fixture model {other}"),
    }
}

/// Writes model `name` into `dir`, with a tokenizer file to be copied by merges.
pub(crate) fn write_model(dir: &Path, name: &str) {
    let config = serde_json::json!({ "model_type": "llama", "hidden_size": 8, "num_hidden_layers": 2 });
    let tensors = weights(&model_updates(name)).into_iter().map(Ok);
    write_checkpoint(dir, &config, tensors, &WriteOptions::default()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), format!("{{\"model\": \"{name}\"}}")).unwrap();
}

/// A run directory in `dir` with the five models and a pipeline file whose `[projection]` and
/// `[mso]` sections are `sections`.
pub(crate) fn write_run(dir: &Path, sections: &str) -> RunDir {
    let run = RunDir::new(dir);
    for name in ["base", "aligned", "useful", "harmful", "contaminated"] {
        write_model(&run.model(name), name);
    }
    std::fs::write(run.pipeline(), format!("name = \"tiny\"\nseed = 5\n{sections}")).unwrap();
    run
}
