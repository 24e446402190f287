//! `entangle-infer`: inspect a model directory, generate from it, dump its last-token logits
//! and hidden states, or import a GGUF file as a checkpoint. The binary parses [`Cli`] and
//! calls [`run`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;
use clap::{Args, Parser, Subcommand};
use entangle_artifacts::{write_table, LastTokenHidden, LastTokenLogit};
use entangle_checkpoint::Checkpoint;
use entangle_model::{
    last_token_states, GenerateOptions, Placement, PromptFormat, Registry, Sampling, Tokenizer,
};

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use tch::Tensor;

use crate::generation::{encode_all, generated_texts, thousands};
use crate::{load, registry, Loaded};

/// Inspect a model, generate from it, dump its last-token logits and hidden states, or import
/// a GGUF file.
#[derive(Debug, Parser)]
#[command(name = "entangle-infer", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Architecture, parameter count, dtypes and (with --tensors) every tensor.
    Info {
        /// Model directory or hub id (org/name or org/name@revision).
        model: String,
        /// List every tensor with its dtype and shape.
        #[arg(long)]
        tensors: bool,
    },
    /// Generate a response to each prompt; print them, or write a Parquet table with --out.
    Generate {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// Sample with this temperature instead of decoding greedily.
        #[arg(long)]
        temperature: Option<f64>,
        /// Nucleus sampling: keep the most likely tokens up to this total probability.
        #[arg(long, default_value_t = 1.0, requires = "temperature")]
        top_p: f64,
        /// Seed of the sampling.
        #[arg(long, default_value_t = 0, requires = "temperature")]
        seed: u64,
        /// An extra stop string (repeatable); the instruction format's markers always stop.
        #[arg(long = "stop")]
        stop: Vec<String>,
        /// Parquet file to write (columns: item, prompt, format, response, stop_reason,
        /// prompt_tokens, new_tokens).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Last-position logits and every layer's hidden state at each prompt's last token.
    Logits {
        #[command(flatten)]
        common: Common,
        /// Directory to write logits.parquet and hidden_states.parquet into; without it the
        /// five most likely next tokens of each prompt are printed.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Convert a GGUF file (llama.cpp) of a Llama with a byte-level BPE tokenizer into a
    /// Hugging Face checkpoint directory: f32 safetensors, config, generation config, tokenizer.
    ImportGguf {
        /// The .gguf file.
        file: PathBuf,
        /// The checkpoint directory to write.
        out_dir: PathBuf,
        /// Replace OUT_DIR if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// What `generate` and `logits` share.
#[derive(Debug, Args)]
pub struct Common {
    /// Model directory or hub id (org/name or org/name@revision).
    pub model: String,
    /// A prompt (repeatable).
    #[arg(long = "prompt")]
    pub prompts: Vec<String>,
    /// A Parquet or JSONL file of prompts.
    #[arg(long = "prompts")]
    pub prompt_file: Option<PathBuf>,
    /// The Parquet column or JSON field holding the prompt.
    #[arg(long, default_value = "prompt")]
    pub column: String,
    /// How a prompt is shown to the model: instruction, chat or plain.
    #[arg(long, default_value = "plain")]
    pub format: PromptFormat,
    /// Prompts per batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// auto (f32 on CPU, bf16 on CUDA), f32, bf16 or f16.
    #[arg(long, default_value = "auto")]
    pub dtype: String,
}

/// Runs one `entangle-infer` command.
pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Info { model, tensors } => {
            let dir = entangle_checkpoint::resolve(model)?;
            print!("{}", info(&dir, &registry(), *tensors)?);
            Ok(())
        }
        Command::Generate { common, max_new_tokens, temperature, top_p, seed, stop, out } => {
            let (loaded, prompts) = open(common)?;
            let sampling = match temperature {
                Some(temperature) => Sampling::TopP { temperature: *temperature, top_p: *top_p, seed: *seed },
                None => Sampling::Greedy,
            };
            let mut options = GenerateOptions {
                max_new_tokens: *max_new_tokens,
                sampling,
                stop_strings: common.format.stop_strings(),
                eos_token_ids: loaded.tokenizer.eos_token_ids().to_vec(),
                batch_size: common.batch_size,
            };
            options.stop_strings.extend(stop.iter().cloned());
            let rows = generated_texts(&loaded, &prompts, common.format, &options)?;
            match out {
                Some(path) => write_table(path, &rows).map(|()| tracing::info!("wrote {}", path.display())),
                None => {
                    for row in &rows {
                        println!(
                            "### {} ({}, {} tokens)\n{}\n",
                            row.item, row.stop_reason, row.new_tokens, row.response
                        );
                    }
                    Ok(())
                }
            }
        }
        Command::Logits { common, out } => {
            let (loaded, prompts) = open(common)?;
            let (logits, hidden) = last_token_tables(&loaded, &prompts, common.format, common.batch_size)?;
            match out {
                Some(dir) => {
                    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
                    write_table(&dir.join("logits.parquet"), &logits)?;
                    write_table(&dir.join("hidden_states.parquet"), &hidden)?;
                    tracing::info!("wrote logits.parquet and hidden_states.parquet in {}", dir.display());
                    Ok(())
                }
                None => {
                    print!("{}", top_tokens(&loaded.tokenizer, &logits, 5)?);
                    Ok(())
                }
            }
        }
        Command::ImportGguf { file, out_dir, force } => entangle_import::import_gguf(file, out_dir, *force),
    }
}

/// Loads the model and reads the prompts of a `generate` or `logits` command.
fn open(common: &Common) -> Result<(Loaded, Vec<String>)> {
    let mut prompts = common.prompts.clone();
    if let Some(path) = &common.prompt_file {
        prompts.extend(read_prompts(path, &common.column)?);
    }
    if prompts.is_empty() {
        bail!("no prompts: pass --prompt TEXT or --prompts FILE");
    }
    let placement = Placement::parse(&common.device, &common.dtype)?;
    let loaded = load(&common.model, placement)?;
    tracing::info!(
        "loaded {} on {:?} as {:?}; {} prompt(s)",
        loaded.dir.display(),
        placement.device,
        placement.kind,
        prompts.len()
    );
    Ok((loaded, prompts))
}

/// A model's architecture, size, dtypes and tokenizer, read from its files without loading
/// the weights; with `list_tensors`, every tensor too.
pub fn info(dir: &Path, registry: &Registry, list_tensors: bool) -> Result<String> {
    let checkpoint = Checkpoint::open(dir)?;
    let config = &checkpoint.config;
    let field = |key: &str| match config.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "?".to_owned(),
    };
    let architecture =
        config.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str).unwrap_or("unknown architecture");
    let support = match registry.family(config) {
        Ok(_) => "supported".to_owned(),
        Err(err) => format!("{err:#}"),
    };
    let head_dim = config.get("head_dim").filter(|v| !v.is_null()).map(Value::to_string).unwrap_or_else(|| {
        match (
            config.get("hidden_size").and_then(Value::as_u64),
            config.get("num_attention_heads").and_then(Value::as_u64),
        ) {
            (Some(h), Some(n)) if n > 0 => (h / n).to_string(),
            _ => "?".to_owned(),
        }
    });
    let mut dtypes: BTreeMap<String, usize> = BTreeMap::new();
    let mut parameters = 0usize;
    for tensor in checkpoint.tensors() {
        *dtypes.entry(format!("{:?}", tensor.dtype)).or_default() += 1;
        parameters += tensor.numel();
    }
    let dtypes: Vec<String> = dtypes.iter().map(|(dtype, n)| format!("{dtype} ({n})")).collect();
    let tokenizer = match Tokenizer::from_dir(dir) {
        Ok(t) => format!(
            "{} tokens, chat template: {}",
            t.vocab_size(),
            if t.chat_template().is_some() { "yes" } else { "no" }
        ),
        Err(err) => format!("none ({err:#})"),
    };
    let mut out = String::new();
    let mut line = |key: &str, value: String| out.push_str(&format!("{key:<14}{value}\n"));
    line("model", dir.display().to_string());
    line("architecture", format!("{architecture} (model_type {}: {support})", field("model_type")));
    line("layers", field("num_hidden_layers"));
    line("hidden size", format!("{} (intermediate {})", field("hidden_size"), field("intermediate_size")));
    line(
        "heads",
        format!(
            "{} query, {} key/value, head dim {head_dim}",
            field("num_attention_heads"),
            field("num_key_value_heads")
        ),
    );
    line("vocabulary", field("vocab_size"));
    line("parameters", format!("{} in {} tensors", thousands(parameters), checkpoint.tensors().count()));
    line("dtypes", dtypes.join(", "));
    line("tokenizer", tokenizer);
    if list_tensors {
        for tensor in checkpoint.tensors() {
            out.push_str(&format!("  {}  {:?}  {:?}\n", tensor.name, tensor.dtype, tensor.shape));
        }
    }
    Ok(out)
}

/// The prompts in column (Parquet) or field (JSONL) `column` of the file at `path`, chosen
/// by its extension.
pub fn read_prompts(path: &Path, column: &str) -> Result<Vec<String>> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => parquet_column(path, column),
        Some("jsonl") => jsonl_field(path, column),
        _ => bail!("{}: prompt files must be .parquet or .jsonl", path.display()),
    }
}

fn parquet_column(path: &Path, column: &str) -> Result<Vec<String>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .with_context(|| format!("{}: not a Parquet file", path.display()))?;
    let mut prompts = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {}", path.display()))?;
        let array =
            batch.column_by_name(column).with_context(|| format!("{}: no column `{column}`", path.display()))?;
        let strings = arrow::compute::cast(array, &DataType::Utf8)
            .with_context(|| format!("{}: column `{column}` is not text", path.display()))?;
        let strings = strings
            .as_any()
            .downcast_ref::<StringArray>()
            .with_context(|| format!("{}: column `{column}` is not text", path.display()))?;
        for value in strings.iter() {
            let value = value.with_context(|| format!("{}: column `{column}` has a null", path.display()))?;
            prompts.push(value.to_owned());
        }
    }
    Ok(prompts)
}

fn jsonl_field(path: &Path, field: &str) -> Result<Vec<String>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut prompts = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Value =
            serde_json::from_str(&line).with_context(|| format!("{}:{}: not JSON", path.display(), i + 1))?;
        let prompt = row
            .get(field)
            .and_then(Value::as_str)
            .with_context(|| format!("{}:{}: no string field `{field}`", path.display(), i + 1))?;
        prompts.push(prompt.to_owned());
    }
    Ok(prompts)
}

/// Each prompt's last-position logits and every layer's hidden state at its last token, as
/// long tables.
pub fn last_token_tables(
    loaded: &Loaded,
    prompts: &[String],
    format: PromptFormat,
    batch_size: usize,
) -> Result<(Vec<LastTokenLogit>, Vec<LastTokenHidden>)> {
    if batch_size == 0 {
        bail!("the batch size must be at least 1");
    }
    let encoded = encode_all(&loaded.tokenizer, prompts, format)?;
    let bar = entangle_artifacts::progress_bar(prompts.len() as u64, "prompts");
    let (mut logits, mut hidden) = (Vec::new(), Vec::new());
    for (b, chunk) in encoded.chunks(batch_size).enumerate() {
        let states = last_token_states(loaded.model.as_ref(), chunk, loaded.tokenizer.pad_token_id())?;
        for row in 0..chunk.len() {
            let item = (b * batch_size + row) as u64;
            let values = floats(&states.logits.get(row as i64))?;
            logits.extend(values.into_iter().enumerate().map(|(token, logit)| LastTokenLogit {
                item,
                token: token as u32,
                logit,
            }));
            let layers = states.hidden_states.get(row as i64);
            for layer in 0..layers.size()[0] {
                let values = floats(&layers.get(layer))?;
                hidden.extend(values.into_iter().enumerate().map(|(dim, value)| LastTokenHidden {
                    item,
                    layer: layer as u32,
                    dim: dim as u32,
                    value,
                }));
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok((logits, hidden))
}

fn floats(t: &Tensor) -> Result<Vec<f32>> {
    Vec::<f32>::try_from(t).context("reading values back from the model")
}

/// The `k` most likely next tokens of each prompt, one line per prompt.
fn top_tokens(tokenizer: &Tokenizer, logits: &[LastTokenLogit], k: usize) -> Result<String> {
    let mut by_item: BTreeMap<u64, Vec<&LastTokenLogit>> = BTreeMap::new();
    for row in logits {
        by_item.entry(row.item).or_default().push(row);
    }
    let mut out = String::new();
    for (item, mut rows) in by_item {
        rows.sort_by(|a, b| b.logit.total_cmp(&a.logit));
        let top: Vec<String> = rows
            .iter()
            .take(k)
            .map(|r| Ok(format!("{:?} {:.3}", tokenizer.decode(&[r.token], false)?, r.logit)))
            .collect::<Result<_>>()?;
        out.push_str(&format!("{item}: {}\n", top.join(", ")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use entangle_artifacts::GeneratedText;
    use entangle_artifacts::read_table;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../llama/fixtures/llama")
    }

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("entangle-infer").chain(args.iter().copied())).unwrap()
    }

    fn run_ok(args: &[&str]) {
        run(&cli(args)).unwrap();
    }

    #[test]
    fn info_describes_the_checkpoint() {
        let text = info(&fixture(), &registry(), true).unwrap();
        for needle in [
            "architecture  LlamaForCausalLM (model_type llama: supported)",
            "layers        2",
            "hidden size   32 (intermediate 64)",
            "heads         4 query, 2 key/value, head dim 8",
            "vocabulary    300",
            "parameters    37,792 in 21 tensors",
            "dtypes        F32 (21)",
            "tokenizer     300 tokens, chat template: yes",
            "  model.layers.1.self_attn.k_proj.weight  F32  [16, 32]",
        ] {
            assert!(text.contains(needle), "`{needle}` not in:\n{text}");
        }
    }

    #[test]
    fn generate_writes_one_row_per_prompt() {
        let tmp = tempfile::tempdir().unwrap();
        let prompts = tmp.path().join("prompts.jsonl");
        std::fs::write(&prompts, "{\"prompt\": \"I'm\"}\n\n{\"prompt\": \"The quick brown fox\", \"id\": 3}\n")
            .unwrap();
        let out = tmp.path().join("out.parquet");
        let model = fixture();
        let model = model.to_str().unwrap();
        let prompt_file = prompts.to_str().unwrap();
        let out_path = out.to_str().unwrap();
        run_ok(&[
            "generate",
            model,
            "--prompt",
            "Hello",
            "--prompts",
            prompt_file,
            "--max-new-tokens",
            "5",
            "--device",
            "cpu",
            "--out",
            out_path,
        ]);
        let rows: Vec<GeneratedText> = read_table(&out).unwrap();
        assert_eq!(rows.iter().map(|r| r.prompt.as_str()).collect::<Vec<_>>(), ["Hello", "I'm", "The quick brown fox"]);
        assert_eq!(rows.iter().map(|r| r.item).collect::<Vec<_>>(), [0, 1, 2]);
        for row in &rows {
            assert_eq!(row.format, "plain");
            assert!(row.new_tokens <= 5 && row.new_tokens > 0);
            assert!(
                row.stop_reason == "eos" || (row.stop_reason == "max_new_tokens" && row.new_tokens == 5),
                "{row:?}"
            );
        }
        // "I'm" continues greedily as transformers recorded (make_fixtures.py).
        let tokenizer = Tokenizer::from_dir(&fixture()).unwrap();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap()).unwrap();
        let greedy: Vec<u32> = expected["prompts"][2]["greedy"]
            .as_array()
            .unwrap()
            .iter()
            .take(5)
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        let want = tokenizer.decode(&greedy, true).unwrap();
        assert!(want.starts_with(&rows[1].response), "{:?} vs {want:?}", rows[1].response);
        run_ok(&[
            "generate",
            model,
            "--prompt",
            "Hi",
            "--max-new-tokens",
            "3",
            "--temperature",
            "0.8",
            "--top-p",
            "0.9",
            "--seed",
            "1",
            "--device",
            "cpu",
            "--out",
            out_path,
        ]);
        assert_eq!(read_table::<GeneratedText>(&out).unwrap().len(), 1);
    }

    #[test]
    fn logits_write_long_tables() {
        let tmp = tempfile::tempdir().unwrap();
        let model = fixture();
        let out = tmp.path().join("out");
        run_ok(&[
            "logits",
            model.to_str().unwrap(),
            "--prompt",
            "I'm",
            "--prompt",
            "The quick brown fox",
            "--batch-size",
            "1",
            "--device",
            "cpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        let logits: Vec<LastTokenLogit> = read_table(&out.join("logits.parquet")).unwrap();
        let hidden: Vec<LastTokenHidden> = read_table(&out.join("hidden_states.parquet")).unwrap();
        assert_eq!(logits.len(), 2 * 300);
        assert_eq!(hidden.len(), 2 * 3 * 32);
        // Transformers' last-position logits of "I'm" (make_fixtures.py), to the recorded precision.
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture().join("expected.json")).unwrap()).unwrap();
        let want = expected["prompts"][2]["logits"].as_array().unwrap().last().unwrap().as_array().unwrap().clone();
        // The fixture has 2 layers and sums of at most 64 terms; transformers sums in its own order.
        let tolerance = |values: &[Value]| {
            let scale = values.iter().filter_map(Value::as_f64).fold(0.0, |m: f64, v| m.max(v.abs()));
            entangle_model::tolerance::f32_forward(2, 64, scale)
        };
        for row in logits.iter().filter(|r| r.item == 0) {
            let w = want[row.token as usize].as_f64().unwrap();
            assert!((f64::from(row.logit) - w).abs() < tolerance(&want), "token {}: {} vs {w}", row.token, row.logit);
        }
        let last_layer = expected["prompts"][0]["hidden_states"][2].as_array().unwrap().last().unwrap().as_array().unwrap().clone();
        for row in hidden.iter().filter(|r| r.item == 1 && r.layer == 2) {
            let w = last_layer[row.dim as usize].as_f64().unwrap();
            assert!((f64::from(row.value) - w).abs() < tolerance(&last_layer), "dim {}: {} vs {w}", row.dim, row.value);
        }
    }

    #[test]
    fn prompts_are_read_from_parquet_and_jsonl() {
        let tmp = tempfile::tempdir().unwrap();
        let parquet = tmp.path().join("p.parquet");
        let row = |prompt: &str| GeneratedText {
            item: 0,
            prompt: prompt.to_owned(),
            format: String::new(),
            response: String::new(),
            stop_reason: String::new(),
            prompt_tokens: 0,
            new_tokens: 0,
        };
        write_table(&parquet, &[row("a"), row("b")]).unwrap();
        assert_eq!(read_prompts(&parquet, "prompt").unwrap(), ["a", "b"]);
        assert_eq!(read_prompts(&parquet, "item").unwrap(), ["0", "0"]);
        let err = format!("{:#}", read_prompts(&parquet, "question").unwrap_err());
        assert!(err.ends_with("p.parquet: no column `question`"), "{err}");
        let jsonl = tmp.path().join("p.jsonl");
        std::fs::write(&jsonl, "{\"q\": \"x\"}\n{\"r\": 1}\n").unwrap();
        let err = format!("{:#}", read_prompts(&jsonl, "q").unwrap_err());
        assert!(err.ends_with("p.jsonl:2: no string field `q`"), "{err}");
        let err = format!("{:#}", read_prompts(&tmp.path().join("p.csv"), "q").unwrap_err());
        assert!(err.ends_with("p.csv: prompt files must be .parquet or .jsonl"), "{err}");
    }

    #[test]
    fn bad_invocations_are_one_clear_error() {
        let model = fixture();
        let model = model.to_str().unwrap();
        let err = format!("{:#}", run(&cli(&["generate", model, "--device", "cpu"])).unwrap_err());
        assert_eq!(err, "no prompts: pass --prompt TEXT or --prompts FILE");
        let tmp = tempfile::tempdir().unwrap();
        for file in ["config.json", "model.safetensors"] {
            std::fs::copy(fixture().join(file), tmp.path().join(file)).unwrap();
        }
        let err = format!(
            "{:#}",
            run(&cli(&["logits", tmp.path().to_str().unwrap(), "--prompt", "x", "--device", "cpu"])).unwrap_err()
        );
        assert!(err.ends_with("no tokenizer.json (a fast tokenizer file is required)"), "{err}");
        assert!(Cli::try_parse_from(["entangle-infer", "generate", model, "--top-p", "0.5"]).is_err());
        assert!(Cli::try_parse_from(["entangle-infer", "generate", model, "--format", "alpaca"]).is_err());
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
