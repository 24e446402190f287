//! A GGUF file (llama.cpp) as a Hugging Face checkpoint directory that our runtime and
//! transformers load: the converter behind the stage `import:<name>` and
//! `entangle-infer import-gguf FILE OUT_DIR`.
//!
//! entangle-gguf reads and checks the file and plans every tensor; here each planned tensor is
//! dequantized to f32 one at a time and streamed into `entangle_checkpoint::write_checkpoint`,
//! with `config.json`, `generation_config.json`, `tokenizer.json` and `tokenizer_config.json`,
//! so the directory appears only once complete. Tied embeddings are stored once, as
//! transformers stores them (a GGUF of a tied model has no `output.weight`).

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use entangle_checkpoint::{write_checkpoint, WriteOptions};
use entangle_gguf::GgufFile;
use serde_json::Value;
use tch::Tensor;

/// Writes the checkpoint of GGUF `file` to `out`; an existing `out` is replaced only with
/// `force`. Errors name the file and the field or tensor at fault.
pub fn import_gguf(file: &Path, out: &Path, force: bool) -> Result<()> {
    if out.exists() && !force {
        bail!("{} already exists (pass --force to replace it)", out.display());
    }
    let gguf = GgufFile::open(file)?;
    let model = entangle_gguf::hf_model(&gguf.header).with_context(|| file.display().to_string())?;
    let config = &model.config;
    tracing::info!(
        "{}: GGUF v{}, {} tensors; llama, {} layers, hidden {}, {} heads ({} key/value), vocabulary {}",
        file.display(),
        gguf.header.version,
        model.tensors.len(),
        config["num_hidden_layers"],
        config["hidden_size"],
        config["num_attention_heads"],
        config["num_key_value_heads"],
        config["vocab_size"]
    );

    // The tokenizer and generation files go through a staging directory next to `out`, from
    // which write_checkpoint copies them into the checkpoint before it appears.
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".import-gguf-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    for (name, value) in [
        ("tokenizer.json", &model.tokenizer.tokenizer),
        ("tokenizer_config.json", &model.tokenizer.config),
        ("generation_config.json", &model.generation_config),
    ] {
        write_json(&staging.path().join(name), value)?;
    }

    let bar = entangle_artifacts::progress_bar(model.tensors.len() as u64, "tensors");
    let parameters: usize = model.tensors.iter().map(|t| t.shape.iter().product::<usize>()).sum();
    let tensors = model.tensors.iter().map(|plan| {
        let values = plan.read(&gguf).with_context(|| file.display().to_string())?;
        let shape: Vec<i64> = plan.shape.iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_slice(&values)
            .and_then(|t| t.f_reshape(shape.as_slice()))
            .with_context(|| format!("building tensor {}", plan.hf_name))?;
        bar.inc(1);
        Ok((plan.hf_name.clone(), tensor))
    });
    let options = WriteOptions { copy_files_from: Some(staging.path()), ..WriteOptions::default() };
    write_checkpoint(out, config, tensors, &options)?;
    bar.finish_and_clear();
    tracing::info!("wrote {}: {} tensors, {parameters} parameters in f32", out.display(), model.tensors.len());
    Ok(())
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text = serde_json::to_vec_pretty(value).context("serialising JSON")?;
    let mut file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&text).and_then(|()| file.write_all(b"\n")).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use entangle_checkpoint::Checkpoint;
    use entangle_model::{ForwardInput, Message, Placement};
    use serde::Deserialize;
    use tch::Kind;

    use super::*;
    use entangle_models::infer::{run, Cli};

    /// What transformers made of `tiny-llama.gguf` (crates/gguf/fixtures/make_fixtures.py).
    #[derive(Deserialize)]
    struct Expected {
        config: BTreeMap<String, Value>,
        special_tokens: BTreeMap<String, String>,
        encodings: Vec<Encoding>,
        chat: Vec<Chat>,
        prompts: Vec<Prompt>,
    }

    #[derive(Deserialize)]
    struct Encoding {
        text: String,
        ids: Vec<u32>,
    }

    #[derive(Deserialize)]
    struct Chat {
        messages: Vec<Message>,
        add_generation_prompt: bool,
        text: String,
        ids: Vec<u32>,
    }

    #[derive(Deserialize)]
    struct Prompt {
        text: String,
        ids: Vec<u32>,
        /// `[tokens][vocab]`.
        logits: Vec<Vec<f32>>,
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../gguf/fixtures")
    }

    fn import(args: &[&Path], force: bool) -> Result<()> {
        let mut argv: Vec<String> = vec!["entangle-infer".into(), "import-gguf".into()];
        argv.extend(args.iter().map(|p| p.display().to_string()));
        if force {
            argv.push("--force".into());
        }
        run(&<Cli as clap::Parser>::try_parse_from(argv).unwrap())
    }

    #[test]
    fn gguf_import_matches_transformers() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("tiny");
        import(&[&fixtures().join("tiny-llama.gguf"), &out], false).unwrap();
        let expected: Expected =
            serde_json::from_str(&std::fs::read_to_string(fixtures().join("tiny-llama.expected.json")).unwrap())
                .unwrap();

        // The config says what transformers' says; floats were f32 in the file.
        let checkpoint = Checkpoint::open(&out).unwrap();
        for (key, want) in &expected.config {
            let got = &checkpoint.config[key];
            match (got.as_f64(), want.as_f64()) {
                (Some(g), Some(w)) if want.is_f64() => assert!((g - w).abs() <= 1e-6 * w.abs(), "{key}: {g} vs {w}"),
                _ => assert_eq!(got, want, "{key}"),
            }
        }
        // f32 tensors, the tied embedding stored once.
        assert!(checkpoint.tensors().all(|t| format!("{:?}", t.dtype) == "F32"));
        assert!(checkpoint.info("lm_head.weight").is_none());
        assert_eq!(checkpoint.tensors().count(), 20);
        assert!(!std::fs::read_dir(tmp.path()).unwrap().any(|e| e.unwrap().file_name() != "tiny"), "staging left");

        let loaded = entangle_models::load(out.to_str().unwrap(), Placement::cpu()).unwrap();
        let tokenizer = &loaded.tokenizer;
        for (name, token) in &expected.special_tokens {
            assert_eq!(tokenizer.special_tokens.get(name), Some(token), "{name}");
        }
        assert_eq!(tokenizer.eos_token_ids(), [2]);
        for case in &expected.encodings {
            assert_eq!(tokenizer.encode(&case.text, true).unwrap(), case.ids, "{:?}", case.text);
        }
        for case in &expected.chat {
            let text = tokenizer.apply_chat_template(&case.messages, case.add_generation_prompt).unwrap();
            assert_eq!(text, case.text);
            assert_eq!(tokenizer.encode(&text, false).unwrap(), case.ids, "{text:?}");
        }
        let _guard = tch::no_grad_guard();
        for prompt in &expected.prompts {
            assert_eq!(tokenizer.encode(&prompt.text, true).unwrap(), prompt.ids, "{:?}", prompt.text);
            let ids: Vec<i64> = prompt.ids.iter().map(|&t| i64::from(t)).collect();
            let input_ids = Tensor::from_slice(&ids).view([1, -1]);
            let logits = loaded.model.forward(&ForwardInput::tokens(&input_ids), None).unwrap().logits.get(0);
            let flat: Vec<f32> = prompt.logits.iter().flatten().copied().collect();
            let want = Tensor::from_slice(&flat).view([prompt.logits.len() as i64, -1]);
            assert_eq!(logits.size(), want.size());
            let diff = (logits.to_kind(Kind::Double) - want.to_kind(Kind::Double)).abs().max().double_value(&[]);
            let dims = loaded.model.dims();
            let longest_sum = usize::try_from(entangle_checkpoint::read_config(&out).unwrap()["intermediate_size"].as_u64().unwrap()).unwrap();
            let scale = want.abs().max().double_value(&[]);
            let tolerance = entangle_model::tolerance::f32_forward(dims.num_layers, longest_sum.max(dims.hidden_size), scale);
            assert!(diff < tolerance, "{:?}: logits differ by {diff} > {tolerance}", prompt.text);
        }

        // An existing directory is replaced only with --force.
        let err = format!("{:#}", import(&[&fixtures().join("tiny-llama.gguf"), &out], false).unwrap_err());
        assert_eq!(err, format!("{} already exists (pass --force to replace it)", out.display()));
        import(&[&fixtures().join("tiny-llama.gguf"), &out], true).unwrap();
        assert!(out.join("model.safetensors").exists());
    }

    #[test]
    fn bad_files_are_one_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("model.gguf");
        std::fs::write(&file, b"GGML\x03\0\0\0").unwrap();
        let out = tmp.path().join("out");
        let err = format!("{:#}", import(&[&file, &out], false).unwrap_err());
        assert_eq!(err, format!("{}: not a GGUF file (it starts with \"GGML\", not \"GGUF\")", file.display()));
        let err = format!("{:#}", import(&[&tmp.path().join("absent.gguf"), &out], false).unwrap_err());
        assert!(err.starts_with(&format!("{}: cannot open", tmp.path().join("absent.gguf").display())), "{err}");
        // A GGUF whose tokenizer we cannot rebuild fails before anything is written.
        let bytes = std::fs::read(fixtures().join("tiny-llama.gguf")).unwrap();
        let needle = b"smollm";
        let at = bytes.windows(needle.len()).position(|w| w == needle).unwrap();
        let mut other = bytes.clone();
        other[at..at + needle.len()].copy_from_slice(b"tekken");
        std::fs::write(&file, other).unwrap();
        let err = format!("{:#}", import(&[&file, &out], false).unwrap_err());
        assert_eq!(
            err,
            format!(
                "{}: pre-tokenizer `tekken` (`tokenizer.ggml.pre`) is not supported \
                 (supported: default, gpt-2, smollm, llama-bpe, llama3, llama-v3)",
                file.display()
            )
        );
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "only the input is left");
    }
}
