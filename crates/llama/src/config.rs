//! `config.json` of the Llama family, as transformers writes it, resolved into the plain
//! numbers the model needs.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// The architectures this crate implements; they differ only in biases and attention windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// LlamaForCausalLM: optional biases (`attention_bias`, `mlp_bias`), rope scaling.
    Llama,
    /// MistralForCausalLM: no biases, a sliding attention window on every layer.
    Mistral,
    /// Qwen2ForCausalLM: q/k/v biases, a sliding window on layers from `max_window_layers`
    /// when `use_sliding_window`.
    Qwen2,
}

/// How rotary position embeddings are computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// Every frequency divided by `factor`.
    Linear {
        factor: f64,
    },
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

/// A resolved model configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub variant: Variant,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub tie_word_embeddings: bool,
    /// Biases on the q, k and v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub o_bias: bool,
    /// Biases on the MLP projections.
    pub mlp_bias: bool,
    /// Standard deviation of freshly initialised weights.
    pub initializer_range: f64,
    /// Embedding row kept at zero by a fresh initialisation.
    pub pad_token_id: Option<i64>,
    /// Sliding attention window of each layer, `None` for full attention.
    pub layer_windows: Vec<Option<i64>>,
}

/// The fields shared by the three families; optional ones take transformers' defaults.
#[derive(Deserialize)]
struct Raw {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    vocab_size: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    #[serde(default = "default_rms_norm_eps")]
    rms_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    hidden_act: String,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default = "default_initializer_range")]
    initializer_range: f64,
    pad_token_id: Option<i64>,
    max_position_embeddings: Option<usize>,
    rope_theta: Option<f64>,
    rope_scaling: Option<Value>,
    rope_parameters: Option<Value>,
    #[serde(default)]
    use_sliding_window: bool,
    max_window_layers: Option<usize>,
    layer_types: Option<Vec<String>>,
}

fn default_rms_norm_eps() -> f64 {
    1e-6
}

fn default_hidden_act() -> String {
    "silu".to_owned()
}

fn default_initializer_range() -> f64 {
    0.02
}

impl Config {
    /// Resolves `config.json` for `variant`. A missing required field, an activation other
    /// than SiLU, heads that do not divide, or an unsupported rope type is an error.
    pub fn from_json(variant: Variant, json: &Value) -> Result<Config> {
        let raw: Raw = serde_json::from_value(json.clone()).context("invalid config.json")?;
        if raw.hidden_act != "silu" {
            bail!("invalid config.json: hidden_act `{}` is not supported (only silu)", raw.hidden_act);
        }
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if raw.num_attention_heads == 0 || num_kv_heads == 0 || !raw.num_attention_heads.is_multiple_of(num_kv_heads) {
            bail!(
                "invalid config.json: num_attention_heads ({}) must be a positive multiple of num_key_value_heads ({num_kv_heads})",
                raw.num_attention_heads
            );
        }
        let head_dim = raw.head_dim.unwrap_or(raw.hidden_size / raw.num_attention_heads);
        let (rope_theta, rope_scaling) = rope(&raw)?;
        let (qkv_bias, o_bias, mlp_bias) = match variant {
            Variant::Llama => (raw.attention_bias, raw.attention_bias, raw.mlp_bias),
            Variant::Mistral => (false, false, false),
            Variant::Qwen2 => (true, false, false),
        };
        let layer_windows = layer_windows(variant, &raw, json)?;
        Ok(Config {
            variant,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim,
            vocab_size: raw.vocab_size,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta,
            rope_scaling,
            tie_word_embeddings: raw.tie_word_embeddings,
            qkv_bias,
            o_bias,
            mlp_bias,
            initializer_range: raw.initializer_range,
            pad_token_id: raw.pad_token_id,
            layer_windows,
        })
    }
}

/// The rope base and scaling from transformers 5's `rope_parameters` or the older
/// `rope_theta` plus `rope_scaling`.
fn rope(raw: &Raw) -> Result<(f64, RopeScaling)> {
    let params = raw.rope_parameters.as_ref().or(raw.rope_scaling.as_ref()).filter(|p| !p.is_null());
    let number = |key: &str| params.and_then(|p| p.get(key)).and_then(Value::as_f64);
    let theta = number("rope_theta").or(raw.rope_theta).unwrap_or(10_000.0);
    let kind =
        params.and_then(|p| p.get("rope_type").or_else(|| p.get("type"))).and_then(Value::as_str).unwrap_or("default");
    let required =
        |key: &str| number(key).with_context(|| format!("invalid config.json: rope type `{kind}` needs `{key}`"));
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear { factor: required("factor")? },
        "llama3" => RopeScaling::Llama3 {
            factor: required("factor")?,
            low_freq_factor: required("low_freq_factor")?,
            high_freq_factor: required("high_freq_factor")?,
            original_max_position_embeddings: number("original_max_position_embeddings")
                .or(raw.max_position_embeddings.map(|n| n as f64))
                .context("invalid config.json: rope type `llama3` needs `original_max_position_embeddings`")?,
        },
        other => {
            bail!("invalid config.json: rope type `{other}` is not supported (supported: default, linear, llama3)")
        }
    };
    Ok((theta, scaling))
}

/// Each layer's sliding window, following transformers: Mistral windows every layer by
/// `sliding_window` (4096 when absent, none when null); Qwen2 windows the layers that
/// `layer_types` marks `sliding_attention`, by default those from `max_window_layers` on when
/// `use_sliding_window`; Llama never windows.
fn layer_windows(variant: Variant, raw: &Raw, json: &Value) -> Result<Vec<Option<i64>>> {
    let window = match json.get("sliding_window") {
        None => Some(4096),
        Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().context("invalid config.json: sliding_window must be an integer or null")?),
    };
    let n = raw.num_hidden_layers;
    Ok(match variant {
        Variant::Llama => vec![None; n],
        Variant::Mistral => vec![window; n],
        Variant::Qwen2 => {
            let window = window.filter(|_| raw.use_sliding_window);
            let sliding: Vec<bool> = match &raw.layer_types {
                Some(types) if types.len() == n => types.iter().map(|t| t == "sliding_attention").collect(),
                Some(types) => bail!("invalid config.json: {} layer_types for {n} layers", types.len()),
                None => (0..n).map(|i| i >= raw.max_window_layers.unwrap_or(28)).collect(),
            };
            sliding.into_iter().map(|s| window.filter(|_| s)).collect()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100
        })
    }

    fn with(extra: Value) -> Value {
        let mut config = base();
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    }

    fn check_err(variant: Variant, config: Value, needle: &str) {
        let err = format!("{:#}", Config::from_json(variant, &config).unwrap_err());
        assert!(err.contains(needle), "`{needle}` not in: {err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn defaults_follow_transformers() {
        let c = Config::from_json(Variant::Llama, &base()).unwrap();
        assert_eq!((c.head_dim, c.num_kv_heads, c.rms_norm_eps, c.rope_theta), (16, 2, 1e-6, 10_000.0));
        assert_eq!((c.qkv_bias, c.o_bias, c.mlp_bias, c.tie_word_embeddings), (false, false, false, false));
        assert_eq!(c.rope_scaling, RopeScaling::None);
        assert_eq!(c.layer_windows, [None, None]);
        let q = Config::from_json(Variant::Qwen2, &base()).unwrap();
        assert_eq!((q.qkv_bias, q.o_bias), (true, false));
        assert_eq!(q.layer_windows, [None, None]);
        let m = Config::from_json(Variant::Mistral, &base()).unwrap();
        assert_eq!(m.layer_windows, [Some(4096), Some(4096)]);
        let m = Config::from_json(Variant::Mistral, &with(json!({"sliding_window": null}))).unwrap();
        assert_eq!(m.layer_windows, [None, None]);
    }

    #[test]
    fn rope_comes_from_either_config_style() {
        let old = with(json!({"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 32.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}));
        let new = with(json!({"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}));
        let want = RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        };
        for config in [old, new] {
            let c = Config::from_json(Variant::Llama, &config).unwrap();
            assert_eq!((c.rope_theta, c.rope_scaling), (500000.0, want));
        }
        let linear = with(json!({"rope_scaling": {"type": "linear", "factor": 2.0}}));
        assert_eq!(
            Config::from_json(Variant::Llama, &linear).unwrap().rope_scaling,
            RopeScaling::Linear { factor: 2.0 }
        );
    }

    #[test]
    fn qwen2_windows_upper_layers_when_enabled() {
        let config = with(json!({"use_sliding_window": true, "sliding_window": 8, "max_window_layers": 1}));
        assert_eq!(Config::from_json(Variant::Qwen2, &config).unwrap().layer_windows, [None, Some(8)]);
        let typed = with(json!({"use_sliding_window": true, "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"]}));
        assert_eq!(Config::from_json(Variant::Qwen2, &typed).unwrap().layer_windows, [Some(8), None]);
    }

    #[test]
    fn bad_configs_are_one_clear_error() {
        let mut missing = base();
        missing.as_object_mut().unwrap().remove("hidden_size");
        check_err(Variant::Llama, missing, "invalid config.json: missing field `hidden_size`");
        check_err(Variant::Llama, with(json!({"hidden_act": "gelu"})), "hidden_act `gelu` is not supported");
        check_err(Variant::Llama, with(json!({"num_key_value_heads": 3})), "must be a positive multiple");
        check_err(
            Variant::Llama,
            with(json!({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}})),
            "rope type `yarn` is not supported",
        );
        check_err(
            Variant::Llama,
            with(json!({"rope_scaling": {"rope_type": "llama3", "factor": 4.0}})),
            "needs `low_freq_factor`",
        );
        check_err(Variant::Llama, with(json!({"hidden_size": "big"})), "invalid config.json: invalid type");
    }
}
