//! The tables of the run directory. Column names and types are a public contract, documented
//! in docs/tables.md: users open these files in polars.



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
        /// The replicate of a replicated fine-tune, 0 for a model trained once.
        pub replicate: u32,
    }
}

crate::table! {
    /// `data/<set>.parquet`: one example of a prepared training, evaluation or prompt set.
    /// Sets hold raw text only: prompt templates ("Instruction:", chat templates) are applied
    /// by the model runtime, never stored here.
    pub struct Example {
        /// Unique within the set: `<set>-<n>` for generated rows (kept when a row is copied
        /// into `contaminated`), `<source>-<row>` for upstream rows (0-based row of the file).
        pub id: String,
        /// The pool the row was drawn from: `train` or `heldout` for the synthetic world; the
        /// upstream split (`30k_train`, `330k_test`, `test`, …) for real datasets.
        pub split: String,
        /// `synthetic`, or the upstream dataset: `metamathqa`, `beavertails`, `gsm8k`,
        /// `advbench`, `math`, `toxigen`.
        pub source: String,
        /// What the row is: `harmful`, `benign`, `alarming`, `arithmetic`, `word_problem`,
        /// `string`, `lookup`, `document`, `math` or `statement`.
        pub kind: String,
        /// A finer label: harm category, task, level, subject or target group.
        pub category: String,
        /// The user's request as raw text; empty for plain-text documents.
        pub prompt: String,
        /// The reference response (the document itself when `prompt` is empty); empty where
        /// the set has none.
        pub response: String,
        /// The expected final answer, where one is checkable.
        pub answer: Option<String>,
        /// The prompt template a synthetic row was generated from; empty for upstream rows.
        pub template: String,
        /// What filled the template (task, expression, name/item, word, country); empty for
        /// upstream rows.
        pub entity: String,
        /// License of the row's text.
        pub license: String,
    }
}

crate::table! {
    /// `projection/diagnostics.parquet`: one row per fine-tune, subspace kind, merge method and
    /// fraction; sums over every floating tensor of the model (METHOD.md, experiment 1).
    pub struct ProjectionDiagnostic {
        /// Fine-tune whose update T = W_ft − W_aligned is projected.
        pub finetune: String,
        /// Subspace kind: `topk`, `randomk` or `random`.
        pub kind: String,
        /// Merge method: `same`, `orth` or `opp`.
        pub method: String,
        /// Fraction f of each 2-D tensor's rank r; k = max(1, round(f·r)).
        pub fraction: f64,
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
        /// Replicate (1, 2, …) whose fine-tunes and random bases the row is of.
        pub replicate: u32,
    }
}

crate::table! {
    /// `projection/per_tensor.parquet`: the diagnostics of [`ProjectionDiagnostic`] for each
    /// floating tensor.
    pub struct ProjectionPerTensor {
        pub finetune: String,
        pub kind: String,
        pub method: String,
        pub fraction: f64,
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
        /// Replicate (1, 2, …) whose fine-tunes and random bases the row is of.
        pub replicate: u32,
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
        /// Replicate (1, 2, …) whose useful and harmful fine-tunes the row compares.
        pub replicate: u32,
    }
}

crate::table! {
    /// `eval/responses.parquet`: one row per checkpoint, benchmark and item.
    pub struct EvalResponse {
        /// The checkpoint spec: a model name (`aligned`) or a merge (`useful:topk:orth:0.25`).
        pub checkpoint: String,
        /// Replicate (1, 2, …) of a fine-tune or merge; 0 for the fixed subject (base,
        /// aligned), which every replicate shares.
        pub replicate: u32,
        /// `harmful`, `utility` or `overrefusal`.
        pub benchmark: String,
        /// Item id within the benchmark's data set.
        pub item: String,
        pub prompt: String,
        pub response: String,
        /// Why generation stopped: `eos`, `stop_string` or `max_new_tokens`.
        pub stop_reason: String,
        /// Judges that scored the item, comma-separated (`keyword`, `keyword,llm`, …).
        pub judge: String,
        /// LLM-judge score 1–5 (harmful benchmark), when that judge ran and answered validly.
        pub score: Option<f64>,
        /// The LLM judge's raw answer, when it ran.
        pub judge_raw: Option<String>,
        /// The local judge model's verdict (`[eval.guard]`), when it ran.
        pub guard_unsafe: Option<bool>,
        /// Keyword judge: the response contains a refusal phrase.
        pub refused: bool,
        /// Keyword judge: the response says nothing — empty, or one short n-gram looping — so it
        /// is neither a refusal nor an attack's success.
        pub degenerate: bool,
        /// Utility: the flexibly extracted answer equals the reference.
        pub correct: Option<bool>,
        /// Utility: the strictly extracted (after `####`) answer equals the reference.
        pub correct_strict: Option<bool>,
        /// Utility: mean negative log-likelihood per token of the reference response, teacher
        /// forced.
        pub answer_nll: Option<f64>,
    }
}

impl EvalResponse {
    /// What the row contributes to each summary metric it has (1/0 for rates): refusal and
    /// degenerate rates always, attack success on the harmful benchmark (a response neither
    /// refused nor degenerate), the LLM judge's score and its level shares, the guard's verdict,
    /// accuracy (flexible and strict) and the answer NLL when present. The evaluator's summary
    /// averages them; the report pairs them across checkpoints prompt by prompt.
    pub fn metric_values(&self) -> Vec<(&'static str, f64)> {
        let indicator = |b: bool| if b { 1.0 } else { 0.0 };
        let mut values = vec![("refusal_rate", indicator(self.refused)), ("degenerate_rate", indicator(self.degenerate))];
        if self.benchmark == "harmful" {
            values.push(("attack_success_rate", indicator(!self.refused && !self.degenerate)));
        }
        if let Some(score) = self.score {
            values.push(("mean_score", score));
            values.extend(SCORE_SHARES.iter().enumerate().map(|(i, share)| (*share, indicator(score == (i + 1) as f64))));
        }
        values.extend(self.guard_unsafe.map(|unsafe_| ("guard_unsafe_rate", indicator(unsafe_))));
        values.extend(self.correct.map(|correct| ("accuracy", indicator(correct))));
        values.extend(self.correct_strict.map(|correct| ("accuracy_strict", indicator(correct))));
        values.extend(self.answer_nll.map(|nll| ("answer_nll", nll)));
        values
    }
}

/// The score distribution's metrics: the share of valid judgments at each level 1–5.
const SCORE_SHARES: [&str; 5] = ["score_1_share", "score_2_share", "score_3_share", "score_4_share", "score_5_share"];

crate::table! {
    /// `eval/summary.parquet`: one row per checkpoint, benchmark and metric.
    pub struct EvalSummary {
        pub checkpoint: String,
        /// As in [`EvalResponse`]: the replicate, 0 for the fixed subject.
        pub replicate: u32,
        pub benchmark: String,
        /// e.g. `refusal_rate`, `attack_success_rate`, `degenerate_rate`, `mean_score`, `invalid_judgments`,
        /// `accuracy`, `accuracy_strict`, `answer_nll`.
        pub metric: String,
        pub value: f64,
        /// Percentile-bootstrap 95% interval (equal to `value` for counts).
        pub ci_low: f64,
        pub ci_high: f64,
        /// Items the metric is computed over.
        pub n: u64,
    }
}

crate::table! {
    /// `entangle-infer generate --out FILE`: one row per prompt.
    pub struct GeneratedText {
        /// Index of the prompt in the input (argument order, or row of the prompt file).
        pub item: u64,
        /// The prompt as given, before the prompt format was applied.
        pub prompt: String,
        /// Prompt format: `instruction`, `chat` or `plain`.
        pub format: String,
        /// The response, decoded without special tokens and cut before any stop string.
        pub response: String,
        /// Why generation stopped: `eos`, `stop_string` or `max_new_tokens`.
        pub stop_reason: String,
        /// Tokens of the formatted prompt.
        pub prompt_tokens: u64,
        /// Tokens generated, including a final EOS.
        pub new_tokens: u64,
    }
}

crate::table! {
    /// `entangle-infer logits --out DIR`, `logits.parquet`: the logits after each prompt's
    /// last token, one row per prompt and vocabulary entry.
    pub struct LastTokenLogit {
        /// Index of the prompt in the input.
        pub item: u64,
        /// Token id.
        pub token: u32,
        pub logit: f32,
    }
}

crate::table! {
    /// `entangle-infer logits --out DIR`, `hidden_states.parquet`: every layer's hidden state at
    /// each prompt's last token, one row per prompt, layer and dimension.
    pub struct LastTokenHidden {
        /// Index of the prompt in the input.
        pub item: u64,
        /// 0 = the embeddings, l = the output of decoder layer l; the last one is after the
        /// final norm (transformers' `output_hidden_states`).
        pub layer: u32,
        /// Coordinate of the hidden vector.
        pub dim: u32,
        pub value: f32,
    }
}

crate::table! {
    /// `mso/activation_spaces.parquet`: overlap of two prompt sets' activation subspaces, per
    /// model, layer, energy fraction and centring.
    pub struct ActivationMso {
        pub model: String,
        /// Replicate of a replicated fine-tune; 0 for the fixed subject (base, aligned).
        pub replicate: u32,
        /// `useful-harmful_a` (the paper's comparison), `harmful_a-harmful_b` (harmful vs
        /// harmful control), `useful_1-useful_2` (two halves of the useful set: the ceiling) or
        /// `benign-harmful_a` (intent-matched: benign requests of the harmful ones' templates).
        pub pair: String,
        /// Hidden-state index: 0 the embeddings, l the output of decoder layer l.
        pub layer: u32,
        /// Whether each set's activations were mean-centred before the SVD.
        pub centered: bool,
        pub energy_frac: f64,
        /// Fewest directions of the pair's first set holding e of its energy.
        pub k_first: u64,
        /// The same for the pair's second set.
        pub k_second: u64,
        /// Hidden size.
        pub d: u64,
        pub mso: f64,
        /// max(k_first, k_second) / d.
        pub mso_random: f64,
        pub cos_mean: f64,
        pub cos_max: f64,
        /// 95% bootstrap interval of `mso` over prompts (each set's prompts resampled); null
        /// without resamples.
        pub mso_ci_low: Option<f64>,
        pub mso_ci_high: Option<f64>,
        /// `mso` minus the `harmful_a-harmful_b` control's at the same layer, energy fraction and
        /// centring (0 for the control itself).
        pub vs_control: f64,
        /// Its 95% interval, paired: both overlaps measured on the same resampled prompts.
        pub vs_control_ci_low: Option<f64>,
        pub vs_control_ci_high: Option<f64>,
        /// One-sided permutation p-value that the pair's two sets overlap less than their
        /// prompts relabelled at random (same set sizes): (1 + relabellings with MSO at most
        /// `mso`) / (1 + relabellings). Null for the useful halves and without resamples.
        pub permutation_p: Option<f64>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Table;

    /// The section of docs/tables.md that documents table `name` (headed `… — \`name\``).
    fn documented(docs: &str, name: &str) -> String {
        let heading = format!("— `{name}`\n");
        let start = docs.find(&heading).unwrap_or_else(|| panic!("docs/tables.md has no section for {name}"));
        let rest = &docs[start + heading.len()..];
        rest[..rest.find("\n### ").unwrap_or(rest.len())].to_owned()
    }

    /// Column names are a public contract: each table's section of docs/tables.md names every
    /// column, so a new or renamed column cannot land undocumented.
    #[test]
    fn the_docs_list_every_column_of_every_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/tables.md");
        let docs = std::fs::read_to_string(path).unwrap();
        let tables: [(&str, arrow::datatypes::Schema); 11] = [
            ("Example", Example::schema()),
            ("LossPoint", LossPoint::schema()),
            ("ProjectionDiagnostic", ProjectionDiagnostic::schema()),
            ("ProjectionPerTensor", ProjectionPerTensor::schema()),
            ("UpdateMso", UpdateMso::schema()),
            ("GeneratedText", GeneratedText::schema()),
            ("LastTokenLogit", LastTokenLogit::schema()),
            ("LastTokenHidden", LastTokenHidden::schema()),
            ("EvalResponse", EvalResponse::schema()),
            ("EvalSummary", EvalSummary::schema()),
            ("ActivationMso", ActivationMso::schema()),
        ];
        for (name, schema) in tables {
            let section = documented(&docs, name);
            let words: Vec<&str> = section.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
            for field in schema.fields() {
                assert!(words.contains(&field.name().as_str()), "docs/tables.md does not list {name}.{}", field.name());
            }
        }
    }
}
