//! The tables of the run directory. Column names and types are a public contract, documented
//! in docs/architecture.md: users open these files in polars.



crate::table! {
    /// `train/<job>.parquet`: one row per optimiser step of a training job.
    pub struct LossPoint {
        /// Optimiser step, from 1.
        pub step: u64,
        /// Mean loss per target token over the step's accumulated micro-batches.
        pub loss: f64,
        /// Learning rate used for this step.
        pub lr: f64,
        /// Target (loss-bearing) tokens seen so far.
        pub tokens: u64,
        /// Seconds since the job started.
        pub seconds: f64,
    }
}

crate::table! {
    /// `projection/diagnostics.parquet`: one row per fine-tune, subspace kind, merge method and
    /// fraction; sums over every floating tensor of the model (METHOD.md, experiment 1).
    pub struct ProjectionDiagnostic {
        /// Fine-tune whose update T = W_ft − W_aligned is projected.
        pub ft: String,
        /// Subspace kind: `topk`, `randomk` or `random`.
        pub kind: String,
        /// Merge method: `same`, `orth` or `opp`.
        pub method: String,
        /// Fraction f of each 2-D tensor's rank r; k = max(1, round(f·r)).
        pub frac: f64,
        /// Σ‖kept‖² / Σ‖T‖², where kept is P (same), T − P (orth) or −P (opp).
        pub energy_kept: f64,
        /// Σ⟨T, kept⟩ / (√Σ‖T‖² · √Σ‖kept‖²); 0 when either is zero.
        pub cos_task_kept: f64,
        /// Σ⟨T, A⟩ / (√Σ‖T‖² · √Σ‖A‖²); independent of kind, method and fraction.
        pub cos_task_align: f64,
        /// Σ‖T − kept‖²: the task energy the merge leaves out.
        pub energy_removed: f64,
        /// Σ‖T‖².
        pub task_energy: f64,
        /// Σ‖A‖², A = W_aligned − W_base.
        pub align_energy: f64,
    }
}

crate::table! {
    /// `projection/per_tensor.parquet`: the diagnostics of [`ProjectionDiagnostic`] for each
    /// floating tensor.
    pub struct ProjectionPerTensor {
        pub ft: String,
        pub kind: String,
        pub method: String,
        pub frac: f64,
        /// Tensor name (Hugging Face key).
        pub tensor: String,
        /// Decoder layer index (`0`, `1`, …), or `embed`, `norm`, `head`, `other`.
        pub layer: String,
        /// Subspace dimension; null where P is the projection on the direction of A (tensors
        /// that are not 2-D).
        pub k: Option<u64>,
        /// ‖kept‖² / ‖T‖²; 0 when T is zero.
        pub energy_kept: f64,
        /// ⟨T, kept⟩ / (‖T‖ ‖kept‖); 0 when either is zero.
        pub cos_task_kept: f64,
        /// ⟨T, A⟩ / (‖T‖ ‖A‖); 0 when either is zero.
        pub cos_task_align: f64,
        /// ‖T − kept‖².
        pub energy_removed: f64,
        /// ‖T‖².
        pub task_energy: f64,
        /// ‖A‖².
        pub align_energy: f64,
    }
}

crate::table! {
    /// `mso/update_spaces.parquet`: overlap of the useful and harmful weight updates, one row
    /// per tensor or layer and energy fraction (METHOD.md, experiment 2).
    pub struct UpdateMso {
        /// Tensor name (granularity `tensor`) or layer label (granularity `layer`).
        pub group: String,
        /// `tensor` or `layer`.
        pub granularity: String,
        /// Decoder layer index (`0`, `1`, …), or `embed`, `norm`, `head`, `other`.
        pub layer: String,
        /// Number of tensors stacked into the group's matrix.
        pub tensors: u64,
        /// Energy fraction e.
        pub energy_frac: f64,
        /// Fewest left singular vectors of ΔU holding e of its energy.
        pub k_useful: u64,
        /// Fewest left singular vectors of ΔH holding e of its energy.
        pub k_harmful: u64,
        /// Ambient dimension: rows of the group's matrix.
        pub d: u64,
        /// ‖Q_uᵀ Q_h‖_F² / min(k_useful, k_harmful), in [0, 1].
        pub mso: f64,
        /// Expected MSO of random subspaces of those sizes: max(k_useful, k_harmful) / d.
        pub mso_random: f64,
        /// Mean cosine of the min(k_useful, k_harmful) principal angles between Q_u and Q_h.
        pub cos_mean: f64,
        /// Largest cosine of those principal angles.
        pub cos_max: f64,
    }
}
