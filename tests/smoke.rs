//! The smoke pipeline end to end: from scratch, every artifact with its documented schema,
//! the report, a re-run that skips everything, a deleted artifact that reruns only its
//! dependents, a stage killed midway that resumes, and one writer per run at a time.
//!
//! One run from scratch is shared; the other tests work on copies of it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use entangle_artifacts::{
    read_activations, read_table, ActivationMso, EvalResponse, EvalSummary, Example, LossPoint, ProjectionDiagnostic, ProjectionPerTensor,
    RunDir, RunLock, UpdateMso,
};
use entangle_tests::{check_schema, copy_run, files_under, finished, reproduce, run_smoke, spawn_smoke, stage};

/// The smoke pipeline's models trained once and those drawn per replicate (`replicates = 2`).
const FIXED: [&str; 2] = ["base", "aligned"];
const FINETUNES: [&str; 3] = ["useful", "harmful", "contaminated"];
const REPLICATES: [u32; 2] = [1, 2];
/// Checkpoints × benchmark items: base and aligned once; per replicate the 3 fine-tunes and
/// their 24 merges.
const RESPONSES: usize = (2 + 2 * (3 + 24)) * 48;

/// A fresh directory under cargo's per-target temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("smoke-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The smoke study, run once from scratch.
fn smoke_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let run = scratch("fresh");
        run_smoke(&run, &[]).unwrap();
        run
    })
}

#[test]
fn the_smoke_study_runs_from_scratch_and_every_artifact_has_its_documented_schema() {
    let run = RunDir::new(smoke_run());
    for set in ["pretrain", "align", "useful", "harmful", "contaminated", "eval_harmful", "eval_utility", "eval_overrefusal"] {
        check_schema::<Example>(&run.data_set(set)).unwrap();
    }
    let models = FIXED.map(|job| (run.clone(), job)).into_iter().chain(
        REPLICATES.iter().flat_map(|&r| FINETUNES.map(|job| (run.replicate(r), job))),
    );
    for (scope, job) in models {
        check_schema::<LossPoint>(&scope.loss_curve(job)).unwrap();
        let dir = scope.model(job);
        assert!(dir.join("config.json").exists() && dir.join("model.safetensors").exists(), "{}", dir.display());
    }
    for replicate in REPLICATES {
        let scope = run.replicate(replicate);
        let diagnostics = check_schema::<ProjectionDiagnostic>(&scope.projection_diagnostics()).unwrap();
        assert_eq!(diagnostics, 3 * 2 * 2 * 2, "3 fine-tunes x 2 kinds x 2 methods x 2 fractions");
        check_schema::<ProjectionPerTensor>(&scope.projection_per_tensor()).unwrap();
        check_schema::<UpdateMso>(&scope.update_mso()).unwrap();
        for model in ["useful", "contaminated"] {
            assert!(read_activations(&scope.activations(model)).is_ok(), "{model} of replicate {replicate}");
        }
    }
    for model in FIXED {
        assert!(read_activations(&run.activations(model)).is_ok(), "{model}");
    }
    let overlaps: Vec<ActivationMso> = read_table(&run.activation_mso()).unwrap();
    let captured: BTreeSet<(String, u32)> = overlaps.iter().map(|row| (row.model.clone(), row.replicate)).collect();
    assert_eq!(captured.len(), 2 + 2 * 2, "base and aligned once, useful and contaminated per replicate: {captured:?}");
    check_schema::<ActivationMso>(&run.activation_mso()).unwrap();
    assert_eq!(check_schema::<EvalResponse>(&run.eval_responses()).unwrap(), RESPONSES);
    check_schema::<EvalSummary>(&run.eval_summary()).unwrap();
    let summary: Vec<EvalSummary> = read_table(&run.eval_summary()).unwrap();
    let replicates = |checkpoint: &str| -> BTreeSet<u32> {
        summary.iter().filter(|row| row.checkpoint == checkpoint).map(|row| row.replicate).collect()
    };
    assert_eq!((replicates("aligned"), replicates("harmful:topk:orth:0.25")), (BTreeSet::from([0]), BTreeSet::from([1, 2])));
    let finished = finished(&run.root).unwrap();
    for stage in ["prepare", "train:aligned", "train:useful@2", "project@1", "project@2", "mso@2", "capture:useful@2", "eval", "report"] {
        assert!(finished.contains_key(stage), "{stage} is not in the manifest: {finished:?}");
    }
}

#[test]
fn the_report_renders_with_its_figures() {
    let report = RunDir::new(smoke_run()).report_dir();
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    let markdown = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(html.contains("<svg"), "index.html inlines its figures");
    assert!(markdown.contains("Findings"), "report.md has a findings section");
    let figures = files_under(&report).into_iter().filter(|f| f.extension().is_some_and(|e| e == "svg")).count();
    assert!(figures >= 5, "only {figures} SVG figures");
}

#[test]
fn a_rerun_skips_every_stage() {
    let run = scratch("rerun");
    copy_run(smoke_run(), &run).unwrap();
    let before = finished(&run).unwrap();
    let output = run_smoke(&run, &[]).unwrap();
    assert_eq!(finished(&run).unwrap(), before, "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn deleting_an_artifact_reruns_only_what_depends_on_it() {
    let run = scratch("delete");
    copy_run(smoke_run(), &run).unwrap();
    let before = finished(&run).unwrap();
    std::fs::remove_dir_all(RunDir::new(&run).replicate(1).model("harmful")).unwrap();
    // Its stderr is a pipe, as in a batch job: progress comes as log lines, without colour.
    let output = reproduce(&run, &[]).unwrap().env("ENTANGLE_PROGRESS_SECONDS", "0.001").output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let progress = |what: &str| stderr.lines().any(|l| l.contains(&format!(" {what} (")) && l.contains("/s)"));
    assert!(progress("steps") && progress("prompts"), "no training or generation progress line:\n{stderr}");
    assert!(!stderr.contains('\x1b'), "escape codes in a batch log");
    let after = finished(&run).unwrap();
    let rerun: BTreeSet<&str> = after.iter().filter(|(stage, at)| before.get(*stage) != Some(at)).map(|(stage, _)| stage.as_str()).collect();
    assert_eq!(rerun, BTreeSet::from(["train:harmful@1", "project@1", "mso@1", "eval", "report"]));
}

#[test]
fn a_stage_killed_midway_leaves_the_run_resumable() {
    let run = scratch("killed");
    copy_run(smoke_run(), &run).unwrap();
    let dir = RunDir::new(&run);
    std::fs::remove_dir_all(run.join("eval")).unwrap();
    let mut command = spawn_smoke(&run, &[]).unwrap();
    let first_parts = wait_for_parts(&run.join("eval/parts"), Duration::from_secs(300));
    let status = Command::new("kill").args(["-KILL", "--", &format!("-{}", command.id())]).status().unwrap();
    assert!(status.success());
    command.wait().unwrap();
    assert!(!dir.eval_responses().exists(), "the killed evaluation wrote no combined table");
    run_smoke(&run, &[]).unwrap();
    for part in &first_parts {
        assert!(part.0.exists(), "{} was kept", part.0.display());
        assert_eq!(std::fs::metadata(&part.0).unwrap().modified().unwrap(), part.1, "{} was not evaluated again", part.0.display());
    }
    assert_eq!(read_table::<EvalResponse>(&dir.eval_responses()).unwrap().len(), RESPONSES);
}

#[test]
fn a_run_held_by_another_process_is_refused_with_its_pid() {
    let run = scratch("locked");
    copy_run(smoke_run(), &run).unwrap();
    let before = finished(&run).unwrap();
    let lock = RunLock::acquire(&RunDir::new(&run)).unwrap();
    let holder = format!("in use by process {}", std::process::id());
    let by_hand = stage("entangle-report").unwrap().args(["--force", "--run"]).arg(&run).output().unwrap();
    let reproduced = reproduce(&run, &[]).unwrap().output().unwrap();
    for output in [by_hand, reproduced] {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error:")).collect();
        assert!(errors.len() == 1 && errors[0].contains(&holder), "{stderr}");
    }
    assert_eq!(finished(&run).unwrap(), before, "nothing ran");
    drop(lock);
    run_smoke(&run, &["--only", "report"]).unwrap();
}

/// Waits until the evaluation has written its first checkpoint's part; returns the parts and
/// their modification times.
fn wait_for_parts(parts: &Path, timeout: Duration) -> Vec<(PathBuf, std::time::SystemTime)> {
    let started = Instant::now();
    loop {
        let found: Vec<(PathBuf, std::time::SystemTime)> = files_under(parts)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .map(|p| {
                let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
                (p, modified)
            })
            .collect();
        if !found.is_empty() {
            return found;
        }
        assert!(started.elapsed() < timeout, "the evaluation wrote no part within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
