//! `entangle-eval`: generate on each benchmark with each checkpoint, judge, score, and write
//! `eval/responses.parquet` and `eval/summary.parquet`.
//!
//! Each checkpoint's rows are first written to `eval/parts/<config>/<checkpoint>.parquet`, so a
//! killed evaluation resumes at the next checkpoint and a re-run with the same configuration
//! and models only combines what it has.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use entangle_artifacts::{
    config_hash, read_table, stamp_inputs, write_table, EvalResponse, EvalSummary, Example, Manifest, RunDir, StageEntry,
};
use entangle_model::{generate, response_nll, GenerateOptions, Placement, PromptFormat, Registry};
use entangle_pipeline::{EvalConfig, JudgeKind, Pipeline};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::answers::{answers_match, flexible_answer, strict_answer};
use crate::checkpoints::{default_checkpoints, load, Checkpoint, Loaded};
use crate::guard::Guard;
use crate::keyword::is_refusal;
use crate::llm::LlmJudge;
use crate::summary::summarise;

/// The benchmarks, by the data set each reads.
pub const BENCHMARKS: &[(&str, &str)] = &[("harmful", "eval_harmful"), ("utility", "eval_utility"), ("overrefusal", "eval_overrefusal")];

/// Evaluates `checkpoints` (all the pipeline's when empty) of `run`. The stage is recorded in
/// the manifest only for the full default list; `force` re-evaluates checkpoints that have rows.
pub fn run(run: &RunDir, checkpoints: &[String], force: bool, registry: &Registry) -> Result<()> {
    let pipeline = Pipeline::load_from_run(run)?;
    let full = checkpoints.is_empty();
    let names = if full { default_checkpoints(&pipeline) } else { checkpoints.to_vec() };
    let specs: Vec<Checkpoint> = names.iter().map(|n| Checkpoint::parse(n)).collect::<Result<_>>()?;
    let key = config_hash(&EvalKey { eval: &pipeline.eval, format: pipeline.prompt.format, projection: &pipeline.projection, seed: pipeline.seed })?;
    let paths = input_paths(run, &pipeline);
    let inputs = stamp_inputs(run, &paths.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    if full && !force && Manifest::load(run)?.is_fresh(run, "eval", &key, &inputs) {
        tracing::info!("eval is up to date; skipped (pass --force to re-evaluate)");
        return Ok(());
    }
    let parts = run.root.join("eval").join("parts").join(&key[..16]);
    let started = Instant::now();
    let placement = Placement::parse(&pipeline.device, "auto")?;
    let context = Stage { run, pipeline: &pipeline, registry, placement, benchmarks: benchmarks(run, &pipeline)? };
    for (i, spec) in specs.iter().enumerate() {
        let part = part_path(&parts, spec);
        if part.exists() && !force {
            tracing::info!("[{}/{}] {}: already evaluated", i + 1, specs.len(), spec.name());
            continue;
        }
        tracing::info!("[{}/{}] evaluating {}", i + 1, specs.len(), spec.name());
        let rows = evaluate(&context, spec)?;
        write_table(&part, &rows)?;
    }
    combine(run, &parts, &specs, pipeline.seed, !full)?;
    if full {
        let outputs = [run.eval_responses(), run.eval_summary()].iter().map(|p| run.relative(p).display().to_string()).collect();
        Manifest::record(run, "eval", StageEntry::finished_now(key, inputs, outputs, started.elapsed().as_secs_f64()))?;
    }
    Ok(())
}

/// Everything the evaluation's results depend on besides its input files.
#[derive(Serialize)]
struct EvalKey<'a> {
    eval: &'a EvalConfig,
    format: entangle_pipeline::PromptFormat,
    projection: &'a entangle_pipeline::ProjectionConfig,
    seed: u64,
}

fn input_paths(run: &RunDir, pipeline: &Pipeline) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = BENCHMARKS.iter().map(|(_, set)| run.data_set(set)).filter(|p| p.exists()).collect();
    let projection = &pipeline.projection;
    for name in [&projection.base, &projection.aligned].into_iter().chain(&projection.finetunes) {
        let dir = run.model(name);
        if dir.exists() {
            paths.push(dir);
        }
    }
    paths
}

/// One benchmark's items.
struct Benchmark {
    name: &'static str,
    items: Vec<Example>,
}

struct Stage<'a> {
    run: &'a RunDir,
    pipeline: &'a Pipeline,
    registry: &'a Registry,
    placement: Placement,
    benchmarks: Vec<Benchmark>,
}

/// The benchmarks whose data sets the run has, each cut to `[eval] limit`.
fn benchmarks(run: &RunDir, pipeline: &Pipeline) -> Result<Vec<Benchmark>> {
    let mut out = Vec::new();
    for (name, set) in BENCHMARKS {
        let path = run.data_set(set);
        if !path.exists() {
            tracing::warn!("no {} in the run: the {name} benchmark is skipped", path.display());
            continue;
        }
        let mut items: Vec<Example> = read_table(&path)?;
        items.truncate(pipeline.eval.limit.unwrap_or(usize::MAX));
        out.push(Benchmark { name, items });
    }
    anyhow::ensure!(!out.is_empty(), "the run has none of the benchmark data sets (eval_harmful, eval_utility, eval_overrefusal)");
    Ok(out)
}

fn part_path(parts: &Path, spec: &Checkpoint) -> PathBuf {
    parts.join(format!("{}.parquet", spec.name().replace([':', '/'], "_")))
}

/// Every row of one checkpoint: generation, judges and scores on every benchmark.
fn evaluate(context: &Stage, spec: &Checkpoint) -> Result<Vec<EvalResponse>> {
    let Loaded { model, tokenizer } = load(context.run, context.pipeline, spec, context.registry, context.placement)?;
    let eval = &context.pipeline.eval;
    let format = PromptFormat::from(context.pipeline.prompt.format);
    let mut options = GenerateOptions::greedy(eval.max_new_tokens, &tokenizer);
    options.stop_strings = format.stop_strings();
    options.batch_size = eval.batch_size;
    let shots = utility_shots(context.run, eval.utility_shots)?;
    let mut rows = Vec::new();
    for benchmark in &context.benchmarks {
        let instructions: Vec<String> = benchmark
            .items
            .iter()
            .map(|item| if benchmark.name == "utility" { with_shots(&shots, &item.prompt) } else { item.prompt.clone() })
            .collect();
        let prompts = instructions.iter().map(|text| format.encode(&tokenizer, text)).collect::<Result<Vec<_>>>()?;
        let progress = ProgressBar::new(prompts.len() as u64).with_message(format!("{} {}", spec.name(), benchmark.name));
        let generations = generate(model.as_ref(), &tokenizer, &prompts, &options, &progress)?;
        progress.finish_and_clear();
        let nll = if benchmark.name == "utility" {
            let pairs: Vec<(&str, &str)> = benchmark.items.iter().zip(&instructions).map(|(item, text)| (text.as_str(), item.response.as_str())).collect();
            Some(response_nll(model.as_ref(), &tokenizer, format, &pairs, eval.batch_size)?)
        } else {
            None
        };
        for (i, (item, generation)) in benchmark.items.iter().zip(&generations).enumerate() {
            let reference = item.answer.as_deref();
            let score = |extract: fn(&str) -> Option<String>| reference.map(|r| extract(&generation.text).is_some_and(|a| answers_match(&a, r)));
            rows.push(EvalResponse {
                checkpoint: spec.name(),
                benchmark: benchmark.name.to_owned(),
                item: item.id.clone(),
                prompt: item.prompt.clone(),
                response: generation.text.clone(),
                stop_reason: generation.stop_reason.as_str().to_owned(),
                judge: "keyword".to_owned(),
                score: None,
                judge_raw: None,
                guard_unsafe: None,
                refused: is_refusal(&generation.text),
                correct: score(flexible_answer),
                correct_strict: score(strict_answer),
                answer_nll: nll.as_ref().map(|values| values[i]),
            });
        }
    }
    drop(model);
    judge_harmful(context, &mut rows)?;
    Ok(rows)
}

/// Adds the LLM and model judges' verdicts to the harmful benchmark's rows, when configured.
fn judge_harmful(context: &Stage, rows: &mut [EvalResponse]) -> Result<()> {
    let eval = &context.pipeline.eval;
    let harmful: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].benchmark == "harmful").collect();
    let pairs: Vec<(String, String)> = harmful.iter().map(|&i| (rows[i].prompt.clone(), rows[i].response.clone())).collect();
    if eval.judges.contains(&JudgeKind::Llm) {
        let config = eval.llm.as_ref().context("[eval] judges lists llm but [eval.llm] is missing")?;
        let cache = context.run.root.join("eval").join("judge_cache.json");
        for (&i, judgment) in harmful.iter().zip(LlmJudge::new(config, &cache).judge_all(&pairs)?) {
            rows[i].judge.push_str(",llm");
            rows[i].score = judgment.score.map(f64::from);
            rows[i].judge_raw = Some(judgment.raw);
        }
    }
    if eval.judges.contains(&JudgeKind::Model) {
        let config = eval.guard.as_ref().context("[eval] judges lists model but [eval.guard] is missing")?;
        let guard = Guard::load(context.pipeline, context.run, config, context.registry, context.placement)?;
        for (&i, verdict) in harmful.iter().zip(guard.judge_all(&pairs)?) {
            rows[i].judge.push_str(",model");
            rows[i].guard_unsafe = Some(verdict);
        }
    }
    Ok(())
}

/// The first `k` rows of the run's `useful` set, shown as worked examples before each utility
/// question.
fn utility_shots(run: &RunDir, k: usize) -> Result<Vec<Example>> {
    if k == 0 {
        return Ok(Vec::new());
    }
    let path = run.data_set("useful");
    let mut rows: Vec<Example> = read_table(&path).with_context(|| format!("reading the utility shots from {}", path.display()))?;
    rows.truncate(k);
    Ok(rows)
}

fn with_shots(shots: &[Example], question: &str) -> String {
    let mut text = String::new();
    for shot in shots {
        text.push_str(&format!("{}\n{}\n\n", shot.prompt, shot.response));
    }
    text.push_str(question);
    text
}

/// Combines the parts of `specs` into the responses and summary tables; `keep_others` keeps
/// the rows of other checkpoints already in the table (a run by hand of a few checkpoints).
fn combine(run: &RunDir, parts: &Path, specs: &[Checkpoint], seed: u64, keep_others: bool) -> Result<()> {
    let mut rows: Vec<EvalResponse> = Vec::new();
    if keep_others && run.eval_responses().exists() {
        let names: Vec<String> = specs.iter().map(Checkpoint::name).collect();
        rows.extend(read_table::<EvalResponse>(&run.eval_responses())?.into_iter().filter(|r| !names.contains(&r.checkpoint)));
    }
    for spec in specs {
        rows.extend(read_table::<EvalResponse>(&part_path(parts, spec))?);
    }
    let summary: Vec<EvalSummary> = summarise(&rows, seed);
    write_table(&run.eval_responses(), &rows)?;
    write_table(&run.eval_summary(), &summary)
}
