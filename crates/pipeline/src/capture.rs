//! `[capture]`: experiment 3, activation capture and activation-space overlap (METHOD.md).

use serde::{Deserialize, Serialize};

use crate::PromptFormat;

/// `[capture]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaptureConfig {
    /// Models whose activations are captured and compared (the paper's four).
    pub models: Vec<String>,
    /// Prompt sets (prepared data sets) of the three roles of the paper's comparison.
    pub useful: String,
    pub harmful_a: String,
    pub harmful_b: String,
    /// The intent-matched contrast to `harmful_a`: benign and alarming-but-benign requests made
    /// from the same templates (the tiny study's `prompts_benign`). Without it, only the paper's
    /// pair, which differs in topic and form as much as in intent, is compared.
    pub benign: Option<String>,
    /// How prompts are laid out for capture; the pipeline's `[prompt] format` when unset (the
    /// paper pipelines: `plain`, raw text, as the authors).
    pub format: Option<PromptFormat>,
    /// Bootstrap resamples of the prompts behind each overlap's 95% interval, and random
    /// relabellings behind each pair's permutation test (0: neither).
    pub resamples: usize,
    /// Use at most this many prompts of each set (all when unset).
    pub limit: Option<usize>,
    /// Prompts run together.
    pub batch_size: usize,
    /// The compared layers: hidden states from this share of the depth …
    pub depth_from: f64,
    /// … to this share (inclusive), e.g. 65% to 90%.
    pub depth_to: f64,
    /// Energy fractions e: each basis keeps the fewest directions holding e of the energy.
    pub energy_fractions: Vec<f64>,
    /// Also compare mean-centred activations (rows `centered = true`).
    pub centered: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            models: ["base", "aligned", "useful", "contaminated"].map(String::from).to_vec(),
            useful: "prompts_useful".to_owned(),
            harmful_a: "prompts_harmful_a".to_owned(),
            harmful_b: "prompts_harmful_b".to_owned(),
            benign: None,
            format: None,
            resamples: 200,
            limit: None,
            batch_size: 32,
            depth_from: 0.65,
            depth_to: 0.90,
            energy_fractions: vec![0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
            centered: true,
        }
    }
}

impl CaptureConfig {
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        if self.batch_size == 0 || self.limit == Some(0) {
            anyhow::bail!("capture.batch_size / limit: expected at least 1");
        }
        Ok(())
    }

    /// Hidden-state indices in the depth window of a model with `num_layers` decoder layers
    /// (index l is the output of layer l; 0 the embeddings). Never empty: at least the layer
    /// nearest the window's start.
    pub fn layers(&self, num_layers: usize) -> Vec<usize> {
        let from = (self.depth_from * num_layers as f64).ceil() as usize;
        let to = (self.depth_to * num_layers as f64).floor() as usize;
        let from = from.min(num_layers);
        (from..=to.max(from).min(num_layers)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_window_follows_the_paper() {
        let config = CaptureConfig::default();
        // Llama-3.2-1B: 16 layers → 65% = 10.4 → 11, 90% = 14.4 → 14.
        assert_eq!(config.layers(16), vec![11, 12, 13, 14]);
        assert_eq!(config.layers(32), (21..=28).collect::<Vec<_>>());
        assert_eq!(config.layers(2), vec![2]);
    }
}
