//! The human-readable report of a run: the last stage, `report`, after evaluation and the
//! overlap measurements. It reads only the run directory's artifacts — the Parquet tables
//! (through `entangle_artifacts`' typed reader, aggregated with polars), the pipeline file and
//! the manifest — never a model, and writes `report/index.html` (self-contained: figures inlined
//! as SVG), `report/report.md`, and every figure as `report/<name>.svg` plus `report/<name>.png`
//! when a TrueType font is available (plotters draws them).
//!
//! [`run`] is the stage: skip when the manifest shows the report up to date, else [`build`] the
//! [`Report`] (sections of paragraphs, figures, tables and findings computed from the data) and
//! [`write()`] it. Each section appears with a note saying what is missing when its table does not
//! exist yet, so a partial run still gets a report.
//!
//! ```no_run
//! use entangle_artifacts::RunDir;
//! use entangle_report::{run, system_font, Options};
//!
//! # fn main() -> anyhow::Result<()> {
//! let dir = RunDir::new(std::path::Path::new("runs/tiny"));
//! run(&dir, &Options { force: false, font: system_font() })?;
//! # Ok(()) }
//! ```

mod activation;
mod comparisons;
mod document;
mod evaluation;
mod figure;
mod font;
mod format;
mod frames;
mod names;
mod overview;
mod projection;
mod training;
mod update;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use entangle_artifacts::{
    replace_dir_atomic, stage_version, write_atomic, ActivationMso, EvalResponse, EvalSummary, Manifest, ProjectionDiagnostic,
    ProjectionPerTensor, RunDir, Stage, StageVersion, UpdateMso,
};
use entangle_pipeline::Pipeline;
use serde::Serialize;

pub use document::{Block, Report, Section, Table};
pub use figure::{Figure, Marker, Panel, Point, Reference, Series};
pub use font::system_font;

use frames::{load, load_replicates};

/// The manifest name of this stage.
pub const STAGE: &str = "report";

/// How the stage runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Rebuild even when the manifest says the report is up to date.
    pub force: bool,
    /// The TrueType/OpenType font PNG figures are drawn with; without one only SVGs are written.
    pub font: Option<PathBuf>,
}

pub use entangle_artifacts::Outcome;

/// The code version of stage `report`: bump `algorithm` when the report would change.
const VERSION: StageVersion = stage_version!(2);

/// What the report's output depends on besides its input files and code.
#[derive(Serialize)]
struct ReportKey {
    font: Option<String>,
}

/// The stage `report`: builds and writes the report of `run` unless it is up to date.
pub fn run(run: &RunDir, options: &Options) -> Result<Outcome> {
    let pipeline = Pipeline::load_from_run(run)?;
    let inputs = input_paths(run, &pipeline);
    let present: Vec<&Path> = inputs.iter().filter(|p| p.exists()).map(PathBuf::as_path).collect();
    let key = ReportKey { font: options.font.as_ref().map(|f| f.display().to_string()) };
    let stage = Stage::new(run, STAGE, VERSION, &key, &present)?;
    stage.run(options.force, || {
        let png = match &options.font {
            Some(path) => {
                font::register(path)?;
                true
            }
            None => {
                tracing::warn!("no font found: writing SVG figures only (pass --font FILE.ttf for PNG figures too)");
                false
            }
        };
        let report = build(run, &pipeline)?;
        write(&run.report_dir(), &report, png)?;
        tracing::info!("report written to {}", run.report_dir().join("index.html").display());
        Ok(["index.html", "report.md"].map(|name| run.report_dir().join(name)).to_vec())
    })
}

/// Every table the report reads, whether it exists or not, and the pipeline file.
fn input_paths(run: &RunDir, pipeline: &Pipeline) -> Vec<PathBuf> {
    let mut paths = vec![run.pipeline()];
    for job in pipeline.train.keys() {
        for replicate in pipeline.replicates_of(job) {
            paths.extend(pipeline.run_dir_of(run, job, replicate).ok().map(|scope| scope.loss_curve(job)));
        }
    }
    for scope in pipeline.replicate_numbers().map(|replicate| run.replicate(replicate)) {
        paths.extend([scope.projection_diagnostics(), scope.projection_per_tensor(), scope.update_mso()]);
    }
    paths.extend([run.eval_summary(), run.eval_responses(), run.activation_mso()]);
    paths
}

/// The report of `run`, from whichever of its tables exist. Tables of several replicates are
/// pooled: evaluation metrics and paired differences over replicates and prompts, projection
/// diagnostics averaged, overlaps taken over every replicate's rows.
pub fn build(run: &RunDir, pipeline: &Pipeline) -> Result<Report> {
    let responses = load::<EvalResponse>(&run.eval_responses())?.map(|rows| comparisons::Responses::of(&rows));
    let summary = load::<EvalSummary>(&run.eval_summary())?.map(|rows| {
        let rows = match &responses {
            Some(responses) => responses.pooled(&rows, pipeline.seed),
            None => rows,
        };
        evaluation::Summary { rows, pipeline }
    });
    let updates = load_replicates::<UpdateMso>(run, pipeline, RunDir::update_mso)?.map(|rows| update::Overlaps::of(&rows)).transpose()?;
    let activations = load::<ActivationMso>(&run.activation_mso())?
        .map(|rows| activation::Overlaps::of(&rows, &pipeline.capture.models, pipeline.capture_format().name()))
        .transpose()?;
    let diagnostics = load_replicates::<ProjectionDiagnostic>(run, pipeline, RunDir::projection_diagnostics)?.map(|rows| projection::averaged(&rows));
    let per_tensor = load_replicates::<ProjectionPerTensor>(run, pipeline, RunDir::projection_per_tensor)?;
    let training = training::Training::load(run, pipeline)?;
    let (projection_section, projection_findings) =
        projection::section(diagnostics.as_deref(), per_tensor.as_deref(), pipeline)?;

    let mut findings: Vec<String> = Vec::new();
    let mut unknown: Vec<&str> = Vec::new();
    match &summary {
        Some(summary) => {
            findings.extend(evaluation::model_findings(summary));
            if let Some(responses) = &responses {
                findings.extend(comparisons::findings(summary, responses));
            }
        }
        None => unknown.push("harmfulness and utility (eval/summary.parquet)"),
    }
    match &updates {
        Some(updates) => findings.extend(updates.findings()),
        None => unknown.push("update-space overlap (replicates/<r>/mso/update_spaces.parquet)"),
    }
    match &activations {
        Some(activations) => findings.extend(activations.findings()),
        None => unknown.push("activation-space overlap (mso/activation_spaces.parquet)"),
    }
    match &diagnostics {
        Some(_) => findings.extend(projection_findings),
        None => unknown.push("projection diagnostics (replicates/<r>/projection/diagnostics.parquet)"),
    }
    findings.extend(training.findings());

    let mut findings_section = Section::new("findings", "Findings");
    findings_section.push(Block::Paragraph(
        "Each sentence is computed from this run's tables when the report is written; the sections below show the \
         figures and tables behind it."
            .into(),
    ));
    if !findings.is_empty() {
        findings_section.push(Block::List(findings));
    }
    if !unknown.is_empty() {
        findings_section.push(Block::Missing(format!(
            "No findings yet on {}: the tables are missing.",
            format::prose_list(&unknown.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>())
        )));
    }
    let inputs: Vec<(String, bool)> =
        input_paths(run, pipeline).iter().skip(1).map(|p| (overview::display(run, p), p.exists())).collect();
    let sections = vec![
        findings_section,
        overview::section(run, pipeline, &Manifest::load(run)?, &inputs),
        evaluation::projection_section(summary.as_ref()),
        update::section(updates.as_ref()),
        activation::section(activations.as_ref()),
        projection_section,
        training::section(&training, pipeline),
        evaluation::tables_section(summary.as_ref(), responses.as_ref()),
    ];
    Ok(Report { title: format!("entangle report: {}", pipeline.name), sections })
}

/// Writes `report` into the directory `dir`, replacing it whole: every figure as SVG (and PNG
/// when `png`), index.html with the SVGs inlined, and report.md.
pub fn write(dir: &Path, report: &Report, png: bool) -> Result<()> {
    replace_dir_atomic(dir, |tmp| {
        let mut svgs = BTreeMap::new();
        for figure in report.figures() {
            let svg = figure.svg()?;
            write_atomic(&tmp.join(format!("{}.svg", figure.name)), |w| Ok(w.write_all(svg.as_bytes())?))?;
            if png {
                let bytes = figure.png().with_context(|| format!("drawing {}.png", figure.name))?;
                write_atomic(&tmp.join(format!("{}.png", figure.name)), |w| Ok(w.write_all(&bytes)?))?;
            }
            svgs.insert(figure.name.clone(), svg);
        }
        let html = report.html(&svgs);
        write_atomic(&tmp.join("index.html"), |w| Ok(w.write_all(html.as_bytes())?))?;
        let markdown = report.markdown();
        write_atomic(&tmp.join("report.md"), |w| Ok(w.write_all(markdown.as_bytes())?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use entangle_artifacts::{write_table, EvalResponse, LossPoint};

    const PIPELINE: &str = r#"
name = "test"
seed = 1
[train.base]
kind = "pretrain"
data = ["pretrain"]
architecture = { model_type = "llama" }
[train.aligned]
kind = "sft"
from = "base"
data = ["align"]
[train.harmful]
kind = "sft"
from = "aligned"
data = ["harmful"]
[projection]
finetunes = ["harmful"]
kinds = ["topk", "random"]
methods = ["same", "orth"]
fractions = [0.25, 0.5]
[capture]
models = ["aligned"]
"#;

    fn summary_row(checkpoint: &str, benchmark: &str, metric: &str, value: f64) -> EvalSummary {
        EvalSummary {
            replicate: 0,
            checkpoint: checkpoint.into(),
            benchmark: benchmark.into(),
            metric: metric.into(),
            value,
            ci_low: (value - 0.04).max(0.0),
            ci_high: (value + 0.04).min(1.0),
            n: 50,
        }
    }

    /// Harm removed and utility lost per unit of fraction by orth merges of each kind.
    struct Shape {
        topk: (f64, f64),
        random: (f64, f64),
    }

    fn write_summary(run: &RunDir, shape: &Shape) {
        let mut rows = vec![
            summary_row("base", "harmful", "refusal_rate", 0.2),
            summary_row("aligned", "harmful", "refusal_rate", 0.96),
            summary_row("harmful", "harmful", "refusal_rate", 0.1),
            summary_row("aligned", "overrefusal", "refusal_rate", 0.05),
            summary_row("base", "utility", "accuracy", 0.2),
            summary_row("aligned", "utility", "accuracy", 0.3),
            summary_row("harmful", "utility", "accuracy", 0.28),
            summary_row("base", "harmful", "attack_success_rate", 0.8),
            summary_row("aligned", "harmful", "attack_success_rate", 0.04),
            summary_row("harmful", "harmful", "attack_success_rate", 0.9),
        ];
        for (kind, (harm, cost)) in [("topk", shape.topk), ("random", shape.random)] {
            for method in ["same", "orth"] {
                for frac in [0.25, 0.5] {
                    let name = format!("harmful:{kind}:{method}:{frac}");
                    let f = if method == "orth" { frac } else { 1.0 - frac };
                    rows.push(summary_row(&name, "harmful", "attack_success_rate", 0.9 - harm * f));
                    rows.push(summary_row(&name, "utility", "accuracy", 0.28 - cost * f));
                }
            }
        }
        write_table(&run.eval_summary(), &rows).unwrap();
        write_table(&run.eval_responses(), &responses(&rows)).unwrap();
    }

    /// Response rows that give each checkpoint the summary's attack success rate and accuracy
    /// on 100 prompts, the first ones complying (or correct), so that paired differences between
    /// checkpoints equal the differences of their rates.
    fn responses(summary: &[EvalSummary]) -> Vec<EvalResponse> {
        let mut rows = Vec::new();
        for row in summary.iter().filter(|r| r.metric == "attack_success_rate" || r.metric == "accuracy") {
            let hits = (row.value * 100.0).round() as usize;
            for i in 0..100 {
                let utility = row.metric == "accuracy";
                rows.push(comparisons::tests::response(&row.checkpoint, &row.benchmark, i, !utility && i >= hits, utility.then_some(i < hits)));
            }
        }
        rows
    }

    fn write_other_tables(run: &RunDir) {
        for (job, start) in [("base", 7.0), ("aligned", 3.0), ("harmful", 2.0)] {
            let curve: Vec<LossPoint> = (1..=20)
                .map(|step| LossPoint {
                    step,
                    loss: start / (1.0 + step as f64 / 5.0),
                    lr: 1e-3,
                    tokens: step * 64,
                    seconds: step as f64,
                    replicate: u32::from(job == "harmful"),
                })
                .collect();
            let scope = if job == "harmful" { run.replicate(1) } else { run.clone() };
            write_table(&scope.loss_curve(job), &curve).unwrap();
        }
        let mut diagnostics = Vec::new();
        let mut per_tensor = Vec::new();
        for kind in ["topk", "random"] {
            for method in ["same", "orth"] {
                for frac in [0.25, 0.5] {
                    let inside = if kind == "topk" { 0.3 + frac } else { frac };
                    let kept = if method == "same" { inside } else { 1.0 - inside };
                    diagnostics.push(ProjectionDiagnostic {
                        replicate: 0,
                        finetune: "harmful".into(),
                        kind: kind.into(),
                        method: method.into(),
                        fraction: frac,
                        energy_kept: kept,
                        cos_task_kept: kept.sqrt(),
                        cos_task_align: 0.05,
                        energy_removed: 1.0 - kept,
                        task_energy: 1.0,
                        align_energy: 3.0,
                    });
                    for layer in ["0", "1"] {
                        per_tensor.push(ProjectionPerTensor {
                            replicate: 0,
                            finetune: "harmful".into(),
                            kind: kind.into(),
                            method: method.into(),
                            fraction: frac,
                            tensor: format!("model.layers.{layer}.mlp.up_proj.weight"),
                            layer: layer.into(),
                            k: Some(2),
                            energy_kept: kept,
                            cos_task_kept: kept.sqrt(),
                            cos_task_align: 0.05,
                            energy_removed: (1.0 - kept) / 2.0,
                            task_energy: 0.5,
                            align_energy: 1.5,
                        });
                    }
                }
            }
        }
        write_table(&run.replicate(1).projection_diagnostics(), &diagnostics).unwrap();
        write_table(&run.replicate(1).projection_per_tensor(), &per_tensor).unwrap();
        let mut updates = Vec::new();
        for e in [0.1, 0.5, 0.9] {
            for (group, granularity) in [
                ("0", "layer"),
                ("1", "layer"),
                ("model.layers.0.self_attn.q_proj.weight", "tensor"),
                ("model.layers.0.self_attn.v_proj.weight", "tensor"),
                ("model.layers.0.mlp.up_proj.weight", "tensor"),
            ] {
                updates.push(UpdateMso {
                    replicate: 0,
                    group: group.into(),
                    granularity: granularity.into(),
                    layer: "0".into(),
                    tensors: 1,
                    energy_frac: e,
                    k_useful: 2,
                    k_harmful: 3,
                    d: 32,
                    mso: 0.4 + e / 2.0,
                    mso_random: e / 3.0,
                    cos_mean: 0.6,
                    cos_max: 0.95,
                });
            }
        }
        write_table(&run.replicate(1).update_mso(), &updates).unwrap();
        let mut activations = Vec::new();
        for layer in [2, 3] {
            for e in [0.1, 0.3] {
                for (pair, mso) in
                    [("useful-harmful_a", 0.55), ("harmful_a-harmful_b", 0.6), ("useful_1-useful_2", 0.85)]
                {
                    activations.push(ActivationMso {
                        replicate: 0,
                        model: "aligned".into(),
                        pair: pair.into(),
                        layer,
                        centered: false,
                        energy_frac: e,
                        k_first: 3,
                        k_second: 3,
                        d: 64,
                        mso: mso + e / 10.0,
                        mso_random: 3.0 / 64.0,
                        cos_mean: 0.5,
                        cos_max: 0.9,
                        mso_ci_low: Some(mso - 0.05),
                        mso_ci_high: Some(mso + 0.05 + e / 10.0),
                        vs_control: mso - 0.6,
                        vs_control_ci_low: Some(mso - 0.65),
                        vs_control_ci_high: Some(mso - 0.55),
                        permutation_p: Some(0.5),
                    });
                }
            }
        }
        write_table(&run.activation_mso(), &activations).unwrap();
    }

    fn new_run(dir: &Path) -> RunDir {
        let run = RunDir::new(dir);
        std::fs::write(run.pipeline(), PIPELINE).unwrap();
        run
    }

    const FIGURES: [&str; 9] = [
        "fraction_harmful_attack_success_rate",
        "fraction_utility_accuracy",
        "tradeoff",
        "update_mso",
        "activation_mso_layers",
        "activation_mso_energy",
        "projection_energy",
        "loss_curves",
        "fraction_overrefusal_refusal_rate",
    ];

    const SECTIONS: [&str; 8] = [
        "Findings",
        "The run",
        "Harmfulness and utility under projection",
        "Update-space overlap",
        "Activation-space overlap",
        "Projection diagnostics",
        "Training",
        "Evaluation tables",
    ];

    #[test]
    fn full_run_renders_every_figure_inline_and_as_files() {
        let dir = tempfile::tempdir().unwrap();
        let run = new_run(dir.path());
        write_summary(&run, &Shape { topk: (0.6, 0.1), random: (0.2, 0.1) });
        write_other_tables(&run);
        let font = system_font();
        let options = Options { force: false, font: font.clone() };
        assert_eq!(super::run(&run, &options).unwrap(), Outcome::Finished);

        let report = run.report_dir();
        let html = std::fs::read_to_string(report.join("index.html")).unwrap();
        let markdown = std::fs::read_to_string(report.join("report.md")).unwrap();
        let figures = &FIGURES[..8];
        for name in figures {
            let svg = std::fs::read_to_string(report.join(format!("{name}.svg"))).unwrap();
            assert!(svg.starts_with("<svg"), "{name}");
            assert!(html.contains(&svg), "{name} is inlined");
            assert!(markdown.contains(&format!("]({name}.svg)")), "{name} in report.md");
            if font.is_some() {
                let decoder = png::Decoder::new(std::io::BufReader::new(
                    std::fs::File::open(report.join(format!("{name}.png"))).unwrap(),
                ));
                let info = decoder.read_info().unwrap().info().clone();
                assert!(info.width >= 420 && info.height >= 300, "{name}.png is {}x{}", info.width, info.height);
            }
        }
        assert!(!report.join(format!("{}.svg", FIGURES[8])).exists(), "no merge has an over-refusal row, so no figure");
        assert_eq!(html.matches("<svg").count(), figures.len());
        for title in SECTIONS {
            assert!(html.contains(&format!("<h2>{title}</h2>")), "{title}");
            assert!(markdown.contains(&format!("## {title}\n")), "{title}");
        }
        assert!(!html.contains("class=\"missing\""), "nothing is missing:\n{html}");
        for needle in [
            "The aligned model refuses 96.0% (95% CI 92.0-99.0%) of held-out harmful requests (base 20.0%",
            "Orth merges of the harmful fine-tune with the top-k of alignment directions, against random Gaussian directions, \
             paired by prompt and averaged over 2 fraction(s): attack success rate -15.0 pp (95% CI",
            "pp): lower with top-k of alignment",
            "Paired differences: each merge minus what it is compared with",
            "overlap more than random subspaces of the same sizes at 3 of 3 energy fractions",
            "In aligned (instruction prompts, uncentred activations, layer 3, e = 0.30), useful and harmful prompts (the paper's pair) overlap with MSO 0.58",
            "At f = 0.50, the top-k alignment directions hold 80.0% of the harmful update's energy",
            "The training loss fell in every job",
        ] {
            assert!(html.contains(needle), "{needle}");
        }
    }

    #[test]
    fn findings_follow_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let run = new_run(dir.path());
        write_summary(&run, &Shape { topk: (0.2, 0.1), random: (0.6, 0.1) });
        let pipeline = Pipeline::load_from_run(&run).unwrap();
        let text = build(&run, &pipeline).unwrap().markdown();
        assert!(text.contains("against random Gaussian directions, paired by prompt and averaged over 2 fraction(s): attack success rate +15.0 pp"), "{text}");
        assert!(text.contains("higher with top-k of alignment"), "{text}");
        write_summary(&run, &Shape { topk: (0.6, 0.1), random: (0.2, 0.1) });
        let text = build(&run, &pipeline).unwrap().markdown();
        assert!(text.contains("lower with top-k of alignment"), "{text}");
        write_summary(&run, &Shape { topk: (0.2, 0.1), random: (0.2, 0.1) });
        let text = build(&run, &pipeline).unwrap().markdown();
        assert!(text.contains("attack success rate 0.0 pp (95% CI 0.0 to 0.0 pp): no detectable difference"), "{text}");
    }

    #[test]
    fn partial_run_renders_with_notes_on_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let run = new_run(dir.path());
        let options = Options { force: false, font: None };
        assert_eq!(super::run(&run, &options).unwrap(), Outcome::Finished);
        let html = std::fs::read_to_string(run.report_dir().join("index.html")).unwrap();
        for title in SECTIONS {
            assert!(html.contains(&format!("<h2>{title}</h2>")), "{title}");
        }
        for note in [
            "eval/summary.parquet is missing",
            "mso/update_spaces.parquet is missing",
            "mso/activation_spaces.parquet is missing",
            "projection/diagnostics.parquet is missing",
            "No loss curve for base, aligned and harmful",
            "No findings yet on harmfulness and utility",
        ] {
            assert!(html.contains(note), "{note}");
        }
        assert!(!html.contains("<svg"));
        let files: Vec<_> = std::fs::read_dir(run.report_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files.len(), 2, "{files:?}");
    }

    #[test]
    fn rerun_skips_until_an_input_changes() {
        let dir = tempfile::tempdir().unwrap();
        let run = new_run(dir.path());
        write_summary(&run, &Shape { topk: (0.6, 0.1), random: (0.2, 0.1) });
        let options = Options { force: false, font: None };
        assert_eq!(super::run(&run, &options).unwrap(), Outcome::Finished);
        assert_eq!(super::run(&run, &options).unwrap(), Outcome::UpToDate);
        assert_eq!(super::run(&run, &Options { force: true, font: None }).unwrap(), Outcome::Finished);
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_other_tables(&run);
        assert_eq!(super::run(&run, &options).unwrap(), Outcome::Finished);
        std::fs::remove_file(run.report_dir().join("index.html")).unwrap();
        assert_eq!(super::run(&run, &options).unwrap(), Outcome::Finished);
        let entry = &Manifest::load(&run).unwrap().stages[STAGE];
        assert_eq!(entry.outputs, vec!["report/index.html", "report/report.md"]);
        assert!(entry.inputs.iter().any(|i| i.path == "replicates/1/mso/update_spaces.parquet"));
    }
}
