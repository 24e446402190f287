//! Replicates (METHOD.md, "Beyond the paper"): a study draws again, `replicates` times, what is
//! random downstream of alignment — the fine-tunes' data order and the random-k and Gaussian
//! bases — while base and aligned stay the one fixed subject. This module says which models
//! are drawn again, with which seed, and where each replicate's copy lives.
//!
//! Replicate numbers start at 1; tables write 0 in their `replicate` column for rows of the
//! fixed subject, which every replicate shares. Replicate 1 draws with the pipeline's own seed,
//! so a study with one replicate is the study the pipeline always described.

use anyhow::{bail, Result};
use entangle_artifacts::RunDir;

use crate::{Checkpoint, Pipeline};

/// The `replicate` column's value for rows of the fixed subject (base, aligned, models that
/// come from outside the run), shared by every replicate.
pub const FIXED: u32 = 0;

impl Pipeline {
    /// Whether model `name` is drawn again per replicate: a training job that starts, directly
    /// or through other jobs, from the aligned model (`projection.aligned`).
    pub fn is_replicated(&self, name: &str) -> bool {
        let mut current = name;
        for _ in 0..=self.train.len() {
            let Some(from) = self.train.get(current).and_then(|job| job.from.as_deref()) else {
                return false;
            };
            if from == self.projection.aligned {
                return true;
            }
            current = from;
        }
        false
    }

    /// The replicate numbers of the study, 1 to `replicates`.
    pub fn replicate_numbers(&self) -> std::ops::RangeInclusive<u32> {
        1..=self.replicates
    }

    /// The seed of replicate `replicate` drawn from `seed`: `seed` itself for replicate 1, and
    /// for the others a seed mixed from both (SplitMix64's finaliser), so that neighbouring
    /// replicates' random streams share nothing.
    pub fn replicate_seed(seed: u64, replicate: u32) -> u64 {
        if replicate <= 1 {
            return seed;
        }
        let mut z = seed ^ u64::from(replicate).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The directory holding model `name`'s artifacts in replicate `replicate`: the run's
    /// `replicates/<r>/` for a replicated model, the run itself for the fixed subject.
    pub fn run_dir_of(&self, run: &RunDir, name: &str, replicate: u32) -> Result<RunDir> {
        if !self.is_replicated(name) {
            return Ok(run.clone());
        }
        self.check_replicate(replicate)?;
        Ok(run.replicate(replicate))
    }

    /// The `replicate` column's value for model `name` in replicate `replicate`: the
    /// replicate, or [`FIXED`] for the fixed subject.
    pub fn replicate_of(&self, name: &str, replicate: u32) -> u32 {
        if self.is_replicated(name) {
            replicate
        } else {
            FIXED
        }
    }

    /// The `replicate` values model `name` has: [`FIXED`] alone for the fixed subject, 1 to
    /// `replicates` for a replicated model.
    pub fn replicates_of(&self, name: &str) -> Vec<u32> {
        if self.is_replicated(name) {
            self.replicate_numbers().collect()
        } else {
            vec![FIXED]
        }
    }

    /// Model `name` of replicate `replicate` as stage names and the report write it:
    /// `useful@2`, or plainly `aligned` for the fixed subject.
    pub fn labelled(&self, name: &str, replicate: u32) -> String {
        if self.is_replicated(name) {
            format!("{name}@{replicate}")
        } else {
            name.to_owned()
        }
    }

    /// `replicate` is one of the study's replicates.
    pub fn check_replicate(&self, replicate: u32) -> Result<()> {
        if !self.replicate_numbers().contains(&replicate) {
            bail!("replicate {replicate} does not exist: the pipeline has replicates 1 to {}", self.replicates);
        }
        Ok(())
    }
}

impl Checkpoint {
    /// The `replicate` values the checkpoint has: a model's (see [`Pipeline::replicates_of`]),
    /// or every replicate for a merge (its random bases are drawn per replicate).
    pub fn replicates(&self, pipeline: &Pipeline) -> Vec<u32> {
        match self {
            Checkpoint::Model(name) => pipeline.replicates_of(name),
            Checkpoint::Merge(_) => pipeline.replicate_numbers().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const JOBS: &str = "name = \"x\"\nreplicates = 3\n\
        [train.base]\nkind = \"pretrain\"\ndata = [\"pretrain\"]\narchitecture = { model_type = \"llama\" }\n\
        [train.aligned]\nkind = \"sft\"\nfrom = \"base\"\ndata = [\"align\"]\n\
        [train.useful]\nkind = \"sft\"\nfrom = \"aligned\"\ndata = [\"useful\"]\n\
        [train.more]\nkind = \"sft\"\nfrom = \"useful\"\ndata = [\"useful\"]\n";

    #[test]
    fn fine_tunes_of_the_aligned_model_are_replicated_and_the_subject_is_not() {
        let p = Pipeline::parse(JOBS).unwrap();
        let replicated: Vec<&str> = ["base", "aligned", "useful", "more", "ghost"].into_iter().filter(|m| p.is_replicated(m)).collect();
        assert_eq!(replicated, ["useful", "more"]);
        assert_eq!(p.replicate_numbers().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(Checkpoint::parse("aligned:topk:orth:0.5").unwrap().replicates(&p), [1, 2, 3]);
        assert_eq!(Checkpoint::parse("base").unwrap().replicates(&p), [FIXED]);
        assert_eq!((p.replicate_of("useful", 2), p.replicate_of("aligned", 2)), (2, FIXED));
        assert_eq!((p.labelled("more", 3), p.labelled("aligned", 3)), ("more@3".to_owned(), "aligned".to_owned()));
    }

    #[test]
    fn each_replicate_has_its_own_directory_and_seed() {
        let p = Pipeline::parse(JOBS).unwrap();
        let run = RunDir::new(Path::new("runs/x"));
        assert_eq!(p.run_dir_of(&run, "useful", 2).unwrap().model("useful"), Path::new("runs/x/replicates/2/models/useful"));
        assert_eq!(p.run_dir_of(&run, "aligned", 2).unwrap().model("aligned"), Path::new("runs/x/models/aligned"));
        let err = p.run_dir_of(&run, "useful", 4).unwrap_err().to_string();
        assert_eq!(err, "replicate 4 does not exist: the pipeline has replicates 1 to 3");
        assert_eq!(Pipeline::replicate_seed(42, 1), 42);
        let seeds: std::collections::BTreeSet<u64> = (1..=50).map(|r| Pipeline::replicate_seed(42, r)).collect();
        assert_eq!(seeds.len(), 50, "every replicate draws its own seed");
        assert_eq!(Pipeline::replicate_seed(42, 7), Pipeline::replicate_seed(42, 7));
        assert_ne!(Pipeline::replicate_seed(42, 2), Pipeline::replicate_seed(43, 2));
    }

    #[test]
    fn a_study_needs_at_least_one_replicate() {
        let err = format!("{:#}", Pipeline::parse("name = \"x\"\nreplicates = 0").unwrap_err());
        assert!(err.contains("replicates: expected at least 1, got 0"), "{err}");
        assert_eq!(Pipeline::parse("name = \"x\"").unwrap().replicates, 1);
    }
}
