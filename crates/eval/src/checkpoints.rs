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

/// One checkpoint of one replicate ([`entangle_pipeline::FIXED`] for the fixed subject): what an
/// evaluation part holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub checkpoint: Checkpoint,
    pub replicate: u32,
}

impl Unit {
    /// `checkpoint` once for the fixed subject, or once per replicate when it is drawn per
    /// replicate.
    pub fn all_of(pipeline: &Pipeline, checkpoint: &Checkpoint) -> Vec<Unit> {
        checkpoint.replicates(pipeline).into_iter().map(|replicate| Unit { checkpoint: checkpoint.clone(), replicate }).collect()
    }

    /// `useful:topk:orth:0.5 (replicate 2)`, or the bare name for the fixed subject.
    pub fn label(&self) -> String {
        match self.replicate {
            entangle_pipeline::FIXED => self.checkpoint.name(),
            replicate => format!("{} (replicate {replicate})", self.checkpoint.name()),
        }
    }
}

/// Loads `unit` of `run` onto `placement`.
pub fn load(run: &RunDir, pipeline: &Pipeline, unit: &Unit, registry: &Registry, placement: Placement) -> Result<Loaded> {
    let replicate = unit.replicate;
    match &unit.checkpoint {
        Checkpoint::Model(name) => {
            let dir = model_dir(run, pipeline, name, replicate)?;
            Ok(Loaded { model: registry.load(&dir, placement)?, tokenizer: Tokenizer::from_dir(&dir)? })
        }
        Checkpoint::Merge(spec) => {
            let merge = Merge::open(run, spec, replicate, None)?;
            let aligned = model_dir(run, pipeline, &pipeline.projection.aligned, replicate)?;
            let config = read_config(&aligned)?;
            let model = registry
                .build(&config, Weights::Tensors(Box::new(merge.tensors())), placement)
                .with_context(|| format!("building the merge {spec} in memory"))?;
            Ok(Loaded { model, tokenizer: Tokenizer::from_dir(&aligned)? })
        }
    }
}

fn model_dir(run: &RunDir, pipeline: &Pipeline, name: &str, replicate: u32) -> Result<PathBuf> {
    resolve(&pipeline.model_reference(run, name, replicate)?)
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

    #[test]
    fn the_fixed_subject_is_evaluated_once_and_everything_drawn_again_per_replicate() {
        let pipeline = Pipeline::parse(
            "name = \"t\"\nreplicates = 2\n[models]\nbase = \"b\"\naligned = \"a\"\n\
             [train.useful]\nkind = \"sft\"\nfrom = \"aligned\"\ndata = [\"useful\"]\n",
        )
        .unwrap();
        let units = |name: &str| -> Vec<String> {
            Unit::all_of(&pipeline, &Checkpoint::parse(name).unwrap()).iter().map(Unit::label).collect()
        };
        assert_eq!(units("aligned"), ["aligned"]);
        assert_eq!(units("useful"), ["useful (replicate 1)", "useful (replicate 2)"]);
        assert_eq!(units("useful:topk:orth:0.5").len(), 2);
    }
}
