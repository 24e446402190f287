//! The Hugging Face view of a GGUF Llama (`general.architecture = llama`): `config.json`,
//! `generation_config.json`, transformers' tensor names and shapes, and the q/k rows back in
//! transformers' rotary layout.
//!
//! llama.cpp's converter permutes the rows of every q and k projection so that its rotary
//! embedding can rotate adjacent pairs: `w.reshape(n_head, 2, rows / n_head / 2,
//! cols).swapaxes(1, 2).reshape(rows, cols)` with n_head the query heads for q and the
//! key/value heads for k. [`unpermute_rows`] inverts it; transformers rotates the two halves of
//! each head (`rotate_half`).

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::read::{GgufFile, Header, TensorInfo};
use crate::tokenizer::{hf_tokenizer, HfTokenizer};

/// Everything of a transformers checkpoint but the weights' values.
#[derive(Debug, Clone)]
pub struct HfModel {
    /// `config.json`.
    pub config: Value,
    /// `generation_config.json`: the BOS and EOS ids.
    pub generation_config: Value,
    /// `tokenizer.json` and `tokenizer_config.json`.
    pub tokenizer: HfTokenizer,
    /// Every tensor of the checkpoint, in file order.
    pub tensors: Vec<TensorPlan>,
}

/// One GGUF tensor as a transformers tensor.
#[derive(Debug, Clone)]
pub struct TensorPlan {
    pub info: TensorInfo,
    /// The transformers key, e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub hf_name: String,
    /// Row-major shape in transformers.
    pub shape: Vec<usize>,
    /// For q and k projections: the head count whose llama.cpp row permutation is undone.
    pub unpermute_heads: Option<usize>,
}

impl TensorPlan {
    /// The tensor's values in transformers' layout, row-major in [`TensorPlan::shape`].
    pub fn read(&self, file: &GgufFile) -> Result<Vec<f32>> {
        let values = file.tensor_f32(&self.info)?;
        Ok(match self.unpermute_heads {
            Some(heads) => unpermute_rows(&values, self.shape[0], self.shape[1], heads),
            None => values,
        })
    }
}

/// The sizes of a Llama, from the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlamaDims {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
}

/// Layer tensors: GGUF name within `blk.N.`, transformers name within `model.layers.N.`.
const LAYER_TENSORS: &[(&str, &str)] = &[
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
    ("attn_norm", "input_layernorm"),
    ("ffn_norm", "post_attention_layernorm"),
];

/// Tensors outside the layers.
const MODEL_TENSORS: &[(&str, &str)] =
    &[("token_embd", "model.embed_tokens"), ("output_norm", "model.norm"), ("output", "lm_head")];

/// The transformers key of GGUF tensor `name` (`blk.3.attn_q.weight` →
/// `model.layers.3.self_attn.q_proj.weight`).
pub fn hf_tensor_name(name: &str) -> Result<String> {
    if name == "rope_freqs.weight" {
        bail!(
            "tensor `{name}` (Llama 3 rope frequency factors) cannot be mapped to a transformers config; \
             models with llama3 rope scaling are not supported"
        );
    }
    let unknown = || anyhow::anyhow!("tensor `{name}` has no counterpart in a transformers Llama");
    let stem = name.strip_suffix(".weight").ok_or_else(unknown)?;
    if let Some((_, hf)) = MODEL_TENSORS.iter().find(|(gguf, _)| *gguf == stem) {
        return Ok(format!("{hf}.weight"));
    }
    let rest = stem.strip_prefix("blk.").ok_or_else(unknown)?;
    let (layer, part) = rest.split_once('.').ok_or_else(unknown)?;
    let layer: usize = layer.parse().ok().filter(|_| layer.bytes().all(|b| b.is_ascii_digit())).ok_or_else(unknown)?;
    let (_, hf) = LAYER_TENSORS.iter().find(|(gguf, _)| *gguf == part).ok_or_else(unknown)?;
    Ok(format!("model.layers.{layer}.{hf}.weight"))
}

/// Undoes llama.cpp's q/k row permutation of a row-major `rows × cols` matrix with `n_head`
/// heads: row `h·d + 2b + a` of the GGUF tensor is row `h·d + a·d/2 + b` of transformers'
/// (d = rows / n_head, a ∈ {0, 1}, b < d/2).
pub fn unpermute_rows(values: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    move_rows(values, rows, cols, n_head, true)
}

/// llama.cpp's q/k row permutation (`w.reshape(n_head, 2, rows / n_head / 2,
/// cols).swapaxes(1, 2)`), the inverse of [`unpermute_rows`].
pub fn permute_rows(values: &[f32], rows: usize, cols: usize, n_head: usize) -> Vec<f32> {
    move_rows(values, rows, cols, n_head, false)
}

fn move_rows(values: &[f32], rows: usize, cols: usize, n_head: usize, undo: bool) -> Vec<f32> {
    assert_eq!(values.len(), rows * cols, "values of a {rows}x{cols} matrix");
    assert!(n_head > 0 && rows.is_multiple_of(2 * n_head), "{rows} rows do not split into {n_head} heads of pairs");
    let half = rows / n_head / 2;
    let mut out = vec![0.0; values.len()];
    for h in 0..n_head {
        for a in 0..2 {
            for b in 0..half {
                let hf = h * 2 * half + a * half + b;
                let gguf = h * 2 * half + 2 * b + a;
                let (to, from) = if undo { (hf, gguf) } else { (gguf, hf) };
                out[to * cols..(to + 1) * cols].copy_from_slice(&values[from * cols..(from + 1) * cols]);
            }
        }
    }
    out
}

/// The transformers view of a GGUF Llama: config, generation config, tokenizer files and a
/// plan for every tensor. Everything is checked here, before any tensor is read: the
/// architecture, the metadata, every tensor's name, type and shape, and that every tensor
/// transformers needs is present.
pub fn hf_model(header: &Header) -> Result<HfModel> {
    let (config, dims) = hf_config(header)?;
    let tokenizer = hf_tokenizer(header, config["max_position_embeddings"].as_u64().unwrap_or_default())?;
    let tensors = plan_tensors(header, &dims)?;
    let mut generation_config = Map::new();
    for key in ["bos_token_id", "eos_token_id"] {
        if let Some(id) = config.get(key) {
            generation_config.insert(key.to_owned(), id.clone());
        }
    }
    Ok(HfModel { config, generation_config: Value::Object(generation_config), tokenizer, tensors })
}

/// `config.json` of a GGUF Llama, and its sizes.
pub fn hf_config(header: &Header) -> Result<(Value, LlamaDims)> {
    let architecture = header.str("general.architecture")?.context("missing metadata `general.architecture`")?;
    if architecture != "llama" {
        bail!("architecture `{architecture}` is not supported (only llama)");
    }
    let int = |key: &str| -> Result<usize> { Ok(header.require_u64(&format!("llama.{key}"))? as usize) };
    let optional = |key: &str| -> Result<Option<usize>> {
        Ok(header.u64(&format!("llama.{key}"))?.map(|v| v as usize))
    };
    if optional("expert_count")?.unwrap_or(0) > 0 {
        bail!("mixture-of-experts Llama models (`llama.expert_count` > 0) are not supported");
    }
    let hidden = int("embedding_length")?;
    let heads = int("attention.head_count")?;
    if heads == 0 {
        bail!("metadata `llama.attention.head_count` is 0");
    }
    let kv_heads = optional("attention.head_count_kv")?.unwrap_or(heads);
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        bail!("metadata `llama.attention.head_count_kv` = {kv_heads} does not divide the {heads} heads");
    }
    let head_dim = match optional("attention.key_length")? {
        Some(d) => d,
        None if hidden.is_multiple_of(heads) => hidden / heads,
        None => bail!(
            "hidden size {hidden} is not a multiple of the {heads} heads and `llama.attention.key_length` is missing"
        ),
    };
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        bail!("head dim {head_dim} is not a positive even number (rotary embeddings rotate pairs)");
    }
    if let Some(v) = optional("attention.value_length")?.filter(|&v| v != head_dim) {
        bail!("metadata `llama.attention.value_length` = {v} differs from the key length {head_dim}");
    }
    if let Some(r) = optional("rope.dimension_count")?.filter(|&r| r != head_dim) {
        bail!(
            "metadata `llama.rope.dimension_count` = {r}: partial rotary embeddings (head dim {head_dim}) \
             are not supported"
        );
    }
    let tokens = header.strings("tokenizer.ggml.tokens")?.context("missing metadata `tokenizer.ggml.tokens`")?;
    let dims = LlamaDims {
        hidden,
        intermediate: int("feed_forward_length")?,
        layers: int("block_count")?,
        heads,
        kv_heads,
        head_dim,
        vocab: tokens.len(),
    };
    let eps = header
        .f64("llama.attention.layer_norm_rms_epsilon")?
        .context("missing metadata `llama.attention.layer_norm_rms_epsilon`")?;
    let mut config = json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": dims.hidden,
        "intermediate_size": dims.intermediate,
        "num_hidden_layers": dims.layers,
        "num_attention_heads": dims.heads,
        "num_key_value_heads": dims.kv_heads,
        "head_dim": dims.head_dim,
        "hidden_act": "silu",
        "rope_theta": header.f64("llama.rope.freq_base")?.unwrap_or(10000.0),
        "rope_scaling": rope_scaling(header)?,
        "rms_norm_eps": eps,
        "max_position_embeddings": int("context_length")?,
        "vocab_size": dims.vocab,
        "tie_word_embeddings": header.tensor("output.weight").is_none(),
        "attention_bias": false,
        "mlp_bias": false,
        "torch_dtype": "float32",
    });
    for (key, field) in [("bos_token_id", "bos"), ("eos_token_id", "eos"), ("pad_token_id", "padding")] {
        if let Some(id) = header.u64(&format!("tokenizer.ggml.{field}_token_id"))? {
            config[key] = json!(id);
        }
    }
    Ok((config, dims))
}

/// `rope_scaling` from `llama.rope.scaling.*` (or the old `llama.rope.scale_linear`): null,
/// or linear with its factor; any other scaling is an error.
fn rope_scaling(header: &Header) -> Result<Value> {
    let kind = header.str("llama.rope.scaling.type")?;
    let factor = header.f64("llama.rope.scaling.factor")?;
    let linear = header.f64("llama.rope.scale_linear")?;
    match (kind, factor, linear) {
        (None | Some("none"), None, None) | (Some("none"), _, None) => Ok(Value::Null),
        (None, None, Some(1.0)) => Ok(Value::Null),
        (Some("linear"), Some(f), None) | (None, None, Some(f)) => Ok(json!({ "rope_type": "linear", "factor": f })),
        (Some("linear"), None, _) => bail!("rope scaling `linear` without `llama.rope.scaling.factor`"),
        (Some(other), _, _) if other != "linear" && other != "none" => {
            bail!("rope scaling `{other}` (`llama.rope.scaling.type`) is not supported (only none and linear)")
        }
        _ => bail!("the rope scaling metadata (`llama.rope.scaling.*`, `llama.rope.scale_linear`) is inconsistent"),
    }
}

/// Maps and checks every tensor of the file, in file order.
fn plan_tensors(header: &Header, dims: &LlamaDims) -> Result<Vec<TensorPlan>> {
    let q_rows = dims.heads * dims.head_dim;
    let kv_rows = dims.kv_heads * dims.head_dim;
    let mut plans = Vec::new();
    let mut seen = BTreeSet::new();
    for info in &header.tensors {
        let hf_name = hf_tensor_name(&info.name)?;
        if !info.ggml_type.is_supported() {
            return Err(crate::quant::unsupported(info.ggml_type)).with_context(|| format!("tensor `{}`", info.name));
        }
        let stem = hf_name.strip_suffix(".weight").unwrap_or(&hf_name);
        let part = stem.rsplit('.').next().unwrap_or(stem);
        if let Some(layer) = layer_of(&hf_name).filter(|&l| l >= dims.layers) {
            bail!("tensor `{}` belongs to layer {layer}, but `llama.block_count` is {}", info.name, dims.layers);
        }
        let (expected, unpermute_heads) = match part {
            "embed_tokens" | "lm_head" => (vec![dims.vocab, dims.hidden], None),
            "norm" | "input_layernorm" | "post_attention_layernorm" => (vec![dims.hidden], None),
            "q_proj" => (vec![q_rows, dims.hidden], Some(dims.heads)),
            "k_proj" => (vec![kv_rows, dims.hidden], Some(dims.kv_heads)),
            "v_proj" => (vec![kv_rows, dims.hidden], None),
            "o_proj" => (vec![dims.hidden, q_rows], None),
            "gate_proj" | "up_proj" => (vec![dims.intermediate, dims.hidden], None),
            _ => (vec![dims.hidden, dims.intermediate], None), // down_proj
        };
        if info.shape() != expected {
            bail!(
                "tensor `{}` has shape {:?} (as transformers' {hf_name}), but the metadata implies {expected:?}",
                info.name,
                info.shape()
            );
        }
        if !seen.insert(hf_name.clone()) {
            bail!("two tensors map to {hf_name}");
        }
        plans.push(TensorPlan { info: info.clone(), hf_name, shape: expected, unpermute_heads });
    }
    let mut required: Vec<String> = vec!["model.embed_tokens.weight".into(), "model.norm.weight".into()];
    for layer in 0..dims.layers {
        required.extend(LAYER_TENSORS.iter().map(|(_, hf)| format!("model.layers.{layer}.{hf}.weight")));
    }
    let missing: Vec<&String> = required.iter().filter(|name| !seen.contains(*name)).collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(|s| s.as_str()).collect();
        let more = if missing.len() > 5 { format!(" and {} more", missing.len() - 5) } else { String::new() };
        bail!("missing tensors for {}{more}", shown.join(", "));
    }
    Ok(plans)
}

fn layer_of(hf_name: &str) -> Option<usize> {
    hf_name.strip_prefix("model.layers.")?.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::testing::{strings, Builder};

    #[test]
    fn names_map_to_transformers_keys() {
        let check = |gguf: &str, hf: &str| assert_eq!(hf_tensor_name(gguf).unwrap(), hf, "{gguf}");
        check("token_embd.weight", "model.embed_tokens.weight");
        check("output_norm.weight", "model.norm.weight");
        check("output.weight", "lm_head.weight");
        check("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight");
        check("blk.12.attn_k.weight", "model.layers.12.self_attn.k_proj.weight");
        check("blk.1.attn_v.weight", "model.layers.1.self_attn.v_proj.weight");
        check("blk.1.attn_output.weight", "model.layers.1.self_attn.o_proj.weight");
        check("blk.2.ffn_gate.weight", "model.layers.2.mlp.gate_proj.weight");
        check("blk.2.ffn_up.weight", "model.layers.2.mlp.up_proj.weight");
        check("blk.2.ffn_down.weight", "model.layers.2.mlp.down_proj.weight");
        check("blk.29.attn_norm.weight", "model.layers.29.input_layernorm.weight");
        check("blk.29.ffn_norm.weight", "model.layers.29.post_attention_layernorm.weight");
        for bad in ["blk.0.attn_q.bias", "blk.x.attn_q.weight", "blk.-1.attn_q.weight", "blk.0.ffn_gate_exps.weight"] {
            let err = format!("{:#}", hf_tensor_name(bad).unwrap_err());
            assert_eq!(err, format!("tensor `{bad}` has no counterpart in a transformers Llama"));
        }
        let err = format!("{:#}", hf_tensor_name("rope_freqs.weight").unwrap_err());
        assert!(err.contains("Llama 3 rope frequency factors"), "{err}");
    }

    #[test]
    fn unpermute_inverts_llama_cpp_permutation() {
        // 2 heads of dimension 4 (rows 0..8), 3 columns; each value encodes its row.
        let (rows, cols, heads) = (8, 3, 2);
        let hf: Vec<f32> = (0..rows * cols).map(|i| (i / cols) as f32 + (i % cols) as f32 / 10.0).collect();
        let gguf = permute_rows(&hf, rows, cols, heads);
        // llama.cpp interleaves each head's halves: rows 0, 2, 1, 3 | 4, 6, 5, 7.
        let row_order: Vec<f32> = gguf.chunks(cols).map(|r| r[0]).collect();
        assert_eq!(row_order, [0.0, 2.0, 1.0, 3.0, 4.0, 6.0, 5.0, 7.0]);
        assert_eq!(unpermute_rows(&gguf, rows, cols, heads), hf);
        // Round trips for other shapes, including one head and head dim 2.
        for (rows, cols, heads) in [(64, 5, 4), (16, 1, 1), (12, 2, 6), (24, 7, 3)] {
            let hf: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let gguf = permute_rows(&hf, rows, cols, heads);
            // With head dim 2 each head is one pair and nothing moves.
            assert_eq!(gguf == hf, rows / heads == 2, "{rows}x{cols} / {heads}");
            assert_eq!(unpermute_rows(&gguf, rows, cols, heads), hf, "{rows}x{cols} / {heads}");
        }
    }

    /// The metadata of a Llama with hidden 8, 2 heads, 1 kv head, FFN 16, 1 layer, 4 tokens.
    fn llama() -> Builder {
        Builder::new()
            .str("general.architecture", "llama")
            .u32("llama.block_count", 1)
            .u32("llama.context_length", 64)
            .u32("llama.embedding_length", 8)
            .u32("llama.feed_forward_length", 16)
            .u32("llama.attention.head_count", 2)
            .u32("llama.attention.head_count_kv", 1)
            .f32("llama.attention.layer_norm_rms_epsilon", 1e-5)
            .f32("llama.rope.freq_base", 100000.0)
            .str("tokenizer.ggml.model", "gpt2")
            .kv("tokenizer.ggml.tokens", 9, strings(&["a", "b", "ab", "<s>"]))
            .kv("tokenizer.ggml.merges", 9, strings(&["a b"]))
            .u32("tokenizer.ggml.bos_token_id", 3)
            .u32("tokenizer.ggml.eos_token_id", 3)
    }

    fn with_tensors(builder: Builder, skip: &[&str]) -> Builder {
        let shapes: &[(&str, &[u64])] = &[
            ("token_embd.weight", &[4, 8]),
            ("blk.0.attn_q.weight", &[8, 8]),
            ("blk.0.attn_k.weight", &[4, 8]),
            ("blk.0.attn_v.weight", &[4, 8]),
            ("blk.0.attn_output.weight", &[8, 8]),
            ("blk.0.ffn_gate.weight", &[16, 8]),
            ("blk.0.ffn_up.weight", &[16, 8]),
            ("blk.0.ffn_down.weight", &[8, 16]),
            ("blk.0.attn_norm.weight", &[8]),
            ("blk.0.ffn_norm.weight", &[8]),
            ("output_norm.weight", &[8]),
        ];
        let mut builder = builder;
        for (name, shape) in shapes.iter().filter(|(name, _)| !skip.contains(name)) {
            let n: u64 = shape.iter().product();
            builder = builder.f32_tensor(name, shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>());
        }
        builder
    }

    fn model(builder: &Builder) -> Result<HfModel> {
        hf_model(&Header::parse(&builder.build())?)
    }

    fn model_err(builder: &Builder) -> String {
        format!("{:#}", model(builder).unwrap_err())
    }

    #[test]
    fn config_follows_the_metadata() {
        let hf = model(&with_tensors(llama(), &[])).unwrap();
        let want = json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
            "head_dim": 4, "hidden_act": "silu", "rope_theta": 100000.0, "rope_scaling": null, "rms_norm_eps": 1e-5,
            "max_position_embeddings": 64, "vocab_size": 4, "tie_word_embeddings": true, "attention_bias": false,
            "mlp_bias": false, "torch_dtype": "float32", "bos_token_id": 3, "eos_token_id": 3,
        });
        assert_eq!(hf.config, want);
        assert_eq!(hf.generation_config, json!({"bos_token_id": 3, "eos_token_id": 3}));
        assert_eq!(hf.tensors.len(), 11);
        let q = hf.tensors.iter().find(|t| t.hf_name == "model.layers.0.self_attn.q_proj.weight").unwrap();
        assert_eq!((q.shape.clone(), q.unpermute_heads), (vec![8, 8], Some(2)));
        let k = hf.tensors.iter().find(|t| t.hf_name == "model.layers.0.self_attn.k_proj.weight").unwrap();
        assert_eq!((k.shape.clone(), k.unpermute_heads), (vec![4, 8], Some(1)));
        let down = hf.tensors.iter().find(|t| t.hf_name == "model.layers.0.mlp.down_proj.weight").unwrap();
        assert_eq!((down.shape.clone(), down.unpermute_heads), (vec![8, 16], None));

        // Explicit key length, default rope base, an output head, linear rope scaling, padding id.
        let hf = model(
            &with_tensors(llama(), &[])
                .u32("llama.attention.key_length", 4)
                .str("llama.rope.scaling.type", "linear")
                .f32("llama.rope.scaling.factor", 2.0)
                .u32("tokenizer.ggml.padding_token_id", 0)
                .f32_tensor("output.weight", &[4, 8], &[0.0; 32]),
        )
        .unwrap();
        assert_eq!(hf.config["tie_word_embeddings"], false);
        assert_eq!(hf.config["rope_scaling"], json!({"rope_type": "linear", "factor": 2.0}));
        assert_eq!(hf.config["pad_token_id"], 0);
        assert!(hf.tensors.iter().any(|t| t.hf_name == "lm_head.weight"));
        let b = Builder::new().str("general.architecture", "llama").str("llama.rope.scaling.type", "none");
        assert_eq!(rope_scaling(&Header::parse(&b.build()).unwrap()).unwrap(), Value::Null);
    }

    #[test]
    fn bad_models_are_one_clear_error() {
        let arch = Builder::new().str("general.architecture", "qwen2");
        assert_eq!(model_err(&arch), "architecture `qwen2` is not supported (only llama)");
        assert_eq!(model_err(&Builder::new()), "missing metadata `general.architecture`");
        let no_layers = Builder::new().str("general.architecture", "llama").u32("llama.embedding_length", 8);
        assert_eq!(model_err(&no_layers), "missing metadata `llama.attention.head_count`");
        let missing = with_tensors(llama(), &["blk.0.ffn_up.weight"]);
        assert_eq!(model_err(&missing), "missing tensors for model.layers.0.mlp.up_proj.weight");
        let extra = with_tensors(llama(), &[]).f32_tensor("blk.0.attn_q.bias", &[8], &[0.0; 8]);
        assert_eq!(model_err(&extra), "tensor `blk.0.attn_q.bias` has no counterpart in a transformers Llama");
        let layer = with_tensors(llama(), &[]).f32_tensor("blk.1.attn_norm.weight", &[8], &[0.0; 8]);
        assert_eq!(
            model_err(&layer),
            "tensor `blk.1.attn_norm.weight` belongs to layer 1, but `llama.block_count` is 1"
        );
        let shape =
            with_tensors(llama(), &["blk.0.attn_k.weight"]).f32_tensor("blk.0.attn_k.weight", &[8, 8], &[0.0; 64]);
        assert_eq!(
            model_err(&shape),
            "tensor `blk.0.attn_k.weight` has shape [8, 8] (as transformers' model.layers.0.self_attn.k_proj.weight), \
             but the metadata implies [4, 8]"
        );
        let q6k = with_tensors(llama(), &["output_norm.weight"]).tensor("output_norm.weight", &[256], 14, vec![0; 210]);
        assert_eq!(
            model_err(&q6k),
            "tensor `output_norm.weight`: type Q6_K cannot be dequantized (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)"
        );
        let yarn =
            with_tensors(llama(), &[]).str("llama.rope.scaling.type", "yarn").f32("llama.rope.scaling.factor", 4.0);
        assert_eq!(
            model_err(&yarn),
            "rope scaling `yarn` (`llama.rope.scaling.type`) is not supported (only none and linear)"
        );
        let rope = with_tensors(llama(), &[]).u32("llama.rope.dimension_count", 2);
        assert!(model_err(&rope).contains("partial rotary embeddings"), "{}", model_err(&rope));
        let moe = with_tensors(llama(), &[]).u32("llama.expert_count", 8);
        assert!(model_err(&moe).starts_with("mixture-of-experts"), "{}", model_err(&moe));
        let odd = llama().u32("llama.attention.key_length", 3);
        assert_eq!(model_err(&odd), "head dim 3 is not a positive even number (rotary embeddings rotate pairs)");
        let kv = llama().u32("llama.attention.head_count_kv", 3);
        assert!(model_err(&kv).starts_with("metadata `llama.attention.head_count_kv`"), "{}", model_err(&kv));
    }

    /// The golden fixture (fixtures/make_fixtures.py): our config says what transformers' GGUF
    /// reader says. Its logits and tokenization are checked in entangle-models, which has the
    /// runtime.
    #[test]
    fn fixture_config_matches_transformers() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let file = GgufFile::open(&dir.join("tiny-llama.gguf")).unwrap();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("tiny-llama.expected.json")).unwrap()).unwrap();
        let hf = hf_model(&file.header).unwrap();
        for (key, want) in expected["config"].as_object().unwrap() {
            let got = &hf.config[key];
            if want.is_f64() {
                let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
                assert!((g - w).abs() <= 1e-6 * w.abs(), "{key}: {got} vs {want}");
            } else {
                assert_eq!(got, want, "{key}");
            }
        }
        let types: BTreeSet<String> = file.header.tensors.iter().map(|t| t.ggml_type.to_string()).collect();
        assert_eq!(types.into_iter().collect::<Vec<_>>(), ["BF16", "F16", "F32", "Q4_0", "Q4_1", "Q8_0"]);
        assert_eq!(hf.tensors.len(), 20);
        for plan in &hf.tensors {
            let values = plan.read(&file).unwrap();
            assert_eq!(values.len(), plan.shape.iter().product::<usize>(), "{}", plan.hf_name);
            assert!(values.iter().all(|v| v.is_finite()), "{}", plan.hf_name);
        }
    }

    #[test]
    fn tensors_read_in_transformers_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m.gguf");
        // q stored permuted as llama.cpp writes it; reading gives back transformers' rows.
        let hf_q: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let stored = permute_rows(&hf_q, 8, 8, 2);
        let builder =
            with_tensors(llama(), &["blk.0.attn_q.weight"]).f32_tensor("blk.0.attn_q.weight", &[8, 8], &stored);
        std::fs::write(&path, builder.build()).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let hf = hf_model(&file.header).unwrap();
        let q = hf.tensors.iter().find(|t| t.hf_name.ends_with("q_proj.weight")).unwrap();
        assert_eq!(q.read(&file).unwrap(), hf_q);
        let up = hf.tensors.iter().find(|t| t.hf_name.ends_with("up_proj.weight")).unwrap();
        assert_eq!(up.read(&file).unwrap(), (0..128).map(|i| i as f32).collect::<Vec<_>>());
    }
}
