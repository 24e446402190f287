//! Bad pipeline files are one clear error, never a panic: a few hundred mutations of the shipped
//! tiny and smoke pipelines — wrong types, out-of-range and non-finite numbers, names that would
//! leave the run directory, missing tables — through `cargo xtask reproduce --dry-run` and the
//! stage binaries, which must each exit 1 with one `error:` line.

use std::path::Path;
use std::process::Output;

use entangle_tests::{stage, workspace, xtask};

/// One mutated pipeline file.
struct Mutation {
    what: String,
    text: String,
    /// Whether the file is invalid for sure. Removing a table may leave a valid pipeline (its
    /// defaults), which must then pass; a changed value never does.
    invalid: bool,
}

/// Values that are wrong in place of any value of the shipped pipelines: numbers out of every
/// field's range or not finite, and values of the wrong type or naming no model, set or file.
fn replacements(value: &str) -> Vec<String> {
    let mut out: Vec<String> = ["\"\"", "\"..\"", "[[1]]", "{ a = 1 }"].map(String::from).to_vec();
    if value.starts_with('"') {
        out.extend(["1", "-1"].map(String::from));
    } else {
        out.extend(["nan", "inf", "-inf", "-1", "true"].map(String::from));
    }
    if let Some(inner) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        let first = inner.split(',').next().unwrap_or_default().trim();
        let bad = if first.starts_with('"') { ["\"../x\"", "\"\"", "\"a/b\""].to_vec() } else { ["nan", "-inf", "-1"].to_vec() };
        out.extend(bad.into_iter().map(|b| value.replacen(first, b, 1)));
    }
    out
}

/// Every value of `text` replaced by each of its [`replacements`], and every table removed.
fn mutations(name: &str, text: &str) -> Vec<Mutation> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((key, value)) = line.split_once('=').filter(|_| !line.starts_with('#') && !line.starts_with('[')) else {
            continue;
        };
        let value = value.split(" #").next().unwrap_or_default().trim();
        for bad in replacements(value) {
            let mut changed = lines.clone();
            let new_line = format!("{key}= {bad}");
            changed[i] = &new_line;
            out.push(Mutation { what: format!("{name}:{}: {new_line}", i + 1), text: changed.join("\n"), invalid: true });
        }
    }
    let headers: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with('[')).collect();
    for (n, &start) in headers.iter().enumerate() {
        let end = headers.get(n + 1).copied().unwrap_or(lines.len());
        let kept: Vec<&str> = lines[..start].iter().chain(&lines[end..]).copied().collect();
        out.push(Mutation { what: format!("{name}: without {}", lines[start]), text: kept.join("\n"), invalid: false });
    }
    out
}

/// The stage binaries with the arguments that reach their pipeline.
const STAGES: [&[&str]; 8] = [
    &["entangle-prepare"],
    &["entangle-train", "--job", "aligned"],
    &["entangle-project"],
    &["entangle-mso"],
    &["entangle-capture", "--model", "aligned"],
    &["entangle-eval"],
    &["entangle-report"],
    &["entangle-import", "--model", "aligned"],
];

/// `None` when the process ended with exit code 1 and printed exactly one line holding
/// `error:`, otherwise what it did instead.
fn one_error(what: &str, output: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors = stderr.lines().filter(|line| line.contains("error:")).count();
    let clean = output.status.code() == Some(1) && errors == 1 && !stderr.contains("panicked");
    (!clean).then(|| format!("{what}: {:?}, {}", output.status, stderr.lines().last().unwrap_or_default()))
}

#[test]
fn mutated_pipelines_are_one_error_line_never_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for name in ["tiny", "smoke"] {
        let text = std::fs::read_to_string(workspace().join("pipelines").join(format!("{name}.toml"))).unwrap();
        all.extend(mutations(name, &text));
    }
    assert!(all.len() >= 300, "only {} mutations", all.len());
    let mut wrong = Vec::new();
    for (n, mutation) in all.iter().enumerate() {
        let file = tmp.path().join("pipeline.toml");
        std::fs::write(&file, &mutation.text).unwrap();
        let output = xtask().unwrap().args(["reproduce", "--dry-run", "--pipeline"]).arg(&file).output().unwrap();
        if !mutation.invalid && output.status.success() {
            continue;
        }
        wrong.extend(one_error(&format!("reproduce --dry-run, {}", mutation.what), &output));
        // Every sixth file also goes to a stage binary, in turn (each loads libtorch: ~0.3 s).
        if mutation.invalid && n % 6 == 0 {
            wrong.extend(stage_error(STAGES[(n / 6) % STAGES.len()], tmp.path(), mutation));
        }
    }
    assert!(wrong.is_empty(), "{} of {} mutations were not one clear error:\n{}", wrong.len(), all.len(), wrong.join("\n"));
}

/// Runs one stage binary on a run directory holding the mutated pipeline; see [`one_error`].
fn stage_error(args: &[&str], dir: &Path, mutation: &Mutation) -> Option<String> {
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("pipeline.toml"), &mutation.text).unwrap();
    let output = stage(args[0]).unwrap().args(&args[1..]).arg("--run").arg(&run).output().unwrap();
    one_error(&format!("{}, {}", args.join(" "), mutation.what), &output)
}
