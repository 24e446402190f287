//! The subspace analysis of the study: alignment-subspace bases, projection merges and the
//! overlap of useful and harmful weight updates (METHOD.md, experiments 1 and 2).
//!
//! It sits after training in the pipeline and reads only checkpoints (memory-mapped, one tensor
//! at a time) — never running a forward pass. Both stages run once per replicate (the
//! fine-tunes and the random bases are drawn per replicate; base and aligned are shared). Stage
//! `project@<r>` ([`project::run`], binary `entangle-project`) computes, once per tensor, the
//! SVD of the alignment update A = W_aligned − W_base for each subspace kind (cached as
//! `subspace/<kind>_svd.safetensors`, the random kinds per replicate, see [`ensure_basis`]) and
//! the diagnostics of every (fine-tune, kind, method, fraction) to
//! `replicates/<r>/projection/*.parquet`. [`Merge`] builds one merged model tensor by tensor
//! from a [`MergeSpec`] such as `useful:topk:orth:0.25` and a replicate, for the evaluator to
//! load in memory or for `entangle-project --write` to save. Stage `mso@<r>` ([`mso::run`],
//! binary `entangle-mso`) writes the Mode Subspace Overlap of the useful and harmful updates
//! per tensor and per layer to `replicates/<r>/mso/update_spaces.parquet`. Both stages skip
//! themselves when the run's manifest shows their outputs up to date, and both offer the
//! authors' procedure (`--svd reference`) next to the exact default.
//!
//! ```no_run
//! use entangle_artifacts::RunDir;
//! use entangle_pipeline::MergeSpec;
//! use entangle_subspace::{project, Merge};
//!
//! # fn main() -> anyhow::Result<()> {
//! let run = RunDir::new(std::path::Path::new("runs/tiny"));
//! project::run(&run, &project::ProjectOptions::default())?;
//! let spec: MergeSpec = "useful:topk:orth:0.25".parse()?;
//! let merge = Merge::open(&run, &spec, 1, None)?;
//! for tensor in merge.tensors() {
//!     let (name, weight) = tensor?;
//!     println!("{name} {:?}", weight.size());
//! }
//! # Ok(()) }
//! ```

mod bases;
mod basis_file;
mod layer;
mod linalg;
mod merge;
mod models;
pub mod mso;
pub mod project;
#[cfg(test)]
mod testing;

pub use bases::{ensure_basis, matrices, BasisSources};
pub use basis_file::{Basis, BasisFile};
pub use layer::Layer;
pub use linalg::{rank_for_energy, rank_for_fraction};
pub use merge::{Merge, MERGE_VERSION};
pub use models::{check_same_tensors, Numerics};
pub use entangle_artifacts::Outcome;
