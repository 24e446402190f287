//! What the report was built from: the pipeline, the stages the manifest records, the hub
//! repositories the run read and at which commit, and which of the tables the report reads
//! exist.

use std::collections::BTreeSet;
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
    let revisions = hub_revisions(manifest);
    if !revisions.is_empty() {
        section.push(Block::Table(Table {
            caption: "Hub repositories the stages read, at the commit they read (from the inputs manifest.json \
                      records)"
                .into(),
            header: ["repository", "type", "commit"].map(String::from).to_vec(),
            rows: revisions.into_iter().map(|(repo, kind, commit)| vec![repo, kind, commit]).collect(),
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

/// Every hub repository a stage read, with the commit of the snapshot it read: found in the
/// input paths the manifest records, which for a hub model or dataset lie in the hub cache
/// (`…/models--org--name/snapshots/<commit>/…`). As (repository, `model` or `dataset`, commit).
pub fn hub_revisions(manifest: &Manifest) -> BTreeSet<(String, String, String)> {
    let mut found = BTreeSet::new();
    for input in manifest.stages.values().flat_map(|entry| &entry.inputs) {
        let parts: Vec<&str> = input.path.split(['/', '\\']).collect();
        for window in parts.windows(3) {
            let [repo, "snapshots", commit] = window else { continue };
            let kinds = [("models--", "model"), ("datasets--", "dataset")];
            let Some((rest, kind)) = kinds.iter().find_map(|(prefix, kind)| repo.strip_prefix(prefix).map(|rest| (rest, kind))) else {
                continue;
            };
            found.insert((rest.replacen("--", "/", 1), (*kind).to_owned(), (*commit).to_owned()));
        }
    }
    found
}

/// `path` relative to the run, for display.
pub fn display(run: &RunDir, path: &Path) -> String {
    run.relative(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use entangle_artifacts::{FileStamp, StageEntry};

    use super::*;

    #[test]
    fn hub_inputs_show_their_repository_and_commit() {
        let stamp = |path: &str| FileStamp { path: path.to_owned(), fingerprint: "f".into() };
        let entry = |inputs: Vec<FileStamp>| StageEntry::finished_now("h".into(), inputs, Vec::new(), 1.0);
        let mut manifest = Manifest::default();
        let model = "/home/u/.cache/huggingface/hub/models--meta-llama--Llama-3.2-1B/snapshots/4e20de36/";
        manifest.stages.insert("capture:base".into(), entry(vec![stamp(model), stamp("data/prompts_useful.parquet")]));
        let data = "/c/hub/datasets--walledai--AdvBench/snapshots/9a1b/data/train-00000-of-00001.parquet";
        manifest.stages.insert("prepare".into(), entry(vec![stamp(data), stamp(model)]));
        let found: Vec<(String, String, String)> = hub_revisions(&manifest).into_iter().collect();
        assert_eq!(found, [
            ("meta-llama/Llama-3.2-1B".to_owned(), "model".to_owned(), "4e20de36".to_owned()),
            ("walledai/AdvBench".to_owned(), "dataset".to_owned(), "9a1b".to_owned()),
        ]);
    }
}
