//! The decoder shared by Llama, Mistral and Qwen2: embeddings, pre-norm decoder layers
//! (grouped-query self-attention with rotary positions, SwiGLU MLP), a final RMSNorm and the
//! output projection, with parameters named by their Hugging Face keys. A padded batch runs
//! every per-token product on its real tokens only ([`Packing`]).

use anyhow::{bail, Context, Result};
use entangle_draw::{gaussian, tensor_rng};
use entangle_model::{
    attend, attention_mask, linear, packed, unpacked, with_pads, CausalLm, Dims, ForwardInput, ForwardOutput, KvCache, Logits,
    Packing, Placement,
};
use tch::nn::{Path, VarStore};
use tch::{Kind, Tensor};

use crate::config::Config;
use crate::rope;

/// How new parameters are filled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Left uninitialised: every value is about to be loaded.
    Empty,
    /// As transformers initialises a new model: weights normal(0, initializer_range), biases
    /// zero, norm weights one, the padding embedding row zero. Each weight is drawn from this seed
    /// and its own name ([`entangle_draw::tensor_rng`]), so the same seed gives the same model
    /// on every device and whatever else uses libtorch's generator.
    Fresh { seed: i64 },
}

/// What one parameter starts as.
#[derive(Debug, Clone, Copy)]
enum Start {
    Normal,
    Zeros,
    Ones,
}

/// Creates parameters under a path, filled according to an [`Init`].
struct Params<'a> {
    init: Init,
    std: f64,
    placement: Placement,
    path: Path<'a>,
}

impl<'a> Params<'a> {
    fn sub(&self, name: &str) -> Params<'a> {
        Params { path: self.path.sub(name), ..*self }
    }

    fn param(&self, name: &str, dims: &[usize], start: Start) -> Result<Tensor> {
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let options = (self.placement.kind, self.placement.device);
        let tensor = match (self.init, start) {
            (Init::Empty, _) => Tensor::f_empty(dims.as_slice(), options)?,
            (Init::Fresh { seed }, Start::Normal) => {
                let mut rng = tensor_rng(seed as u64, "init", &self.path.path(name));
                let values = gaussian(&dims, Kind::Float, &mut rng)?.f_mul_scalar(self.std)?;
                values.f_to_kind(self.placement.kind)?.f_to(self.placement.device)?
            }
            (Init::Fresh { .. }, Start::Zeros) => Tensor::f_zeros(dims.as_slice(), options)?,
            (Init::Fresh { .. }, Start::Ones) => Tensor::f_ones(dims.as_slice(), options)?,
        };
        Ok(self.path.add(name, tensor, true))
    }

    fn linear(&self, name: &str, inputs: usize, outputs: usize, bias: bool) -> Result<Linear> {
        let p = self.sub(name);
        let weight = p.param("weight", &[outputs, inputs], Start::Normal)?;
        let bias = if bias { Some(p.param("bias", &[outputs], Start::Zeros)?) } else { None };
        Ok(Linear { weight, bias })
    }

    fn norm(&self, name: &str, size: usize) -> Result<Tensor> {
        self.sub(name).param("weight", &[size], Start::Ones)
    }
}

#[derive(Debug)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        linear(x, &self.weight, self.bias.as_ref())
    }
}

#[derive(Debug)]
struct Layer {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_attention_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// A Llama-family causal language model.
#[derive(Debug)]
pub struct Llama {
    json: serde_json::Value,
    config: Config,
    vs: VarStore,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    /// The embedding matrix itself when embeddings are tied.
    lm_head: Tensor,
    inv_freq: Tensor,
}

impl Llama {
    /// A model of `config` (resolved from `json`) at `placement`, its parameters filled per
    /// `init`.
    pub fn new(json: &serde_json::Value, config: Config, placement: Placement, init: Init) -> Result<Llama> {
        let mut vs = VarStore::new(placement.device);
        vs.set_kind(placement.kind);
        let root = Params { init, std: config.initializer_range, placement, path: vs.root() };
        let (embed, layers, norm, lm_head) = {
            let model = root.sub("model");
            let embed =
                model.sub("embed_tokens").param("weight", &[config.vocab_size, config.hidden_size], Start::Normal)?;
            if let (Init::Fresh { .. }, Some(pad)) = (init, config.pad_token_id) {
                if (0..config.vocab_size as i64).contains(&pad) {
                    tch::no_grad(|| embed.f_get(pad)?.f_zero_().map(drop)).context("zeroing the padding embedding")?;
                }
            }
            let layers = (0..config.num_layers)
                .map(|i| layer(&model.sub("layers").sub(&i.to_string()), &config))
                .collect::<Result<Vec<_>>>()?;
            let norm = model.norm("norm", config.hidden_size)?;
            let lm_head = if config.tie_word_embeddings {
                embed.shallow_clone()
            } else {
                root.sub("lm_head").param("weight", &[config.vocab_size, config.hidden_size], Start::Normal)?
            };
            (embed, layers, norm, lm_head)
        };
        let inv_freq = rope::inv_freq(config.head_dim, config.rope_theta, config.rope_scaling, placement.device)?;
        Ok(Llama { json: json.clone(), config, vs, embed, layers, norm, lm_head, inv_freq })
    }

    /// Checkpoint tensors that are legitimately not parameters: rotary buffers some older
    /// checkpoints saved, and the output projection of a model whose embeddings are tied.
    pub fn ignored(&self, name: &str) -> bool {
        name.ends_with("rotary_emb.inv_freq") || (self.config.tie_word_embeddings && name == "lm_head.weight")
    }

    /// Decoder layer `index` over `h` (`[batch, tokens, hidden]`, or `[real, hidden]` when the
    /// pass packs), attending under `mask` (causal when `None`) and appending to `cache` when
    /// given.
    fn layer_forward(
        &self,
        index: usize,
        h: &Tensor,
        pass: &Pass,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let c = &self.config;
        let layer = &self.layers[index];
        let heads = |x: Tensor, n: usize| -> Result<Tensor> {
            let x = unpacked(pass.packing, x)?;
            Ok(x.f_view([pass.batch, pass.tokens, n as i64, c.head_dim as i64])?.f_transpose(1, 2)?)
        };
        let x = rms_norm(h, &layer.input_norm, c.rms_norm_eps)?;
        let q = heads(layer.q.forward(&x)?, c.num_heads)?;
        let k = heads(layer.k.forward(&x)?, c.num_kv_heads)?;
        let v = heads(layer.v.forward(&x)?, c.num_kv_heads)?;
        let (cos, sin) = &pass.cos_sin;
        let q = rope::apply(&q, cos, sin)?;
        let k = rope::apply(&k, cos, sin)?;
        let (k, v) = match cache {
            Some(cache) => cache.append(index, &k, &v)?,
            None => (k, v),
        };
        let attended = packed(pass.packing, attend(&q, &k, &v, mask)?)?;
        let h = h.f_add(&layer.o.forward(&attended)?)?;
        let x = rms_norm(&h, &layer.post_attention_norm, c.rms_norm_eps)?;
        let mlp = layer.down.forward(&layer.gate.forward(&x)?.f_silu()?.f_mul(&layer.up.forward(&x)?)?)?;
        Ok(h.f_add(&mlp)?)
    }
}

/// What every decoder layer of one forward pass shares: the batch's shape, the rotary tables
/// of its positions, and its packing when it is padded.
struct Pass<'a> {
    batch: i64,
    tokens: i64,
    cos_sin: (Tensor, Tensor),
    packing: Option<&'a Packing>,
}

fn layer(p: &Params, c: &Config) -> Result<Layer> {
    let attn = p.sub("self_attn");
    let mlp = p.sub("mlp");
    let (h, q_out, kv_out) = (c.hidden_size, c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
    Ok(Layer {
        input_norm: p.norm("input_layernorm", h)?,
        q: attn.linear("q_proj", h, q_out, c.qkv_bias)?,
        k: attn.linear("k_proj", h, kv_out, c.qkv_bias)?,
        v: attn.linear("v_proj", h, kv_out, c.qkv_bias)?,
        o: attn.linear("o_proj", q_out, h, c.o_bias)?,
        post_attention_norm: p.norm("post_attention_layernorm", h)?,
        gate: mlp.linear("gate_proj", h, c.intermediate_size, c.mlp_bias)?,
        up: mlp.linear("up_proj", h, c.intermediate_size, c.mlp_bias)?,
        down: mlp.linear("down_proj", c.intermediate_size, h, c.mlp_bias)?,
    })
}

/// transformers' RMSNorm: normalised in f32, cast back, then scaled by `weight`.
fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let kind = x.kind();
    let x32 = x.f_to_kind(Kind::Float)?;
    let variance = x32.f_pow_tensor_scalar(2)?.f_mean_dim([-1i64].as_slice(), true, Kind::Float)?;
    let normed = x32.f_mul(&variance.f_add_scalar(eps)?.f_rsqrt()?)?.f_to_kind(kind)?;
    Ok(weight.f_mul(&normed)?)
}

impl CausalLm for Llama {
    fn config(&self) -> &serde_json::Value {
        &self.json
    }

    fn dims(&self) -> Dims {
        let c = &self.config;
        Dims {
            num_layers: c.num_layers,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_heads: c.num_heads,
            num_kv_heads: c.num_kv_heads,
            head_dim: c.head_dim,
            vocab_size: c.vocab_size,
        }
    }

    fn var_store(&self) -> &VarStore {
        &self.vs
    }

    fn var_store_mut(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    fn forward(&self, input: &ForwardInput, mut cache: Option<&mut KvCache>) -> Result<ForwardOutput> {
        let device = self.vs.device();
        let [batch, tokens] = input.input_ids.size()[..] else {
            bail!("input_ids must be [batch, tokens], got {:?}", input.input_ids.size());
        };
        let cached = cache.as_ref().map_or(0, |c| c.len());
        if let Some(mask) = input.attention_mask {
            if mask.size() != [batch, cached + tokens] {
                bail!(
                    "the attention mask is {:?}, expected [{batch}, {}] (cached + new tokens)",
                    mask.size(),
                    cached + tokens
                );
            }
        }
        let positions = match input.position_ids {
            Some(p) => p.shallow_clone(),
            None => Tensor::f_arange_start(cached, cached + tokens, (Kind::Int64, device))?
                .f_unsqueeze(0)?
                .f_expand([batch, tokens], false)?,
        };
        let padding = with_pads(input.attention_mask)?;
        let full_mask = attention_mask(padding, cached, tokens, None, device)?;
        let mut windowed: Vec<(i64, Option<Tensor>)> = Vec::new();
        // Padded batches run every per-token product on their real tokens only.
        let packing = Packing::of(padding, tokens)?;
        let packing = packing.as_ref();
        let pass = Pass { batch, tokens, cos_sin: rope::cos_sin(&self.inv_freq, &positions, self.vs.kind())?, packing };
        let mut h = packed(packing, Tensor::f_embedding(&self.embed, input.input_ids, -1, false, false)?)?;
        let mut hidden_states = Vec::new();
        for (i, window) in self.config.layer_windows.iter().enumerate() {
            if input.hidden_states {
                hidden_states.push(unpacked(packing, h.shallow_clone())?);
            }
            let mask = match window {
                None => full_mask.as_ref(),
                Some(w) => {
                    if !windowed.iter().any(|(size, _)| size == w) {
                        windowed.push((*w, attention_mask(padding, cached, tokens, Some(*w), device)?));
                    }
                    windowed.iter().find(|(size, _)| size == w).and_then(|(_, m)| m.as_ref())
                }
            };
            h = self
                .layer_forward(i, &h, &pass, mask, cache.as_deref_mut())
                .with_context(|| format!("decoder layer {i}"))?;
        }
        h = rms_norm(&h, &self.norm, self.config.rms_norm_eps)?;
        if input.hidden_states {
            hidden_states.push(unpacked(packing, h.shallow_clone())?);
        }
        let logits = match input.logits {
            Logits::All => unpacked(packing, linear(&h, &self.lm_head, None)?)?,
            Logits::Last => linear(&unpacked(packing, h)?.f_narrow(1, tokens - 1, 1)?, &self.lm_head, None)?,
            Logits::At(positions) => linear(&Packing::selecting(positions)?.pack(&unpacked(packing, h)?)?, &self.lm_head, None)?,
        };
        Ok(ForwardOutput { logits, hidden_states })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Variant;
    use serde_json::json;

    fn fresh(variant: Variant, json: &serde_json::Value, seed: i64) -> Llama {
        let config = Config::from_json(variant, json).unwrap();
        Llama::new(json, config, Placement::cpu(), Init::Fresh { seed }).unwrap()
    }

    fn small(extra: serde_json::Value) -> serde_json::Value {
        let mut config = json!({"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 128, "initializer_range": 0.05});
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    }

    fn var(model: &Llama, name: &str) -> Tensor {
        model.var_store().variables()[name].shallow_clone()
    }

    #[test]
    fn fresh_weights_are_seeded() {
        let json = small(json!({}));
        let (a, b, c) =
            (fresh(Variant::Llama, &json, 1), fresh(Variant::Llama, &json, 1), fresh(Variant::Llama, &json, 2));
        for (name, tensor) in a.var_store().variables() {
            assert!(tensor.equal(&var(&b, &name)), "{name}");
        }
        let name = "model.layers.1.mlp.up_proj.weight";
        assert!(!var(&a, name).equal(&var(&c, name)));
    }

    #[test]
    fn fresh_init_follows_transformers() {
        let json = small(json!({"pad_token_id": 3, "tie_word_embeddings": true}));
        let model = fresh(Variant::Qwen2, &json, 0);
        for (name, tensor) in model.var_store().variables() {
            let (mean, std) = (tensor.mean(Kind::Double).double_value(&[]), tensor.std(true).double_value(&[]));
            if name.ends_with("norm.weight") {
                assert!(tensor.eq(1.0).all().int64_value(&[]) == 1, "{name} is all ones");
            } else if name.ends_with(".bias") {
                assert!(tensor.eq(0.0).all().int64_value(&[]) == 1, "{name} is all zeros");
            } else {
                assert!(mean.abs() < 0.01 && (std - 0.05).abs() < 0.005, "{name}: mean {mean}, std {std}");
            }
        }
        let embed = var(&model, "model.embed_tokens.weight");
        assert_eq!(embed.get(3).abs().sum(Kind::Double).double_value(&[]), 0.0, "the padding row is zero");
        assert!(!model.var_store().variables().contains_key("lm_head.weight"), "tied: one matrix");
        assert!(model.lm_head.equal(&embed));
        assert_eq!(
            model.num_parameters(),
            128 * 64 + 2 * (64 * (64 + 32 + 32 + 64) + 64 + 32 + 32 + 3 * 64 * 96 + 2 * 64) + 64
        );
    }

    #[test]
    fn parameter_names_are_the_hugging_face_keys() {
        for (name, variant) in [
            ("llama", Variant::Llama),
            ("llama3-rope", Variant::Llama),
            ("qwen2", Variant::Qwen2),
            ("mistral", Variant::Mistral),
        ] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name);
            let checkpoint = entangle_checkpoint::Checkpoint::open(&dir).unwrap();
            let model = fresh(variant, &checkpoint.config, 0);
            let mut ours: Vec<String> = model.var_store().variables().into_keys().collect();
            ours.sort();
            let theirs: Vec<String> = checkpoint.tensors().map(|t| t.name.clone()).collect();
            assert_eq!(ours, theirs, "{name}");
            for info in checkpoint.tensors() {
                let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
                assert_eq!(var(&model, &info.name).size(), shape, "{name} {}", info.name);
            }
        }
    }

    #[test]
    fn logits_at_selected_positions_are_those_rows_of_all_logits() {
        let model = fresh(Variant::Llama, &small(json!({})), 0);
        let ids = Tensor::from_slice(&[5i64, 9, 2, 7, 1, 3, 3, 8]).view([2, 4]);
        let positions = Tensor::from_slice(&[false, true, true, false, true, false, false, true]).view([2, 4]);
        let all = model.forward(&ForwardInput::tokens(&ids), None).unwrap().logits;
        let input = ForwardInput { logits: Logits::At(&positions), ..ForwardInput::tokens(&ids) };
        let at = model.forward(&input, None).unwrap().logits;
        let want = Tensor::stack(&[all.get(0).get(1), all.get(0).get(2), all.get(1).get(0), all.get(1).get(3)], 0);
        assert_eq!(at.size(), [4, 128]);
        assert!(at.allclose(&want, 1e-5, 1e-5, false));
        let wrong = Tensor::ones([2, 3], (Kind::Bool, tch::Device::Cpu));
        let input = ForwardInput { logits: Logits::At(&wrong), ..ForwardInput::tokens(&ids) };
        assert!(model.forward(&input, None).is_err());
    }

    #[test]
    fn target_losses_are_the_full_logits_cross_entropy_at_each_target() {
        let model = fresh(Variant::Llama, &small(json!({})), 0);
        let a = entangle_model::Sequence { ids: vec![5, 9, 2, 7], targets: vec![false, false, true, true] };
        let b = entangle_model::Sequence { ids: vec![1, 3], targets: vec![true, true] };
        let batch = entangle_model::collate(&[&a, &b], 0, tch::Device::Cpu);
        let got = Vec::<f64>::try_from(entangle_model::target_losses(&model, &batch).unwrap()).unwrap();
        let input = ForwardInput { attention_mask: Some(&batch.attention_mask), ..ForwardInput::tokens(&batch.input_ids) };
        let log_probs = model.forward(&input, None).unwrap().logits.log_softmax(-1, Kind::Double);
        let nll = |row: i64, position: i64, token: i64| -log_probs.double_value(&[row, position, token]);
        let want = [nll(0, 1, 2), nll(0, 2, 7), nll(1, 0, 3)];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn malformed_input_is_rejected() {
        let model = fresh(Variant::Llama, &small(json!({})), 0);
        let ids = Tensor::zeros([2, 3], (Kind::Int64, tch::Device::Cpu));
        let mask = Tensor::ones([2, 4], (Kind::Int64, tch::Device::Cpu));
        let input = ForwardInput { attention_mask: Some(&mask), ..ForwardInput::tokens(&ids) };
        let err = model.forward(&input, None).unwrap_err().to_string();
        assert_eq!(err, "the attention mask is [2, 4], expected [2, 3] (cached + new tokens)");
        let flat = Tensor::zeros([3], (Kind::Int64, tch::Device::Cpu));
        assert!(model.forward(&ForwardInput::tokens(&flat), None).is_err());
    }
}
