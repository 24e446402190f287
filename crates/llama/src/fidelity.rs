//! The family against Hugging Face transformers: fixtures recorded by
//! `fixtures/make_fixtures.py` (four small random models with transformers' logits, hidden
//! states and greedy continuations), and the runtime's own invariants on them (padding,
//! KV cache, save and reload, in-memory weights).

use std::path::{Path, PathBuf};

use entangle_checkpoint::{write_checkpoint, Checkpoint, WriteOptions};
use entangle_model::{
    generate, last_token_states, Batch, CausalLm, ForwardInput, GenerateOptions, Logits, Placement, Registry,
    tolerance, Tokenizer, Weights,
};
use indicatif::ProgressBar;
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::families;

const FIXTURES: [&str; 4] = ["llama", "llama3-rope", "qwen2", "mistral"];

/// The fixtures' shape, which the tolerances are derived from; [`load`] checks it.
const LAYERS: usize = 2;
/// The longest sum any value of a fixture is made of: the MLP's intermediate size (64), longer
/// than the hidden size (32) and than any prompt with its continuation (59 tokens, the
/// attention's sums).
const LONGEST_SUM: usize = 64;

/// How far our f32 values may be from transformers' (or from ours on another path).
fn f32_tolerance(scale: f64) -> f64 {
    tolerance::f32_forward(LAYERS, LONGEST_SUM, scale)
}

/// How far bf16 logits may be from f32's.
fn bf16_tolerance(scale: f64) -> f64 {
    tolerance::bf16_forward(LAYERS, scale)
}

#[derive(Deserialize)]
struct Expected {
    prompts: Vec<Prompt>,
}

/// What transformers computed for one prompt.
#[derive(Deserialize)]
struct Prompt {
    text: String,
    ids: Vec<u32>,
    /// `[tokens][vocab]`.
    logits: Vec<Vec<f32>>,
    /// `[layers + 1][tokens][hidden]`.
    hidden_states: Vec<Vec<Vec<f32>>>,
    /// `generate(max_new_tokens=20)` of the prompt alone.
    greedy: Vec<u32>,
    /// The same, with the three prompts left-padded into one batch.
    greedy_batched: Vec<u32>,
    /// The last position's logits with the model in bfloat16.
    last_logits_bf16: Vec<f32>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
}

fn registry() -> Registry {
    Registry::new(families())
}

fn load(name: &str) -> (Box<dyn CausalLm>, Tokenizer, Expected) {
    let dir = fixture(name);
    let model = registry().load(&dir, Placement::cpu()).unwrap();
    let tokenizer = Tokenizer::from_dir(&dir).unwrap();
    let expected = serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let config = Checkpoint::open(&dir).unwrap().config;
    assert_eq!(config["num_hidden_layers"], LAYERS, "{name}: the tolerances assume {LAYERS} layers");
    assert_eq!(config["intermediate_size"], LONGEST_SUM, "{name}: the tolerances assume sums of {LONGEST_SUM} terms");
    (model, tokenizer, expected)
}

fn ids_tensor(ids: &[u32]) -> Tensor {
    Tensor::from_slice(&ids.iter().map(|&t| i64::from(t)).collect::<Vec<_>>()).view([1, -1])
}

/// Max |a − b| over all elements.
fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

/// Max |a| over all elements.
fn max_abs(a: &Tensor) -> f64 {
    a.to_kind(Kind::Double).abs().max().double_value(&[])
}

/// The smallest gap between the best and the second-best logit at the positions that chose
/// `continuation`'s tokens. Two implementations whose logits differ by less than half of it
/// choose the same tokens, so comparing continuations exactly is sound only when it is wide.
fn smallest_margin(model: &dyn CausalLm, prompt: &[u32], continuation: &[u32]) -> f64 {
    let all: Vec<u32> = prompt.iter().chain(continuation).copied().collect();
    let logits = forward_all(model, &all[..all.len() - 1]).logits.get(0);
    let choosing = logits.narrow(0, prompt.len() as i64 - 1, continuation.len() as i64);
    let (top, _) = choosing.topk(2, -1, true, true);
    (top.select(1, 0) - top.select(1, 1)).min().double_value(&[])
}

fn table(rows: &[Vec<f32>]) -> Tensor {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, -1])
}

fn forward_all(model: &dyn CausalLm, ids: &[u32]) -> entangle_model::ForwardOutput {
    let _guard = tch::no_grad_guard();
    let input_ids = ids_tensor(ids);
    model.forward(&ForwardInput { hidden_states: true, ..ForwardInput::tokens(&input_ids) }, None).unwrap()
}

#[test]
fn logits_and_hidden_states_match_transformers() {
    for name in FIXTURES {
        let (model, _, expected) = load(name);
        for prompt in &expected.prompts {
            let out = forward_all(model.as_ref(), &prompt.ids);
            let want = table(&prompt.logits);
            let (diff, tolerance) = (max_diff(&out.logits.get(0), &want), f32_tolerance(max_abs(&want)));
            assert!(diff < tolerance, "{name} {:?}: logits differ by {diff} > {tolerance}", prompt.text);
            assert_eq!(out.hidden_states.len(), prompt.hidden_states.len(), "{name}");
            for (layer, (got, want)) in out.hidden_states.iter().zip(&prompt.hidden_states).enumerate() {
                let want = table(want);
                let (diff, tolerance) = (max_diff(&got.get(0), &want), f32_tolerance(max_abs(&want)));
                assert!(diff < tolerance, "{name} {:?}: hidden state {layer} differs by {diff} > {tolerance}", prompt.text);
            }
        }
    }
}

#[test]
fn tokenizer_reproduces_the_prompt_ids() {
    for name in FIXTURES {
        let (_, tokenizer, expected) = load(name);
        for prompt in &expected.prompts {
            assert_eq!(tokenizer.encode(&prompt.text, true).unwrap(), prompt.ids, "{name} {:?}", prompt.text);
        }
    }
}

/// Token for token, which holds on any machine because every chosen token leads the next by
/// more than two f32 tolerances (checked first): rounding cannot reorder them.
#[test]
fn greedy_continuations_match_transformers_alone_and_batched() {
    for name in FIXTURES {
        let (model, tokenizer, expected) = load(name);
        let options = GenerateOptions::greedy(20, &tokenizer);
        let prompts: Vec<Vec<u32>> = expected.prompts.iter().map(|p| p.ids.clone()).collect();
        for (prompt, ids) in expected.prompts.iter().zip(&prompts) {
            let margin = smallest_margin(model.as_ref(), ids, &prompt.greedy);
            let tolerance = f32_tolerance(max_abs(&table(&prompt.logits)));
            assert!(margin > 2.0 * tolerance, "{name} {:?}: a near-tie ({margin}) makes the tokens depend on rounding", prompt.text);
            let alone =
                generate(model.as_ref(), &tokenizer, std::slice::from_ref(ids), &options, &ProgressBar::hidden())
                    .unwrap();
            assert_eq!(alone[0].token_ids, prompt.greedy, "{name} {:?} alone", prompt.text);
        }
        let batched = generate(model.as_ref(), &tokenizer, &prompts, &options, &ProgressBar::hidden()).unwrap();
        for (prompt, generation) in expected.prompts.iter().zip(&batched) {
            assert_eq!(generation.token_ids, prompt.greedy_batched, "{name} {:?} batched", prompt.text);
            assert_eq!(generation.text, tokenizer.decode(&prompt.greedy_batched, true).unwrap());
        }
    }
}

#[test]
fn left_padded_batch_equals_one_at_a_time() {
    for name in FIXTURES {
        let (model, tokenizer, expected) = load(name);
        let prompts: Vec<Vec<u32>> = expected.prompts.iter().map(|p| p.ids.clone()).collect();
        let batch = Batch::left_padded(&prompts, tokenizer.pad_token_id(), Device::Cpu).unwrap();
        let out = tch::no_grad(|| model.forward(&batch.input(Logits::All, true), None)).unwrap();
        let width = out.logits.size()[1];
        let states = last_token_states(model.as_ref(), &prompts, tokenizer.pad_token_id()).unwrap();
        for (row, ids) in prompts.iter().enumerate() {
            let alone = forward_all(model.as_ref(), ids);
            let len = ids.len() as i64;
            let padded = out.logits.get(row as i64).narrow(0, width - len, len);
            // Padding changes the shapes, so the kernels may block and sum in another order.
            let tolerance = f32_tolerance(max_abs(&alone.logits));
            let diff = max_diff(&padded, &alone.logits.get(0));
            assert!(diff < tolerance, "{name} prompt {row}: padded logits differ by {diff}");
            let last_alone =
                Tensor::stack(&alone.hidden_states.iter().map(|h| h.get(0).get(len - 1)).collect::<Vec<_>>(), 0);
            let diff = max_diff(&states.hidden_states.get(row as i64), &last_alone);
            let state_tolerance = f32_tolerance(max_abs(&last_alone));
            assert!(diff < state_tolerance, "{name} prompt {row}: last-token hidden states differ by {diff}");
            let diff = max_diff(&states.logits.get(row as i64), &alone.logits.get(0).get(len - 1));
            assert!(diff < tolerance, "{name} prompt {row}: last-token logits differ by {diff}");
        }
    }
}

#[test]
fn kv_cache_equals_recomputation() {
    let _guard = tch::no_grad_guard();
    for name in FIXTURES {
        let (model, _, expected) = load(name);
        let prompt = &expected.prompts[1];
        let all: Vec<u32> = prompt.ids.iter().chain(&prompt.greedy).copied().collect();
        let full = forward_all(model.as_ref(), &all).logits;
        // One step's sums run over the cached keys instead of a square of them: another order.
        let tolerance = f32_tolerance(max_abs(&full));
        let mut cache = model.new_cache();
        let prefill = ids_tensor(&prompt.ids);
        let mut logits = model.forward(&ForwardInput::tokens(&prefill), Some(&mut cache)).unwrap().logits;
        for (i, &token) in prompt.greedy.iter().enumerate() {
            let position = (prompt.ids.len() + i) as i64;
            let diff = max_diff(&logits.get(0).get(-1), &full.get(0).get(position - 1));
            assert!(diff < tolerance, "{name} step {i}: cached logits differ by {diff}");
            let step = ids_tensor(&[token]);
            let input = ForwardInput { logits: Logits::Last, ..ForwardInput::tokens(&step) };
            logits = model.forward(&input, Some(&mut cache)).unwrap().logits;
        }
        assert_eq!(cache.len(), all.len() as i64);
    }
}

/// Saves each fixture model and loads it back: the same logits, transformers' file layout.
/// With `ENTANGLE_SAVE_FIXTURES=DIR` the checkpoints are kept in DIR, for
/// `make_fixtures.py --check-saved DIR` to load in transformers.
#[test]
fn saved_checkpoints_reload() {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::env::var_os("ENTANGLE_SAVE_FIXTURES").map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    for name in FIXTURES {
        let (model, _, expected) = load(name);
        let dir = root.join(name);
        model.save(&dir, Some(&fixture(name))).unwrap();
        let saved = Checkpoint::open(&dir).unwrap();
        assert_eq!(saved.config["dtype"], "float32");
        let tied = saved.config["tie_word_embeddings"] == true;
        assert_eq!(saved.info("lm_head.weight").is_none(), tied, "{name}: a tied output projection is not saved");
        assert!(dir.join("tokenizer.json").exists() && dir.join("tokenizer_config.json").exists());
        let original = Checkpoint::open(&fixture(name)).unwrap();
        let names = |c: &Checkpoint| c.tensors().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&saved), names(&original), "{name}");
        let reloaded = registry().load(&dir, Placement::cpu()).unwrap();
        for prompt in &expected.prompts {
            let diff = max_diff(
                &forward_all(reloaded.as_ref(), &prompt.ids).logits,
                &forward_all(model.as_ref(), &prompt.ids).logits,
            );
            assert_eq!(diff, 0.0, "{name}");
        }
    }
}

#[test]
fn in_memory_tensors_build_the_same_model() {
    for name in FIXTURES {
        let (model, _, expected) = load(name);
        let checkpoint = Checkpoint::open(&fixture(name)).unwrap();
        let tensors = checkpoint.tensors().map(|t| Ok((t.name.clone(), checkpoint.load(&t.name, Kind::Float)?)));
        let rebuilt =
            registry().build(&checkpoint.config, Weights::Tensors(Box::new(tensors)), Placement::cpu()).unwrap();
        let ids = &expected.prompts[0].ids;
        assert_eq!(max_diff(&forward_all(rebuilt.as_ref(), ids).logits, &forward_all(model.as_ref(), ids).logits), 0.0);
    }
}

/// In bfloat16 the logits stay within bf16's rounding of the f32 logits (transformers' own,
/// recorded), as transformers' bf16 logits do; the model does compute in bf16 (it is not f32).
/// The two bf16 results are not compared with each other beyond that bound: which bf16 kernels
/// a CPU has (AVX-512 BF16, AMX, none) moves them by up to it.
#[test]
fn bfloat16_stays_within_its_rounding_of_f32() {
    for name in FIXTURES {
        let (_, _, expected) = load(name);
        let placement = Placement { device: Device::Cpu, kind: Kind::BFloat16 };
        let model = registry().load(&fixture(name), placement).unwrap();
        assert_eq!(model.kind(), Kind::BFloat16);
        for prompt in &expected.prompts {
            let states = last_token_states(model.as_ref(), std::slice::from_ref(&prompt.ids), 0).unwrap();
            assert_eq!(states.logits.kind(), Kind::Float);
            let f32_logits = table(&prompt.logits).get(-1);
            let tolerance = bf16_tolerance(max_abs(&f32_logits));
            let ours = max_diff(&states.logits.get(0), &f32_logits);
            assert!(ours < tolerance, "{name}: bf16 logits are {ours} from f32's, beyond bf16's rounding {tolerance}");
            let theirs = max_diff(&Tensor::from_slice(&prompt.last_logits_bf16), &f32_logits);
            assert!(theirs < tolerance, "{name}: transformers' bf16 logits are {theirs} from f32's");
            assert!(ours > f32_tolerance(max_abs(&f32_logits)), "{name}: bf16 logits equal f32's; bf16 did not run");
        }
    }
}

/// On a GPU host: `ENTANGLE_CUDA_TESTS=1 cargo test -p entangle-llama cuda`. On cuda:0 the
/// f32 logits stay within the f32 tolerance of transformers' (GPU kernels sum in other orders;
/// libtorch leaves TF32 off for f32 products), batched greedy generation gives transformers'
/// continuations, and bf16 stays within its rounding of f32.
#[test]
fn cuda_follows_transformers() {
    if std::env::var_os("ENTANGLE_CUDA_TESTS").is_none() {
        return;
    }
    assert!(tch::Cuda::is_available(), "ENTANGLE_CUDA_TESTS is set but CUDA is not available");
    for name in FIXTURES {
        let (_, tokenizer, expected) = load(name);
        let prompts: Vec<Vec<u32>> = expected.prompts.iter().map(|p| p.ids.clone()).collect();
        for kind in [Kind::Float, Kind::BFloat16] {
            let model = registry().load(&fixture(name), Placement { device: Device::Cuda(0), kind }).unwrap();
            let states = last_token_states(model.as_ref(), &prompts, tokenizer.pad_token_id()).unwrap();
            for (row, prompt) in expected.prompts.iter().enumerate() {
                let want = table(&prompt.logits).get(-1);
                let tolerance =
                    if kind == Kind::Float { f32_tolerance(max_abs(&want)) } else { bf16_tolerance(max_abs(&want)) };
                let diff = max_diff(&states.logits.get(row as i64).to_device(Device::Cpu), &want);
                assert!(diff < tolerance, "{name} {kind:?}: logits differ by {diff}");
            }
            if kind == Kind::Float {
                let options = GenerateOptions::greedy(20, &tokenizer);
                let batched = generate(model.as_ref(), &tokenizer, &prompts, &options, &ProgressBar::hidden()).unwrap();
                for (prompt, generation) in expected.prompts.iter().zip(&batched) {
                    assert_eq!(generation.token_ids, prompt.greedy_batched, "{name} on cuda");
                }
            }
        }
    }
}

/// A copy of fixture `name` whose weights are `edit`ed and config is `config`, written by
/// our own checkpoint writer.
fn damaged(
    name: &str,
    config: impl FnOnce(&mut serde_json::Value),
    edit: impl FnOnce(&mut Vec<(String, Tensor)>),
) -> tempfile::TempDir {
    let original = Checkpoint::open(&fixture(name)).unwrap();
    let mut tensors: Vec<(String, Tensor)> =
        original.tensors().map(|t| (t.name.clone(), original.load_stored(&t.name).unwrap())).collect();
    edit(&mut tensors);
    let mut json = original.config.clone();
    config(&mut json);
    let tmp = tempfile::tempdir().unwrap();
    write_checkpoint(&tmp.path().join("m"), &json, tensors.into_iter().map(Ok), &WriteOptions::default()).unwrap();
    tmp
}

/// Loading the damaged copy fails with one line containing `needle`.
fn check_load_error(tmp: &tempfile::TempDir, needle: &str) {
    let err = match registry().load(&tmp.path().join("m"), Placement::cpu()) {
        Ok(_) => panic!("loading should fail with {needle}"),
        Err(err) => format!("{err:#}"),
    };
    assert!(err.contains(needle), "`{needle}` not in: {err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn bad_checkpoints_are_one_clear_error() {
    let unknown = damaged("llama", |c| c["model_type"] = "gpt2".into(), |_| {});
    check_load_error(&unknown, "unsupported model_type `gpt2`; supported: llama, mistral, qwen2");
    let no_field = damaged("llama", |c| drop(c.as_object_mut().unwrap().remove("num_hidden_layers")), |_| {});
    check_load_error(&no_field, "invalid config.json: missing field `num_hidden_layers`");
    let shape = damaged("llama", |c| c["intermediate_size"] = 48.into(), |_| {});
    check_load_error(&shape, "but the model config expects");
    let missing = damaged("llama", |_| {}, |t| t.retain(|(n, _)| n != "model.norm.weight"));
    check_load_error(&missing, "1 missing tensor(s): model.norm.weight");
    let extra =
        damaged("qwen2", |_| {}, |t| t.push(("extra.weight".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu)))));
    check_load_error(&extra, "1 unexpected tensor(s): extra.weight");
}

#[test]
fn tolerated_extras_load() {
    let with_extras = damaged(
        "qwen2",
        |_| {},
        |t| {
            let embed = t.iter().find(|(n, _)| n == "model.embed_tokens.weight").unwrap().1.copy();
            t.push(("lm_head.weight".into(), embed));
            t.push((
                "model.layers.0.self_attn.rotary_emb.inv_freq".into(),
                Tensor::zeros([4], (Kind::Float, Device::Cpu)),
            ));
        },
    );
    assert!(registry().load(&with_extras.path().join("m"), Placement::cpu()).is_ok());
}
