//! The checkpoints an evaluation scores: models of the run by name, and projection merges by
//! spec (`useful:topk:orth:0.25`), which are built in memory from the aligned weights, the
//! fine-tune and the cached SVD — no file is written.

use std::path::PathBuf;

use anyhow::{Context, Result};
use entangle_artifacts::RunDir;
use entangle_checkpoint::{read_config, resolve};
use entangle_model::{CausalLm, Placement, Registry, Tokenizer, Weights};
pub use entangle_pipeline::Checkpoint;
use entangle_pipeline::{MergeSpec, Pipeline};
use entangle_subspace::Merge;

/// The checkpoints `[eval]` lists, or by default the base, aligned and fine-tuned models of
/// `[projection]` followed by every merge it defines.
pub fn default_checkpoints(pipeline: &Pipeline) -> Vec<String> {
    if !pipeline.eval.checkpoints.is_empty() {
        return pipeline.eval.checkpoints.clone();
    }
    let projection = &pipeline.projection;
    let mut names = vec![projection.base.clone(), projection.aligned.clone()];
    names.extend(projection.finetunes.iter().cloned());
    if pipeline.eval.merges {
        for finetune in &projection.finetunes {
            for kind in &projection.kinds {
                for method in &projection.methods {
                    for &fraction in &projection.fractions {
                        let spec = MergeSpec { finetune: finetune.clone(), kind: *kind, method: *method, fraction };
                        names.push(spec.to_string());
                    }
                }
            }
        }
    }
    names
}

/// A loaded checkpoint: the model and the tokenizer it uses.
pub struct Loaded {
    pub model: Box<dyn CausalLm>,
    pub tokenizer: Tokenizer,
}

/// Loads `checkpoint` of `run` onto `placement`.
pub fn load(run: &RunDir, pipeline: &Pipeline, checkpoint: &Checkpoint, registry: &Registry, placement: Placement) -> Result<Loaded> {
    match checkpoint {
        Checkpoint::Model(name) => {
            let dir = model_dir(run, pipeline, name)?;
            Ok(Loaded { model: registry.load(&dir, placement)?, tokenizer: Tokenizer::from_dir(&dir)? })
        }
        Checkpoint::Merge(spec) => {
            let merge = Merge::open(run, spec, None)?;
            let aligned = model_dir(run, pipeline, &pipeline.projection.aligned)?;
            let config = read_config(&aligned)?;
            let model = registry
                .build(&config, Weights::Tensors(Box::new(merge.tensors())), placement)
                .with_context(|| format!("building the merge {spec} in memory"))?;
            Ok(Loaded { model, tokenizer: Tokenizer::from_dir(&aligned)? })
        }
    }
}

fn model_dir(run: &RunDir, pipeline: &Pipeline, name: &str) -> Result<PathBuf> {
    resolve(&pipeline.model_reference(run, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_list_is_models_then_every_merge() {
        let pipeline = Pipeline::parse(
            "name = \"t\"\n[projection]\nfinetunes = [\"useful\"]\nkinds = [\"topk\", \"random\"]\nmethods = [\"orth\"]\nfractions = [0.5]\n",
        )
        .unwrap();
        assert_eq!(
            default_checkpoints(&pipeline),
            ["base", "aligned", "useful", "useful:topk:orth:0.5", "useful:random:orth:0.5"]
        );
    }
}
