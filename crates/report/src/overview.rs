//! What the report was built from: the pipeline, the stages the manifest records, and which of
//! the tables the report reads exist.

use std::path::Path;

use entangle_artifacts::{Manifest, RunDir};
use entangle_pipeline::Pipeline;

use crate::document::{Block, Section, Table};
use crate::format::fixed;

pub fn section(run: &RunDir, pipeline: &Pipeline, manifest: &Manifest, inputs: &[(String, bool)]) -> Section {
    let mut section = Section::new("run", "The run");
    section.push(Block::Paragraph(format!(
        "Pipeline `{}` (seed {}, device {}), run directory {}. Every number, figure and finding in this report is \
         computed from the run's Parquet tables listed below; nothing is typed in by hand.",
        pipeline.name,
        pipeline.seed,
        pipeline.device,
        run.root.display()
    )));
    let stages: Vec<Vec<String>> = manifest
        .stages
        .iter()
        .filter(|(name, _)| name.as_str() != crate::STAGE)
        .map(|(name, entry)| vec![name.clone(), fixed(entry.seconds, 1), entry.finished_at.clone()])
        .collect();
    if stages.is_empty() {
        section.push(Block::Paragraph("manifest.json records no finished stage besides the report.".into()));
    } else {
        section.push(Block::Table(Table {
            caption: "Finished stages (manifest.json)".into(),
            header: ["stage", "seconds", "finished at"].map(String::from).to_vec(),
            rows: stages,
        }));
    }
    section.push(Block::Table(Table {
        caption: "Tables the report reads".into(),
        header: ["table", "status"].map(String::from).to_vec(),
        rows: inputs
            .iter()
            .map(|(path, found)| vec![path.clone(), if *found { "found" } else { "missing" }.to_owned()])
            .collect(),
    }));
    section
}

/// `path` relative to the run, for display.
pub fn display(run: &RunDir, path: &Path) -> String {
    run.relative(path).display().to_string()
}
