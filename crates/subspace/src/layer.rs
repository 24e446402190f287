//! Which part of the model a tensor belongs to, for per-layer grouping of diagnostics and
//! overlaps.

use std::fmt;

/// The part of a decoder-only model a tensor belongs to, ordered as data flows through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// Token embeddings (`…embed_tokens…`).
    Embed,
    /// Decoder layer `i` (`…layers.<i>.…`).
    Decoder(usize),
    /// The final norm (`model.norm.…`).
    Norm,
    /// The output head (`lm_head.…`).
    Head,
    /// Anything else.
    Other,
}

impl Layer {
    /// The layer of tensor `name`: the decoder layer index parsed from a `layers.<i>.` segment
    /// (as in `model.layers.3.mlp.up_proj.weight`), else the embedding, final norm or head by
    /// their Hugging Face names.
    pub fn of(name: &str) -> Layer {
        let parts: Vec<&str> = name.split('.').collect();
        let decoder = parts
            .windows(3)
            .find(|w| w[0] == "layers")
            .and_then(|w| w[1].parse::<usize>().ok());
        if let Some(index) = decoder {
            return Layer::Decoder(index);
        }
        if parts.iter().any(|p| p.starts_with("embed")) {
            Layer::Embed
        } else if parts.first() == Some(&"lm_head") {
            Layer::Head
        } else if parts.len() >= 2 && parts[parts.len() - 2] == "norm" {
            Layer::Norm
        } else {
            Layer::Other
        }
    }
}

impl fmt::Display for Layer {
    /// `0`, `1`, … for decoder layers; `embed`, `norm`, `head` or `other` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Embed => f.write_str("embed"),
            Layer::Decoder(index) => write!(f, "{index}"),
            Layer::Norm => f.write_str("norm"),
            Layer::Head => f.write_str("head"),
            Layer::Other => f.write_str("other"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, expected: &str) {
        assert_eq!(Layer::of(name).to_string(), expected, "{name}");
    }

    #[test]
    fn layers_of_llama_style_names() {
        check("model.embed_tokens.weight", "embed");
        check("model.layers.0.self_attn.q_proj.weight", "0");
        check("model.layers.12.mlp.down_proj.weight", "12");
        check("model.layers.3.input_layernorm.weight", "3");
        check("model.norm.weight", "norm");
        check("lm_head.weight", "head");
        check("model.rotary_emb.inv_freq", "other");
        check("model.layers.x.weight", "other");
    }

    #[test]
    fn layers_sort_in_model_order() {
        let mut layers = [Layer::Head, Layer::Decoder(10), Layer::Norm, Layer::Decoder(2), Layer::Embed];
        layers.sort();
        assert_eq!(layers, [Layer::Embed, Layer::Decoder(2), Layer::Decoder(10), Layer::Norm, Layer::Head]);
    }
}
