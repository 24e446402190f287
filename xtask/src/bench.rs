//! `cargo xtask bench <model | train | subspace | eval | all> [--threads N]`: entangle against
//! the Python/transformers baselines in `bench/`, both measured in one run, as ratios.
//! Benchmarks measure speed; they are never tests.
//!
//! xtask sets up libtorch, builds the workspace binaries as `reproduce` does (dev profile),
//! makes sure the venv of `cargo xtask setup` has transformers (installing a pinned version
//! once), and writes the inputs with `bench/make_inputs.py` into `target/bench/inputs/` (again
//! whenever the script is newer). Each side then runs as its own process with the same thread count
//! (`OMP_NUM_THREADS`, `MKL_NUM_THREADS` and each side's own `set_num_threads`); xtask reads the
//! last line it prints (JSON) and measures its wall time and peak resident set size
//! (`wait4`'s `ru_maxrss`, which covers the processes it waited for). Throughputs are timed
//! inside the processes, without start-up and model loading; the subspace benchmark times the
//! whole stage processes. The table shows every measure with the ratio in entangle's favour
//! (throughput: ours / theirs; time and memory: theirs / ours) and the goal of its issue; the
//! same goes to `target/bench/<name>.json`.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Instant, SystemTime};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// The transformers release the baselines are written for, installed when the venv lacks one.
const TRANSFORMERS_VERSION: &str = "5.24.0";

/// The run directory of the subspace benchmark: the pipeline's defaults (three kinds, same and
/// orth, five fractions, three fine-tunes, eleven energy fractions), exact SVDs on the CPU,
/// and MSO per tensor only, as the authors' script computes it.
const SUBSPACE_PIPELINE: &str = "# Written by `cargo xtask bench subspace`.
name = \"bench-subspace\"
seed = 42
device = \"cpu\"

[mso]
granularities = [\"tensor\"]
";

/// One benchmark of `cargo xtask bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benchmark {
    Model,
    Train,
    Subspace,
    Eval,
}

impl Benchmark {
    const ALL: [Benchmark; 4] = [Benchmark::Model, Benchmark::Train, Benchmark::Subspace, Benchmark::Eval];

    fn name(self) -> &'static str {
        match self {
            Benchmark::Model => "model",
            Benchmark::Train => "train",
            Benchmark::Subspace => "subspace",
            Benchmark::Eval => "eval",
        }
    }
}

/// What `cargo xtask bench` measures: one benchmark or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Selection {
    /// Model forward pass and generation.
    Model,
    /// Training.
    Train,
    /// The projection and MSO sweep.
    Subspace,
    /// An evaluation pass.
    Eval,
    /// Every benchmark in turn.
    All,
}

/// Options of `cargo xtask bench`.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct Options {
    /// The benchmark to run.
    #[arg(value_enum)]
    pub selection: Selection,
    /// Threads of both sides [default: the number of cores].
    #[arg(long, value_parser = positive_count)]
    pub threads: Option<usize>,
}

impl Options {
    /// The benchmarks selected, in order.
    fn benchmarks(&self) -> Vec<Benchmark> {
        match self.selection {
            Selection::Model => vec![Benchmark::Model],
            Selection::Train => vec![Benchmark::Train],
            Selection::Subspace => vec![Benchmark::Subspace],
            Selection::Eval => vec![Benchmark::Eval],
            Selection::All => Benchmark::ALL.to_vec(),
        }
    }

    /// The thread count of both sides.
    fn threads(&self) -> usize {
        self.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
    }
}

fn positive_count(text: &str) -> Result<usize, String> {
    text.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| format!("`{text}` is not a positive count"))
}

/// Runs `cargo xtask bench` from the workspace `root`.
pub fn bench(root: &Path, options: &Options) -> Result<()> {
    crate::setup::setup(root)?;
    let bin_dir = crate::reproduce::build_binaries(root, false)?;
    let python = baseline_python()?;
    let out = root.join("target").join("bench");
    let inputs = ensure_inputs(root, &python, &out)?;
    let threads = options.threads();
    let runner = Runner { root, bin_dir, python, inputs, out: out.clone(), threads };
    for benchmark in options.benchmarks() {
        println!("==> bench {} (--threads {threads})", benchmark.name());
        let report = match benchmark {
            Benchmark::Model => model(&runner)?,
            Benchmark::Train => train(&runner)?,
            Benchmark::Subspace => subspace(&runner)?,
            Benchmark::Eval => eval(&runner)?,
        };
        print_table(&report.rows);
        let path = out.join(format!("{}.json", benchmark.name()));
        let json = json!({
            "benchmark": benchmark.name(),
            "threads": threads,
            "rows": report.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
            "entangle": report.entangle.iter().map(Measured::to_json).collect::<Vec<_>>(),
            "baseline": report.baseline.to_json(),
        });
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("    written to {}", path.display());
    }
    Ok(())
}

/// Where everything is.
struct Runner<'a> {
    root: &'a Path,
    /// Where the workspace binaries are.
    bin_dir: PathBuf,
    python: PathBuf,
    inputs: PathBuf,
    out: PathBuf,
    threads: usize,
}

impl Runner<'_> {
    fn binary(&self, name: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(name));
        self.with_threads(&mut command);
        command.env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()));
        command
    }

    /// `entangle-bench SUBCOMMAND` with the model and thread count.
    fn entangle_bench(&self, subcommand: &str) -> Command {
        let mut command = self.binary("entangle-bench");
        command.arg(subcommand).arg("--model").arg(self.model()).arg("--threads").arg(self.threads.to_string());
        command
    }

    /// `python bench/SCRIPT --threads N`, with the model unless `model` is false.
    fn baseline(&self, script: &str, model: bool) -> Command {
        let mut command = Command::new(&self.python);
        command.arg(self.root.join("bench").join(script)).arg("--threads").arg(self.threads.to_string());
        if model {
            command.arg("--model").arg(self.model());
        }
        self.with_threads(&mut command);
        command.env("HF_HUB_DISABLE_PROGRESS_BARS", "1").env("TRANSFORMERS_VERBOSITY", "error");
        command
    }

    fn with_threads(&self, command: &mut Command) {
        command.env("OMP_NUM_THREADS", self.threads.to_string()).env("MKL_NUM_THREADS", self.threads.to_string());
    }

    fn model(&self) -> PathBuf {
        self.inputs.join("llama-20m")
    }
}

/// What one benchmark measured.
struct Report {
    rows: Vec<Row>,
    entangle: Vec<Measured>,
    baseline: Measured,
}

/// Which way a measure improves.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// One line of the table.
struct Row {
    measure: &'static str,
    entangle: f64,
    baseline: f64,
    better: Better,
    /// The least ratio the issue asks for.
    goal: Option<f64>,
}

impl Row {
    /// How many times better entangle is.
    fn ratio(&self) -> f64 {
        match self.better {
            Better::Higher => self.entangle / self.baseline,
            Better::Lower => self.baseline / self.entangle,
        }
    }

    fn met(&self) -> Option<bool> {
        self.goal.map(|goal| self.ratio() >= goal)
    }

    fn to_json(&self) -> Value {
        json!({
            "measure": self.measure,
            "entangle": self.entangle,
            "baseline": self.baseline,
            "ratio": self.ratio(),
            "goal": self.goal,
            "met": self.met(),
        })
    }
}

/// A throughput row: `field` of both sides' JSON lines.
fn throughput(measure: &'static str, field: &str, ours: &Measured, theirs: &Measured, goal: f64) -> Result<Row> {
    Ok(Row { measure, entangle: ours.number(field)?, baseline: theirs.number(field)?, better: Better::Higher, goal: Some(goal) })
}

fn peak_rss_row(ours: &[Measured], theirs: &Measured, goal: Option<f64>) -> Row {
    let entangle = ours.iter().map(|m| m.peak_rss_mib).fold(0.0, f64::max);
    Row { measure: "peak RSS (MiB)", entangle, baseline: theirs.peak_rss_mib, better: Better::Lower, goal }
}

fn model(runner: &Runner) -> Result<Report> {
    let prompts = runner.inputs.join("prompts.json");
    let ours = measure(runner.entangle_bench("model").arg("--prompts").arg(&prompts))?;
    let theirs = measure(runner.baseline("model_baseline.py", true).arg("--prompts").arg(&prompts))?;
    let rows = vec![
        throughput("forward tokens/s", "forward_tokens_per_s", &ours, &theirs, 1.0)?,
        throughput("generation tokens/s", "generation_tokens_per_s", &ours, &theirs, 1.5)?,
    ];
    Ok(Report { rows, entangle: vec![ours], baseline: theirs })
}

/// How many times each side of the training benchmark runs, alternating with the other; each
/// side's fastest run counts. On a shared 2-core machine single runs swing by ±15%.
const TRAIN_RUNS: usize = 3;

fn train(runner: &Runner) -> Result<Report> {
    let data = runner.inputs.join("train.json");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..TRAIN_RUNS {
        ours.push(measure(runner.entangle_bench("train").arg("--data").arg(&data))?);
        theirs.push(measure(runner.baseline("train_baseline.py", true).arg("--data").arg(&data))?);
    }
    let ours = fastest(ours, "train_tokens_per_s")?;
    let theirs = fastest(theirs, "train_tokens_per_s")?;
    let rows = vec![
        throughput("training tokens/s", "train_tokens_per_s", &ours, &theirs, 1.2)?,
        peak_rss_row(std::slice::from_ref(&ours), &theirs, None),
    ];
    Ok(Report { rows, entangle: vec![ours], baseline: theirs })
}

/// The run with the highest `field`.
fn fastest(runs: Vec<Measured>, field: &str) -> Result<Measured> {
    let mut best: Option<(f64, Measured)> = None;
    for run in runs {
        let value = run.number(field)?;
        if best.as_ref().is_none_or(|(top, _)| value > *top) {
            best = Some((value, run));
        }
    }
    best.map(|(_, run)| run).context("no run to choose from")
}

fn eval(runner: &Runner) -> Result<Report> {
    let settings = runner.out.join("eval_settings.json");
    let mut command = runner.entangle_bench("eval");
    command.arg("--instructions").arg(runner.inputs.join("eval.json")).arg("--settings-out").arg(&settings);
    let ours = measure(&mut command)?;
    let theirs = measure(runner.baseline("eval_baseline.py", true).arg("--settings").arg(&settings))?;
    let rows = vec![throughput("generation tokens/s", "generation_tokens_per_s", &ours, &theirs, 1.5)?];
    Ok(Report { rows, entangle: vec![ours], baseline: theirs })
}

/// The whole projection sweep and update-space MSO: `entangle-project` and `entangle-mso`
/// (forced, so nothing is reused from an earlier run) against the authors' procedure.
fn subspace(runner: &Runner) -> Result<Report> {
    let run = runner.inputs.join("subspace");
    std::fs::write(run.join("pipeline.toml"), SUBSPACE_PIPELINE).with_context(|| format!("writing {}", run.join("pipeline.toml").display()))?;
    let ours = ["entangle-project", "entangle-mso"]
        .iter()
        .map(|binary| measure(runner.binary(binary).arg("--run").arg(&run).arg("--force")))
        .collect::<Result<Vec<_>>>()?;
    let theirs = measure(runner.baseline("subspace_baseline.py", false).arg("--models").arg(run.join("models")))?;
    let time = Row {
        measure: "wall time (s)",
        entangle: ours.iter().map(|m| m.seconds).sum(),
        baseline: theirs.seconds,
        better: Better::Lower,
        goal: Some(10.0),
    };
    let rows = vec![time, peak_rss_row(&ours, &theirs, Some(1.0))];
    Ok(Report { rows, entangle: ours, baseline: theirs })
}

/// One process's run.
struct Measured {
    program: String,
    /// The last line it printed, as JSON (null when it printed none).
    result: Value,
    seconds: f64,
    peak_rss_mib: f64,
}

impl Measured {
    fn number(&self, field: &str) -> Result<f64> {
        self.result.get(field).and_then(Value::as_f64).with_context(|| format!("{} printed no number `{field}`: {}", self.program, self.result))
    }

    fn to_json(&self) -> Value {
        json!({ "program": self.program, "result": self.result, "seconds": self.seconds, "peak_rss_mib": self.peak_rss_mib })
    }
}

/// Runs `command` to the end with its stdout captured: the last line it printed (JSON), its
/// wall time, and the peak resident set of it and its descendants.
fn measure(command: &mut Command) -> Result<Measured> {
    let program = describe(command);
    println!("    running {program}");
    let started = Instant::now();
    let mut child = command.stdout(Stdio::piped()).spawn().with_context(|| format!("starting {program}"))?;
    let mut stdout = String::new();
    child.stdout.take().context("no stdout pipe")?.read_to_string(&mut stdout).with_context(|| format!("reading the output of {program}"))?;
    let (status, peak_rss_mib) = wait_with_peak_rss(child.id()).with_context(|| format!("waiting for {program}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{program} failed ({status})");
    }
    let result = match stdout.lines().last() {
        Some(line) => serde_json::from_str(line).with_context(|| format!("{program} printed `{line}`, not JSON"))?,
        None => Value::Null,
    };
    Ok(Measured { program, result, seconds, peak_rss_mib })
}

/// The program's file name and its arguments after it, for messages.
fn describe(command: &Command) -> String {
    let program = Path::new(command.get_program()).file_name().unwrap_or_default().to_string_lossy().into_owned();
    let args: Vec<String> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let args: Vec<&str> = args.iter().map(|a| a.rsplit('/').next().unwrap_or(a)).collect();
    format!("{program} {}", args.join(" "))
}

/// Waits for the child `pid` (which must not have been waited for); its exit status and the
/// peak resident set size in MiB of it and the descendants it waited for (`ru_maxrss`).
fn wait_with_peak_rss(pid: u32) -> Result<(ExitStatus, f64)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; all zeros is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is a child of this process that nothing else waits for, and both
        // pointers are valid for writes for the duration of the call.
        let ret = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if ret >= 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err).context("wait4");
        }
    }
    Ok((ExitStatus::from_raw(status), usage.ru_maxrss as f64 / 1024.0))
}

fn print_table(rows: &[Row]) {
    println!("    {:<22} {:>12} {:>12} {:>8} {:>7}  met?", "measure", "entangle", "baseline", "ratio", "goal");
    for row in rows {
        let goal = row.goal.map_or("-".to_owned(), |g| format!("≥{g}x"));
        let met = row.met().map_or("-", |met| if met { "yes" } else { "no" });
        println!(
            "    {:<22} {:>12.1} {:>12.1} {:>7.2}x {:>7}  {met}",
            row.measure,
            row.entangle,
            row.baseline,
            row.ratio(),
            goal
        );
    }
}

/// The venv's Python, with transformers installed into it when missing.
fn baseline_python() -> Result<PathBuf> {
    let python = crate::setup::venv_python()?;
    let imports = Command::new(&python).args(["-c", "import transformers"]).stderr(Stdio::null()).status();
    if imports.is_ok_and(|s| s.success()) {
        return Ok(python);
    }
    println!("xtask bench: installing transformers=={TRANSFORMERS_VERSION} into {} for the baselines (once)", python.display());
    let status = Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", &format!("transformers=={TRANSFORMERS_VERSION}")])
        .status()
        .with_context(|| format!("running {} -m pip", python.display()))?;
    if !status.success() {
        bail!("pip could not install transformers=={TRANSFORMERS_VERSION} ({status}); the baselines need it");
    }
    Ok(python)
}

/// `target/bench/inputs`, written by `bench/make_inputs.py` unless it is newer than the script.
fn ensure_inputs(root: &Path, python: &Path, out: &Path) -> Result<PathBuf> {
    let inputs = out.join("inputs");
    let script = root.join("bench").join("make_inputs.py");
    if modified(&inputs).is_some_and(|made| modified(&script).is_some_and(|edited| made >= edited)) {
        return Ok(inputs);
    }
    println!("xtask bench: writing the benchmark inputs to {}", inputs.display());
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let status = Command::new(python)
        .arg(&script)
        .arg(&inputs)
        .status()
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    Ok(inputs)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The options of `cargo xtask bench ARGS…`.
    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        let args: Vec<&str> = std::iter::once("bench").chain(args.iter().copied()).collect();
        match crate::tests::parse(&args)? {
            crate::Command::Bench(options) => Ok(options),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn options_name_benchmarks_and_threads() {
        let model = parse(&["model", "--threads=3"]).unwrap();
        assert_eq!((model.benchmarks(), model.threads()), (vec![Benchmark::Model], 3));
        assert_eq!(parse(&["all"]).unwrap().benchmarks(), Benchmark::ALL);
        assert!(parse(&["all"]).unwrap().threads() >= 1);
        assert!(parse(&[]).unwrap_err().to_string().contains("required"));
        assert!(parse(&["nope"]).unwrap_err().to_string().contains("invalid value 'nope'"));
        assert!(parse(&["model", "eval"]).unwrap_err().to_string().contains("unexpected argument 'eval'"));
        assert!(parse(&["model", "--threads", "0"]).unwrap_err().to_string().contains("`0` is not a positive count"));
    }

    #[test]
    fn ratios_favour_entangle_either_way() {
        let row = |better, goal| Row { measure: "m", entangle: 4.0, baseline: 2.0, better, goal };
        assert_eq!(row(Better::Higher, Some(1.5)).ratio(), 2.0);
        assert_eq!(row(Better::Higher, Some(1.5)).met(), Some(true));
        assert_eq!(row(Better::Lower, Some(1.0)).ratio(), 0.5);
        assert_eq!(row(Better::Lower, Some(1.0)).met(), Some(false));
        assert_eq!(row(Better::Lower, None).met(), None);
    }
}
