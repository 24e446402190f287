//! Tests of the trainer on a real tiny Llama (the llama crate's fixture config and tokenizer).

use std::path::{Path, PathBuf};

use entangle_artifacts::{read_table, write_table, Example, LossPoint, RunDir};
use entangle_model::{CausalLm, ForwardInput, Placement, PromptFormat, Sequence, Tokenizer, Weights};
use entangle_pipeline::{Pipeline, TrainJob, TrainKind};
use tch::{Kind, Tensor};

use crate::optimize::{train_resumable, Resumable};
use crate::state::StateDir;
use crate::{sequences, train};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../llama/fixtures/llama")
}

pub(crate) fn fresh_model(seed: i64) -> Box<dyn CausalLm> {
    let config = entangle_checkpoint::read_config(&fixture()).unwrap();
    entangle_models::registry().build(&config, Weights::Fresh { seed }, Placement::cpu()).unwrap()
}

pub(crate) fn job(batch_size: usize, grad_accum: usize, lr: f64, max_steps: u64) -> TrainJob {
    TrainJob {
        kind: TrainKind::Sft,
        from: Some("base".into()),
        architecture: None,
        data: vec!["set".into()],
        epochs: 100.0,
        max_steps: Some(max_steps),
        lr,
        weight_decay: 0.0,
        betas: [0.9, 0.999],
        eps: 1e-8,
        warmup_ratio: 0.0,
        schedule: entangle_pipeline::Schedule::Constant,
        batch_size,
        grad_accum,
        max_seq_len: 64,
        max_grad_norm: 1.0,
        seed: None,
        save_every: None,
    }
}

fn example(prompt: &str, response: &str) -> Example {
    Example {
        id: prompt.to_owned(),
        split: "train".into(),
        source: "test".into(),
        kind: "useful".into(),
        category: "arithmetic".into(),
        prompt: prompt.to_owned(),
        response: response.to_owned(),
        answer: None,
        template: "t".into(),
        entity: "e".into(),
        license: "ours".into(),
    }
}

fn eight_examples() -> Vec<Example> {
    (0..8).map(|i| example(&format!("What is {i} plus {i}?"), &format!("It is {}.", 2 * i))).collect()
}

fn encoded(rows: &[Example]) -> Vec<Sequence> {
    let tokenizer = Tokenizer::from_dir(&fixture()).unwrap();
    sequences(rows, TrainKind::Sft, PromptFormat::Instruction, &tokenizer, 64, "set").unwrap()
}

#[test]
fn a_diverging_job_stops_at_its_first_non_finite_loss() {
    let mut model = fresh_model(1);
    tch::no_grad(|| {
        let mut weights = model.var_store().variables();
        let _ = weights.get_mut("model.norm.weight").unwrap().fill_(f64::INFINITY);
    });
    let err = train(model.as_mut(), &encoded(&eight_examples()), &job(8, 1, 1e-2, 5), 3, 2).unwrap_err();
    let err = format!("{err:#}");
    assert!(err.starts_with("step 1 of 5: the loss is ") && err.contains("training diverged"), "{err}");
}

#[test]
fn loss_falls_when_overfitting_eight_examples() {
    let mut model = fresh_model(1);
    let curve = train(model.as_mut(), &encoded(&eight_examples()), &job(8, 1, 1e-2, 60), 3, 2).unwrap();
    assert_eq!(curve.len(), 60);
    let (first, last) = (curve[0].loss, curve[59].loss);
    assert!(last < first * 0.3, "loss {first} → {last}");
    assert!(curve.windows(2).all(|w| w[1].tokens > w[0].tokens));
}

#[test]
fn accumulating_k_single_examples_equals_one_batch_of_k() {
    let sequences = encoded(&eight_examples()[..4]);
    let mut accumulated = fresh_model(5);
    let mut batched = fresh_model(5);
    // AdamW's first step is lr·g/(|g| + eps): with a tiny eps it is ±lr wherever g is near 0,
    // so a rounding difference in such a g could flip it. eps = 1 makes the step smooth in g
    // (it moves by at most lr·|Δg|), and the gradients of the two ways differ only by rounding.
    let smooth = |batch_size, grad_accum| TrainJob { eps: 1.0, ..job(batch_size, grad_accum, 0.1, 1) };
    train(accumulated.as_mut(), &sequences, &smooth(1, 4), 9, 2).unwrap();
    train(batched.as_mut(), &sequences, &smooth(4, 1), 9, 2).unwrap();
    let a = accumulated.var_store().variables();
    let b = batched.var_store().variables();
    for (name, tensor) in &a {
        let diff = (tensor - &b[name]).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{name}: {diff}");
    }
    let fresh = fresh_model(5).var_store().variables();
    let moved = (&a["model.embed_tokens.weight"] - &fresh["model.embed_tokens.weight"]).abs().max().double_value(&[]);
    assert!(moved > 1e-4, "one step must change the weights");
}

#[test]
fn sft_targets_only_the_response_and_pretraining_everything() {
    let tokenizer = Tokenizer::from_dir(&fixture()).unwrap();
    let rows = vec![example("Say hi.", "hi"), example("", "A plain document.")];
    let sft = sequences(&rows, TrainKind::Sft, PromptFormat::Instruction, &tokenizer, 64, "set").unwrap();
    let prompt_len = PromptFormat::Instruction.encode(&tokenizer, "Say hi.").unwrap().len();
    assert!(sft[0].targets[..prompt_len].iter().all(|t| !t));
    assert!(sft[0].targets[prompt_len..].iter().all(|t| *t));
    let pretrain = sequences(&rows, TrainKind::Pretrain, PromptFormat::Instruction, &tokenizer, 64, "set").unwrap();
    assert!(pretrain.iter().all(|s| s.targets.iter().all(|t| *t)));
    assert_eq!(pretrain[1].ids.last().copied(), tokenizer.eos_token_ids().first().map(|&e| i64::from(e)));
}

#[test]
fn bad_datasets_are_clear_errors() {
    let tokenizer = Tokenizer::from_dir(&fixture()).unwrap();
    let err = sequences(&[], TrainKind::Sft, PromptFormat::Instruction, &tokenizer, 64, "useful").unwrap_err();
    assert_eq!(err.to_string(), "data sets useful have no rows to train on");
    let long = vec![example(&"many words here ".repeat(40), "short")];
    let err = sequences(&long, TrainKind::Sft, PromptFormat::Instruction, &tokenizer, 16, "useful").unwrap_err();
    assert!(err.to_string().starts_with("every example of data sets useful is longer than max_seq_len 16"), "{err}");
}

/// Runs job `name` of `run` in replicate 1.
fn run_job(run: &RunDir, name: &str, force: bool, resume: bool, registry: &entangle_model::Registry) -> anyhow::Result<crate::Outcome> {
    crate::run(run, &crate::Job { name, replicate: 1, force, resume }, registry)
}

/// A run directory whose base model is the fixture and whose `set` holds eight examples.
fn tiny_run(dir: &Path) -> RunDir {
    tiny_run_from(dir, "base", 1)
}

/// A run directory whose model `from` is the fixture, with job `tuned` fine-tuning it on the
/// eight examples of `set`, in `replicates` replicates.
fn tiny_run_from(dir: &Path, from: &str, replicates: u32) -> RunDir {
    let run = RunDir::new(dir);
    let pipeline = format!(
        "name = \"t\"\ndevice = \"cpu\"\nreplicates = {replicates}\n[models]\n{from} = \"{}\"\n[train.tuned]\nkind = \"sft\"\nfrom = \"{from}\"\ndata = [\"set\"]\nlr = 1e-3\nbatch_size = 4\ngrad_accum = 1\nmax_steps = 3\n",
        fixture().display()
    );
    std::fs::write(run.pipeline(), pipeline).unwrap();
    Pipeline::load_from_run(&run).unwrap();
    write_table(&run.data_set("set"), &eight_examples()).unwrap();
    run
}

#[test]
fn a_job_writes_its_model_and_loss_curve_and_is_skipped_when_fresh() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run(tmp.path());
    let registry = entangle_models::registry();
    run_job(&run, "tuned", false, false, &registry).unwrap();
    let curve: Vec<LossPoint> = read_table(&run.loss_curve("tuned")).unwrap();
    // Eight examples in batches of four for one epoch: two steps (max_steps = 3 is not reached).
    assert_eq!(curve.len(), 2);
    assert!(run.model("tuned").join("tokenizer.json").exists());
    let ids = Tensor::from_slice(&[3i64, 17, 42, 5]).reshape([1, 4]);
    let tuned = registry.load(&run.model("tuned"), Placement::cpu()).unwrap();
    let base = registry.load(&fixture(), Placement::cpu()).unwrap();
    assert!((logits(tuned.as_ref(), &ids) - logits(base.as_ref(), &ids)).abs().max().double_value(&[]) > 1e-6);
    let modified = std::fs::metadata(run.model("tuned").join("model.safetensors")).unwrap().modified().unwrap();
    run_job(&run, "tuned", false, false, &registry).unwrap();
    let after = std::fs::metadata(run.model("tuned").join("model.safetensors")).unwrap().modified().unwrap();
    assert_eq!(modified, after, "a fresh job must be skipped");
}

fn logits(model: &dyn CausalLm, ids: &Tensor) -> Tensor {
    model.forward(&ForwardInput::tokens(ids), None).unwrap().logits
}

#[test]
fn a_trained_model_reloads_with_identical_logits() {
    let tmp = tempfile::tempdir().unwrap();
    let mut model = fresh_model(2);
    train(model.as_mut(), &encoded(&eight_examples()), &job(4, 1, 1e-2, 4), 3, 2).unwrap();
    model.save(&tmp.path().join("m"), Some(&fixture())).unwrap();
    let reloaded = entangle_models::registry().load(&tmp.path().join("m"), Placement::cpu()).unwrap();
    let ids = Tensor::from_slice(&[3i64, 17, 42, 5, 9]).reshape([1, 5]);
    let (a, b) = (logits(model.as_ref(), &ids), logits(reloaded.as_ref(), &ids));
    assert_eq!(b.kind(), Kind::Float);
    assert!(a.equal(&b), "max diff {}", (a - b).abs().max().double_value(&[]));
}

#[test]
fn a_job_whose_learning_rate_is_always_zero_is_an_error() {
    let mut model = fresh_model(2);
    let before = model.var_store().variables()["model.norm.weight"].copy();
    let warm_single_step = TrainJob { warmup_ratio: 0.05, ..job(8, 1, 1e-2, 1) };
    let err = train(model.as_mut(), &encoded(&eight_examples()), &warm_single_step, 3, 2).unwrap_err();
    assert!(err.to_string().contains("learning rate is 0 at every one of the job's 1 optimiser steps"), "{err}");
    assert!(model.var_store().variables()["model.norm.weight"].equal(&before));
    let frozen = job(8, 1, 0.0, 3);
    assert!(train(model.as_mut(), &encoded(&eight_examples()), &frozen, 3, 2).is_err());
    train(model.as_mut(), &encoded(&eight_examples()), &job(8, 1, 1e-2, 1), 3, 2).unwrap();
}

#[test]
fn unknown_job_lists_the_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run(tmp.path());
    let err = run_job(&run, "nope", false, false, &entangle_models::registry()).unwrap_err();
    assert_eq!(err.to_string(), "the pipeline has no training job `nope`; jobs: tuned");
}

/// A job that saves its state and resumes from it makes the same model and loss curve as one
/// that never stopped, across an epoch's end too.
#[test]
fn a_resumed_job_ends_where_an_uninterrupted_one_does() {
    let tmp = tempfile::tempdir().unwrap();
    let sequences = encoded(&eight_examples());
    // Four micro-batches an epoch; five steps; the state saved after step 3 only.
    let job = TrainJob { save_every: Some(3), ..job(2, 1, 1e-2, 5) };
    let dir = tmp.path().join("state");
    let state = || StateDir { dir: &dir, key: "k" };
    let mut whole = fresh_model(6);
    let whole_curve = train_resumable(whole.as_mut(), &sequences, &job, 3, 2, Some(Resumable { state: state(), saved: None })).unwrap();
    let saved = state().load().unwrap();
    assert_eq!(saved.step, 3);
    let mut resumed = entangle_models::registry().load(&state().model(), Placement::cpu()).unwrap();
    let resumed_curve =
        train_resumable(resumed.as_mut(), &sequences, &job, 3, 2, Some(Resumable { state: state(), saved: Some(saved) })).unwrap();
    let points = |curve: &[LossPoint]| curve.iter().map(|p| (p.step, p.loss, p.lr, p.tokens)).collect::<Vec<_>>();
    assert_eq!(points(&resumed_curve), points(&whole_curve));
    let (a, b) = (whole.var_store().variables(), resumed.var_store().variables());
    for (name, tensor) in &a {
        assert!(tensor.equal(&b[name]), "{name}");
    }
}

#[test]
fn only_the_job_that_saved_a_state_resumes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let err = StateDir { dir: &dir, key: "k" }.load().err().unwrap();
    assert!(err.to_string().contains("there is no training state to resume"), "{err}");
    let mut model = fresh_model(6);
    let job = TrainJob { save_every: Some(1), ..job(4, 1, 1e-2, 2) };
    let resumable = Resumable { state: StateDir { dir: &dir, key: "k" }, saved: None };
    train_resumable(model.as_mut(), &encoded(&eight_examples()), &job, 3, 2, Some(resumable)).unwrap();
    let err = StateDir { dir: &dir, key: "other" }.load().err().unwrap();
    assert!(err.to_string().contains("saved by a different configuration"), "{err}");
}

#[test]
fn a_saved_state_is_kept_until_the_job_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tiny_run(tmp.path());
    let text = std::fs::read_to_string(run.pipeline()).unwrap().replace("max_steps = 3\n", "max_steps = 3\nsave_every = 1\n");
    std::fs::write(run.pipeline(), text).unwrap();
    let registry = entangle_models::registry();
    let err = run_job(&run, "tuned", false, true, &registry).unwrap_err();
    assert!(err.to_string().contains("there is no training state to resume"), "{err}");
    std::fs::create_dir_all(run.train_state("tuned")).unwrap();
    let err = run_job(&run, "tuned", false, false, &registry).unwrap_err();
    assert!(err.to_string().contains("holds a saved state of this job; pass --resume"), "{err}");
    run_job(&run, "tuned", true, false, &registry).unwrap();
    assert!(run.model("tuned").join("model.safetensors").exists());
    assert!(!run.train_state("tuned").exists());
}

/// A fine-tune of the aligned model is drawn per replicate, each with its own data order, into
/// its replicate's directory, and the same replicate trains to the same bits again.
#[test]
fn replicates_of_a_fine_tune_differ_from_each_other_and_reproduce_bit_for_bit() {
    let registry = entangle_models::registry();
    let weights = |run: &RunDir, replicate: u32| {
        let dir = run.replicate(replicate).model("tuned");
        registry.load(&dir, Placement::cpu()).unwrap().var_store().variables()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (first, second) = (tiny_run_from(a.path(), "aligned", 2), tiny_run_from(b.path(), "aligned", 2));
    for (run, replicate) in [(&first, 1), (&first, 2), (&second, 2)] {
        crate::run(run, &crate::Job { name: "tuned", replicate, force: false, resume: false }, &registry).unwrap();
    }
    let manifest = entangle_artifacts::Manifest::load(&first).unwrap();
    assert!(manifest.stages.contains_key("train:tuned@1") && manifest.stages.contains_key("train:tuned@2"));
    let curve: Vec<LossPoint> = read_table(&first.replicate(2).loss_curve("tuned")).unwrap();
    assert!(curve.iter().all(|point| point.replicate == 2));
    let (one, two, again) = (weights(&first, 1), weights(&first, 2), weights(&second, 2));
    assert!(two.iter().all(|(name, tensor)| tensor.equal(&again[name])), "the same replicate reproduces bit for bit");
    assert!(two.iter().any(|(name, tensor)| !tensor.equal(&one[name])), "replicates draw their own data order");
    let err = crate::run(&first, &crate::Job { name: "tuned", replicate: 3, force: false, resume: false }, &registry).unwrap_err();
    assert!(err.to_string().contains("replicate 3 does not exist"), "{err}");
}
