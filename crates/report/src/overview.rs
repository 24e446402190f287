//! What the report was built from: the pipeline, the stages the manifest records, the hub
//! repositories the run read and at which commit, and which of the tables the report reads
//! exist.

use std::collections::BTreeSet;
use std::path::Path;

use entangle_artifacts::{HubRevision, Manifest, RunDir};
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
    let revisions = hub_revisions(manifest);
    if !revisions.is_empty() {
        section.push(Block::Table(Table {
            caption: "Hub repositories the stages read, at the commit they read (manifest.json, each stage's `hub`)"
                .into(),
            header: ["repository", "type", "revision", "commit"].map(String::from).to_vec(),
            rows: revisions
                .into_iter()
                .map(|hub| vec![hub.repository.clone(), hub.kind.clone(), hub.revision.clone(), hub.commit.clone()])
                .collect(),
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

/// Every hub repository a stage read, at the commit it read (the manifest's hub records).
fn hub_revisions(manifest: &Manifest) -> BTreeSet<&HubRevision> {
    manifest.stages.values().flat_map(|entry| &entry.hub).collect()
}

/// `path` relative to the run, for display.
pub fn display(run: &RunDir, path: &Path) -> String {
    run.relative(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use entangle_artifacts::StageEntry;

    use super::*;

    #[test]
    fn a_repository_two_stages_read_at_one_commit_is_listed_once() {
        let model = HubRevision { repository: "org/m".into(), kind: "model".into(), revision: "main".into(), commit: "c1".into() };
        let data = HubRevision { repository: "org/d".into(), kind: "dataset".into(), revision: "v1".into(), commit: "c2".into() };
        let entry = |hub: Vec<HubRevision>| StageEntry { hub, ..StageEntry::finished_now("h".into(), Vec::new(), Vec::new(), 1.0) };
        let mut manifest = Manifest::default();
        manifest.stages.insert("prepare".into(), entry(vec![data.clone(), model.clone()]));
        manifest.stages.insert("capture:base".into(), entry(vec![model.clone()]));
        assert_eq!(hub_revisions(&manifest).into_iter().collect::<Vec<_>>(), [&data, &model]);
    }
}
