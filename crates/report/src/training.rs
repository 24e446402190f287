//! Training (`train/<job>.parquet` for every job of the pipeline, and
//! `replicates/<r>/train/<job>.parquet` for each replicate of a fine-tune): loss curves, a table
//! of each job's run, and whether each loss fell.

use anyhow::Result;
use entangle_artifacts::{LossPoint, RunDir};
use entangle_pipeline::{Pipeline, TrainKind};
use polars::prelude::*;

use crate::document::{Block, Section, Table};
use crate::figure::{Figure, Marker, Panel, Point, Series};
use crate::format::{fixed, prose_list};
use crate::frames::{collect, floats, load, strings};

/// Steps whose mean loss is the "final" loss of a job.
const TAIL: usize = 10;

/// One job's loss curve and summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub name: String,
    pub points: Vec<LossPoint>,
    pub steps: usize,
    pub first: f64,
    /// Mean loss of the last [`TAIL`] steps.
    pub last: f64,
    pub min: f64,
    pub tokens: f64,
    pub seconds: f64,
}

/// The jobs of the pipeline in training order (a job after the one it starts from), with the
/// loss curves found, and the jobs whose curve is missing.
pub struct Training {
    pub jobs: Vec<Job>,
    /// (job, replicate) of the curves not there.
    pub missing: Vec<(String, u32)>,
    pub pipeline_jobs: usize,
}

/// The pipeline's job names, each after the job it starts from, ties by name.
fn job_order(pipeline: &Pipeline) -> Vec<String> {
    let depth = |name: &str| {
        let mut depth = 0;
        let mut current = name.to_owned();
        while let Some(from) = pipeline.train.get(&current).and_then(|j| j.from.clone()) {
            depth += 1;
            if depth > pipeline.train.len() {
                break;
            }
            current = from;
        }
        depth
    };
    let mut names: Vec<String> = pipeline.train.keys().cloned().collect();
    names.sort_by_key(|name| (depth(name), name.clone()));
    names
}

impl Training {
    /// Every job's curve, a fine-tune's once per replicate (named `useful@2`).
    pub fn load(run: &RunDir, pipeline: &Pipeline) -> Result<Training> {
        let mut curves = Vec::new();
        let mut missing = Vec::new();
        let mut expected = 0;
        for name in job_order(pipeline) {
            for replicate in pipeline.replicates_of(&name) {
                expected += 1;
                let path = pipeline.run_dir_of(run, &name, replicate)?.loss_curve(&name);
                match load::<LossPoint>(&path)? {
                    Some(points) => curves.push((pipeline.labelled(&name, replicate), points)),
                    None => missing.push((name.clone(), replicate)),
                }
            }
        }
        Ok(Training { jobs: summarise(curves)?, missing, pipeline_jobs: expected })
    }

    fn figure(&self) -> Figure {
        let panels: Vec<Panel> = self
            .jobs
            .iter()
            .map(|job| Panel {
                title: job.name.clone(),
                x_label: "optimiser step".into(),
                y_label: "loss (nats/token)".into(),
                series: vec![Series {
                    label: "training loss".into(),
                    color: 0,
                    dashed: false,
                    line: true,
                    marker: if job.points.len() == 1 { Marker::Circle } else { Marker::None },
                    points: job.points.iter().map(|p| Point::new(p.step as f64, p.loss)).collect(),
                }],
                references: Vec::new(),
                y_range: None,
            })
            .collect();
        Figure {
            name: "loss_curves".into(),
            title: "Training loss per job".into(),
            columns: crate::figure::grid_columns(panels.len()),
            panels,
        }
    }

    fn table(&self, pipeline: &Pipeline) -> Table {
        let rows = self
            .jobs
            .iter()
            .map(|job| {
                let config = pipeline.train.get(&job.name);
                let kind = match config.map(|c| c.kind) {
                    Some(TrainKind::Pretrain) => "pretrain",
                    Some(TrainKind::Sft) => "sft",
                    None => "",
                };
                vec![
                    job.name.clone(),
                    kind.to_owned(),
                    config.and_then(|c| c.from.clone()).unwrap_or_default(),
                    job.steps.to_string(),
                    fixed(job.first, 3),
                    fixed(job.last, 3),
                    fixed(job.min, 3),
                    fixed(job.tokens, 0),
                    fixed(job.seconds, 1),
                ]
            })
            .collect();
        Table {
            caption: "Training jobs".into(),
            header: vec![
                "job".into(),
                "kind".into(),
                "from".into(),
                "steps".into(),
                "first loss".into(),
                format!("final loss (last {TAIL} steps)"),
                "min loss".into(),
                "target tokens".into(),
                "seconds".into(),
            ],
            rows,
        }
    }

    pub fn findings(&self) -> Vec<String> {
        if self.jobs.is_empty() {
            return Vec::new();
        }
        let describe = |job: &Job| format!("{} from {} to {}", job.name, fixed(job.first, 2), fixed(job.last, 2));
        let fell: Vec<String> = self.jobs.iter().filter(|j| j.last < j.first).map(describe).collect();
        let rose: Vec<String> = self.jobs.iter().filter(|j| j.last >= j.first).map(describe).collect();
        let mut sentence = if rose.is_empty() {
            format!("The training loss fell in every job: {}", prose_list(&fell))
        } else if fell.is_empty() {
            format!("The training loss did not fall in any job: {}", prose_list(&rose))
        } else {
            format!("The training loss fell in {} ({}) but not in {}", fell.len(), prose_list(&fell), prose_list(&rose))
        };
        sentence.push_str(&format!(" (first step to the mean of the last {TAIL})."));
        vec![sentence]
    }
}

/// Each curve's steps, first, final and smallest loss, tokens and seconds, aggregated with
/// polars over all curves at once.
fn summarise(curves: Vec<(String, Vec<LossPoint>)>) -> Result<Vec<Job>> {
    let column =
        |f: &dyn Fn(&LossPoint) -> f64| -> Vec<f64> { curves.iter().flat_map(|(_, ps)| ps.iter().map(f)).collect() };
    let frame = df!(
        "job" => curves.iter().flat_map(|(name, ps)| ps.iter().map(move |_| name.as_str())).collect::<Vec<_>>(),
        "step" => column(&|p| p.step as f64),
        "loss" => column(&|p| p.loss),
        "tokens" => column(&|p| p.tokens as f64),
        "seconds" => column(&|p| p.seconds),
    )?;
    let query = frame.lazy().sort(["job", "step"], SortMultipleOptions::default()).group_by_stable([col("job")]).agg([
        len().alias("steps"),
        col("loss").first().alias("first"),
        col("loss").tail(Some(TAIL)).mean().alias("last"),
        col("loss").min().alias("min"),
        col("tokens").max().alias("tokens"),
        col("seconds").max().alias("seconds"),
    ]);
    let stats = collect(query, "the loss curves")?;
    let names = strings(&stats, "job")?;
    let (steps, first, last) = (floats(&stats, "steps")?, floats(&stats, "first")?, floats(&stats, "last")?);
    let (min, tokens, seconds) = (floats(&stats, "min")?, floats(&stats, "tokens")?, floats(&stats, "seconds")?);
    let mut jobs = Vec::new();
    for (name, mut points) in curves {
        let Some(i) = names.iter().position(|n| *n == name) else {
            continue;
        };
        points.sort_by_key(|p| p.step);
        jobs.push(Job {
            name,
            points,
            steps: steps[i] as usize,
            first: first[i],
            last: last[i],
            min: min[i],
            tokens: tokens[i],
            seconds: seconds[i],
        });
    }
    Ok(jobs)
}

pub fn section(training: &Training, pipeline: &Pipeline) -> Section {
    let mut section = Section::new("training", "Training");
    let missing: Vec<String> = training.missing.iter().map(|(job, replicate)| pipeline.labelled(job, *replicate)).collect();
    if training.pipeline_jobs == 0 {
        section.push(Block::Paragraph("The pipeline trains no model: every model comes from [models].".into()));
        return section;
    }
    if !missing.is_empty() {
        let command = |(job, replicate): &(String, u32)| match pipeline.is_replicated(job) {
            true => format!("entangle-train --run DIR --job {job} --replicate {replicate}"),
            false => format!("entangle-train --run DIR --job {job}"),
        };
        let commands: Vec<String> = training.missing.iter().map(command).collect();
        section.push(Block::Missing(format!(
            "No loss curve for {} (train/<job>.parquet): run {}.",
            prose_list(&missing),
            prose_list(&commands)
        )));
    }
    if training.jobs.is_empty() {
        return section;
    }
    section.push(Block::Figure {
        figure: training.figure(),
        caption: "Mean loss per target token at each optimiser step; pretraining counts every token, fine-tuning only \
                  response tokens."
            .into(),
    });
    section.push(Block::Table(training.table(pipeline)));
    section
}

#[cfg(test)]
mod tests {
    use super::*;
    use entangle_artifacts::write_table;

    const PIPELINE: &str = "name = \"t\"\n\
        [train.useful]\nkind = \"sft\"\nfrom = \"aligned\"\ndata = [\"useful\"]\n\
        [train.base]\nkind = \"pretrain\"\ndata = [\"pretrain\"]\narchitecture = { model_type = \"llama\" }\n\
        [train.aligned]\nkind = \"sft\"\nfrom = \"base\"\ndata = [\"align\"]\n";

    fn curve(first: f64, last: f64, steps: u64) -> Vec<LossPoint> {
        (1..=steps)
            .map(|step| {
                let t = (step - 1) as f64 / (steps - 1) as f64;
                LossPoint {
                    replicate: 0,
                    step,
                    loss: first + (last - first) * t,
                    lr: 1e-3,
                    tokens: step * 100,
                    seconds: step as f64 * 0.1,
                }
            })
            .collect()
    }

    #[test]
    fn jobs_come_in_training_order_with_their_statistics() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let pipeline = Pipeline::parse(PIPELINE).unwrap();
        assert_eq!(job_order(&pipeline), vec!["base", "aligned", "useful"]);
        write_table(&run.loss_curve("base"), &curve(8.0, 2.0, 31)).unwrap();
        write_table(&run.loss_curve("aligned"), &curve(3.0, 1.0, 11)).unwrap();
        let training = Training::load(&run, &pipeline).unwrap();
        assert_eq!(training.missing, vec![("useful".to_owned(), 1)]);
        let base = &training.jobs[0];
        assert_eq!((base.name.as_str(), base.steps, base.first, base.min), ("base", 31, 8.0, 2.0));
        assert!((base.last - 2.9).abs() < 1e-9, "mean of the last 10 of 8 - 0.2 (s - 1): {}", base.last);
        assert_eq!((base.tokens, base.seconds), (3100.0, 3.1));
        assert_eq!(training.findings(), vec![
            "The training loss fell in every job: base from 8.00 to 2.90 and aligned from 3.00 to 1.90 (first step to the mean of the last 10).".to_owned()
        ]);
        let section = section(&training, &pipeline);
        assert!(
            matches!(&section.blocks[0], Block::Missing(text) if text.contains("No loss curve for useful@1") && text.contains("entangle-train --run DIR --job useful --replicate 1"))
        );
    }

    #[test]
    fn a_rising_loss_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let pipeline = Pipeline::parse(PIPELINE).unwrap();
        write_table(&run.loss_curve("base"), &curve(2.0, 8.0, 31)).unwrap();
        write_table(&run.replicate(1).loss_curve("useful"), &curve(3.0, 1.0, 11)).unwrap();
        let findings = Training::load(&run, &pipeline).unwrap().findings();
        assert!(
            findings[0].starts_with(
                "The training loss fell in 1 (useful@1 from 3.00 to 1.90) but not in base from 2.00 to 7.10"
            ),
            "{}",
            findings[0]
        );
    }
}
