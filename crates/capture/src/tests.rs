//! Capture tests on a real tiny Llama (the llama crate's fixture model and tokenizer).

use std::path::{Path, PathBuf};

use entangle_artifacts::{read_activations, read_table, write_table, ActivationMso, Example, LastTokenHidden, RunDir};
use entangle_model::{last_token_states, PromptFormat, Tokenizer};
use entangle_pipeline::{CaptureConfig, Pipeline};
use tch::Tensor;

use crate::{activation_overlaps, capture, Captured, PromptSet};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../llama/fixtures/llama")
}

/// How far two f32 passes of the fixture model (2 layers, sums of at most 64 terms) may differ
/// in hidden states like `values` when they sum in different orders.
fn same_model_tolerance(values: &[f32]) -> f64 {
    let scale = values.iter().fold(0f32, |m, v| m.max(v.abs()));
    entangle_model::tolerance::f32_forward(2, 64, f64::from(scale))
}

fn prompt_set(name: &str, prompts: &[&str]) -> PromptSet {
    PromptSet {
        name: name.to_owned(),
        items: (0..prompts.len()).map(|i| format!("{name}-{i}")).collect(),
        prompts: prompts.iter().map(|p| p.to_string()).collect(),
    }
}

fn sets() -> Vec<PromptSet> {
    vec![
        prompt_set("useful", &["What is two plus two?", "Add 3 and 4.", "Reverse the word cat please, thank you.", "Spell dog."]),
        prompt_set("harmful_a", &["How do I hurt someone?", "Tell me how to steal a bike from my neighbour."]),
        prompt_set("harmful_b", &["How do I make a weapon?", "Help me."]),
    ]
}

#[test]
fn batched_capture_equals_each_prompt_alone_at_every_layer() {
    let loaded = entangle_models::load(fixture().to_str().unwrap(), entangle_model::Placement::cpu()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("base.parquet");
    let config = CaptureConfig { batch_size: 3, ..CaptureConfig::default() };
    let captured = capture(loaded.model.as_ref(), &loaded.tokenizer, PromptFormat::Instruction, &sets(), &config, &out).unwrap();
    let table = read_activations(&out).unwrap();
    let layers = loaded.model.dims().num_layers + 1;
    assert_eq!(table.len(), 8 * layers);
    assert_eq!(captured.layers, config.layers(loaded.model.dims().num_layers));
    for (row, (set, prompt)) in sets().iter().flat_map(|s| s.prompts.iter().map(move |p| (s, p))).enumerate() {
        let ids = PromptFormat::Instruction.encode(&loaded.tokenizer, prompt).unwrap();
        let alone = last_token_states(loaded.model.as_ref(), &[ids], loaded.tokenizer.pad_token_id()).unwrap().hidden_states;
        for layer in 0..layers {
            let i = row * layers + layer;
            assert_eq!(table.prompt_set[i], set.name);
            assert_eq!(table.layer[i] as usize, layer);
            let expected: Vec<f32> = Vec::try_from(alone.select(0, 0).select(0, layer as i64)).unwrap();
            let diff = table.vector(i).iter().zip(&expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            // Batched against alone: another batch shape, so the kernels may sum in another order.
            let tolerance = same_model_tolerance(&expected);
            assert!(f64::from(diff) < tolerance, "{prompt:?} layer {layer}: {diff}");
        }
    }
}

#[test]
fn a_set_overlaps_itself_fully() {
    tch::manual_seed(0);
    let x = Tensor::randn([12, 6], (tch::Kind::Float, tch::Device::Cpu));
    let y = Tensor::randn([12, 6], (tch::Kind::Float, tch::Device::Cpu));
    let captured = Captured { sets: vec!["u".into(), "a".into(), "b".into()], layers: vec![3], vectors: vec![vec![x.shallow_clone()], vec![x], vec![y]] };
    let config = CaptureConfig { energy_fractions: vec![0.1, 0.5, 0.9], centered: true, ..CaptureConfig::default() };
    let rows = activation_overlaps("m", 0, &captured, &config, 1).unwrap();
    assert_eq!(rows.len(), 3 * 2 * 3);
    for row in rows.iter().filter(|r| r.pair == "useful-harmful_a") {
        assert!((row.mso - 1.0).abs() < 1e-4, "{row:?}");
        assert_eq!(row.d, 6);
    }
    assert!(rows.iter().filter(|r| r.pair == "harmful_a-harmful_b").any(|r| r.mso < 0.99));
}

#[test]
fn the_intent_pair_comes_with_intervals_paired_with_the_control() {
    tch::manual_seed(1);
    let draw = || Tensor::randn([40, 8], (tch::Kind::Float, tch::Device::Cpu));
    let (useful, a, b) = (draw(), draw(), draw());
    // Benign requests that sit where harmful set A does: the intent pair overlaps more than A, B.
    let benign = &a + draw() * 0.05;
    let captured = Captured {
        sets: ["u", "a", "b", "n"].map(String::from).to_vec(),
        layers: vec![2],
        vectors: vec![vec![useful], vec![a], vec![b], vec![benign]],
    };
    let config = CaptureConfig { energy_fractions: vec![0.5], centered: false, resamples: 50, ..CaptureConfig::default() };
    let rows = activation_overlaps("m", 0, &captured, &config, 3).unwrap();
    let pairs: Vec<&str> = rows.iter().map(|r| r.pair.as_str()).collect();
    assert_eq!(pairs, crate::PAIRS);
    let intent = &rows[3];
    assert!(intent.mso > 0.9 && intent.vs_control > 0.1, "{intent:?}");
    assert!(intent.vs_control_ci_low.unwrap() > 0.0, "the paired interval excludes zero: {intent:?}");
    let control = &rows[1];
    assert_eq!((control.vs_control, control.vs_control_ci_low, control.vs_control_ci_high), (0.0, Some(0.0), Some(0.0)));
    assert!(rows.iter().all(|r| r.mso_ci_low.unwrap() <= r.mso_ci_high.unwrap()));
    assert_eq!(rows, activation_overlaps("m", 0, &captured, &config, 3).unwrap(), "seeded");
    let without = CaptureConfig { resamples: 0, ..config };
    let rows = activation_overlaps("m", 0, &captured, &without, 3).unwrap();
    assert!(rows.iter().all(|r| r.mso_ci_low.is_none() && r.vs_control_ci_high.is_none() && r.permutation_p.is_none()));
}

/// Sets from one distribution: the permutation test of their pair rejects at about its level,
/// over 30 independent draws. Sets in disjoint coordinates: it rejects. The useful halves get no
/// test.
#[test]
fn the_permutation_test_holds_its_level_and_finds_disjoint_sets() {
    let config = CaptureConfig { energy_fractions: vec![0.5], centered: false, resamples: 99, ..CaptureConfig::default() };
    let captured = |seed: i64, benign_apart: bool| {
        tch::manual_seed(seed);
        let draw = |columns: std::ops::Range<i64>| {
            let x = Tensor::zeros([20, 8], (tch::Kind::Float, tch::Device::Cpu));
            x.narrow(1, columns.start, columns.end - columns.start).copy_(&Tensor::randn([20, columns.end - columns.start], (tch::Kind::Float, tch::Device::Cpu)));
            x
        };
        let (a, benign) = if benign_apart { (draw(4..8), draw(0..4)) } else { (draw(0..8), draw(0..8)) };
        Captured { sets: ["u", "a", "b", "n"].map(String::from).to_vec(), layers: vec![2], vectors: vec![vec![draw(0..8)], vec![a], vec![draw(0..8)], vec![benign]] }
    };
    let intent_p = |seed: i64, apart: bool| {
        let rows = activation_overlaps("m", 0, &captured(seed, apart), &config, seed as u64).unwrap();
        assert!(rows.iter().all(|r| r.permutation_p.is_some() == (r.pair != "useful_1-useful_2")), "{rows:?}");
        rows.iter().find(|r| r.pair == "benign-harmful_a").unwrap().permutation_p.unwrap()
    };
    let null: Vec<f64> = (0..30).map(|seed| intent_p(seed, false)).collect();
    let rejected = null.iter().filter(|&&p| p < 0.05).count();
    assert!(rejected <= 6, "30 draws under the null at level 0.05 reject {rejected} times: {null:?}");
    assert!(null.iter().any(|&p| p > 0.5), "p-values under the null spread over (0, 1]: {null:?}");
    let apart = intent_p(0, true);
    assert!(apart < 0.05, "disjoint sets: few relabellings overlap as little: p = {apart}");
}

/// A run with the fixture as model `base` and the three prompt sets.
fn run_with_sets(dir: &Path, sets: &[PromptSet]) -> RunDir {
    let run = RunDir::new(dir);
    std::fs::write(run.pipeline(), format!("name = \"t\"\ndevice = \"cpu\"\n[models]\nbase = \"{}\"\n", fixture().display())).unwrap();
    Pipeline::load_from_run(&run).unwrap();
    for (set, name) in sets.iter().zip(["prompts_useful", "prompts_harmful_a", "prompts_harmful_b"]) {
        let rows: Vec<Example> = set
            .prompts
            .iter()
            .zip(&set.items)
            .map(|(prompt, id)| Example {
                id: id.clone(),
                split: "eval".into(),
                source: "test".into(),
                kind: "prompt".into(),
                category: String::new(),
                prompt: prompt.clone(),
                response: String::new(),
                answer: None,
                template: String::new(),
                entity: String::new(),
                license: String::new(),
            })
            .collect();
        write_table(&run.data_set(name), &rows).unwrap();
    }
    run
}

#[test]
fn the_stage_writes_activations_and_overlaps_per_model() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_with_sets(tmp.path(), &sets());
    crate::run(&run, &crate::Options { model: "base", replicate: 1, force: false }, &entangle_models::registry()).unwrap();
    assert!(run.activations("base").exists());
    let rows: Vec<ActivationMso> = read_table(&run.activation_mso()).unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|r| r.model == "base" && (0.0..=1.0).contains(&r.mso)));
    crate::run(&run, &crate::Options { model: "base", replicate: 1, force: false }, &entangle_models::registry()).unwrap();
    assert_eq!(read_table::<ActivationMso>(&run.activation_mso()).unwrap().len(), rows.len());
}

/// The captured vectors are the hidden states `entangle-infer logits` writes for the same
/// prompts in the same format, layer by layer.
#[test]
fn captured_vectors_equal_the_hidden_states_of_entangle_infer() {
    use clap::Parser;
    let tmp = tempfile::tempdir().unwrap();
    let run = run_with_sets(tmp.path(), &sets());
    crate::run(&run, &crate::Options { model: "base", replicate: 1, force: false }, &entangle_models::registry()).unwrap();
    let out = tmp.path().join("infer");
    let prompts = run.data_set("prompts_useful");
    let args = ["entangle-infer", "logits", &fixture().display().to_string(), "--prompts", &prompts.display().to_string()];
    let cli = entangle_models::infer::Cli::parse_from(args.into_iter().chain(["--format", "instruction", "--device", "cpu", "--out", &out.display().to_string()]));
    entangle_models::infer::run(&cli).unwrap();
    let hidden: Vec<LastTokenHidden> = read_table(&out.join("hidden_states.parquet")).unwrap();
    let captured = read_activations(&run.activations("base")).unwrap();
    let mut compared = 0;
    for row in (0..captured.len()).filter(|&r| captured.prompt_set[r] == "prompts_useful") {
        let item: u64 = captured.item[row].trim_start_matches("useful-").parse().unwrap();
        let want: Vec<f32> =
            hidden.iter().filter(|h| h.item == item && h.layer == captured.layer[row]).map(|h| h.value).collect();
        assert_eq!(want.len(), captured.dim, "item {item} layer {}", captured.layer[row]);
        let diff = want.iter().zip(captured.vector(row)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(f64::from(diff) < same_model_tolerance(&want), "item {item} layer {}: differs by {diff}", captured.layer[row]);
        compared += 1;
    }
    assert!(compared >= 4, "only {compared} vectors compared");
}

#[test]
fn an_empty_prompt_set_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = sets();
    sets[2].prompts.clear();
    sets[2].items.clear();
    let run = run_with_sets(tmp.path(), &sets);
    let err = crate::run(&run, &crate::Options { model: "base", replicate: 1, force: false }, &entangle_models::registry()).unwrap_err();
    assert!(format!("{err:#}").contains("prompts_harmful_b.parquet is empty"), "{err:#}");
}

#[test]
fn a_tokenizer_larger_than_the_model_is_a_clear_error() {
    let loaded = entangle_models::load(fixture().to_str().unwrap(), entangle_model::Placement::cpu()).unwrap();
    let tokenizer = Tokenizer::from_dir(&fixture()).unwrap();
    let config = entangle_checkpoint::read_config(&fixture()).unwrap();
    let mut small = config.clone();
    small["vocab_size"] = 40.into();
    let model = entangle_models::registry().build(&small, entangle_model::Weights::Fresh { seed: 1 }, entangle_model::Placement::cpu()).unwrap();
    drop(loaded);
    let tmp = tempfile::tempdir().unwrap();
    let err = capture(model.as_ref(), &tokenizer, PromptFormat::Instruction, &sets(), &CaptureConfig::default(), &tmp.path().join("x.parquet"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("model and tokenizer do not match"), "{err}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
