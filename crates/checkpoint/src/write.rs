//! Writing checkpoint directories that Hugging Face transformers loads unchanged.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use entangle_artifacts::{replace_dir_atomic, write_atomic};
use safetensors::{Dtype, View};
use tch::{Device, Tensor};

use crate::dtype_of_kind;

/// Files copied verbatim from a source model directory, when present: tokenizer, chat
/// template and generation settings.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
];

/// How [`write_checkpoint`] lays out a checkpoint.
#[derive(Debug, Clone)]
pub struct WriteOptions<'a> {
    /// A shard is closed before it would grow past this many bytes of tensor data; a single
    /// shard is written as `model.safetensors` without an index.
    pub max_shard_bytes: u64,
    /// Directory whose [`TOKENIZER_FILES`] are copied into the checkpoint.
    pub copy_files_from: Option<&'a Path>,
}

impl Default for WriteOptions<'_> {
    /// transformers' default shard size, 5 GB, and nothing copied.
    fn default() -> Self {
        WriteOptions { max_shard_bytes: 5_000_000_000, copy_files_from: None }
    }
}

/// A tensor's bytes, ready for safetensors.
struct OwnedView {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &OwnedView {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn owned_view(name: &str, tensor: &Tensor) -> Result<OwnedView> {
    let kind = tensor.kind();
    let dtype = dtype_of_kind(kind)
        .with_context(|| format!("tensor {name}: dtype {kind:?} cannot be stored in safetensors"))?;
    let tensor = tensor
        .f_to_device(Device::Cpu)
        .and_then(|t| t.f_contiguous())
        .with_context(|| format!("moving tensor {name} to the CPU"))?;
    let numel = tensor.numel();
    let mut data = vec![0u8; numel * kind.elt_size_in_bytes()];
    tensor
        .f_copy_data_u8(&mut data, numel)
        .with_context(|| format!("copying tensor {name}"))?;
    let shape = tensor.size().iter().map(|&d| d as usize).collect();
    Ok(OwnedView { dtype, shape, data })
}

/// Writes a checkpoint directory at `dir`: `config.json`, the `tensors` in safetensors (sharded
/// with `model.safetensors.index.json` above the shard limit), and the tokenizer files of the
/// source directory. Tensors are consumed one by one, so at most one shard is held in memory.
/// The directory appears only once complete; an existing one is replaced.
pub fn write_checkpoint(
    dir: &Path,
    config: &serde_json::Value,
    tensors: impl IntoIterator<Item = Result<(String, Tensor)>>,
    options: &WriteOptions,
) -> Result<()> {
    replace_dir_atomic(dir, |tmp| {
        let config_text = serde_json::to_vec_pretty(config).context("serialising config.json")?;
        write_atomic(&tmp.join("config.json"), |w| Ok(w.write_all(&config_text)?))?;
        write_shards(tmp, tensors, options.max_shard_bytes)?;
        if let Some(source) = options.copy_files_from {
            copy_tokenizer_files(source, tmp)?;
        }
        Ok(())
    })
    .with_context(|| format!("writing checkpoint {}", dir.display()))
}

fn write_shards(
    dir: &Path,
    tensors: impl IntoIterator<Item = Result<(String, Tensor)>>,
    max_shard_bytes: u64,
) -> Result<()> {
    let mut shards: Vec<Vec<String>> = Vec::new();
    let mut pending: Vec<(String, OwnedView)> = Vec::new();
    let mut pending_bytes = 0u64;
    let mut total_bytes = 0u64;
    for item in tensors {
        let (name, tensor) = item?;
        let view = owned_view(&name, &tensor)?;
        let bytes = view.data.len() as u64;
        if !pending.is_empty() && pending_bytes + bytes > max_shard_bytes {
            shards.push(flush_shard(dir, shards.len(), std::mem::take(&mut pending))?);
            pending_bytes = 0;
        }
        pending_bytes += bytes;
        total_bytes += bytes;
        pending.push((name, view));
    }
    if !pending.is_empty() || shards.is_empty() {
        shards.push(flush_shard(dir, shards.len(), pending)?);
    }
    name_shards(dir, &shards, total_bytes)
}

/// Writes one shard under a provisional name, `part-<i>`, and returns its tensor names.
fn flush_shard(dir: &Path, index: usize, tensors: Vec<(String, OwnedView)>) -> Result<Vec<String>> {
    let path = dir.join(format!("part-{index}"));
    let names = tensors.iter().map(|(name, _)| name.clone()).collect();
    let metadata = Some(std::collections::HashMap::from([("format".to_owned(), "pt".to_owned())]));
    let views = tensors.iter().map(|(name, view)| (name.as_str(), view));
    safetensors::serialize_to_file(views, metadata, &path)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    make_readable(&path)?;
    Ok(names)
}

/// Gives a shard the mode of the checkpoint's other files, readable by all: safetensors writes
/// through a private temporary file (mode 0600), which other users of a shared run could not
/// load.
fn make_readable(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("making {} readable", path.display()))?;
    }
    Ok(())
}

/// Gives the provisional shards their Hugging Face names and writes the index when sharded.
fn name_shards(dir: &Path, shards: &[Vec<String>], total_bytes: u64) -> Result<()> {
    if let [_] = shards {
        return rename(&dir.join("part-0"), &dir.join("model.safetensors"));
    }
    let mut weight_map = BTreeMap::new();
    for (i, names) in shards.iter().enumerate() {
        let file_name = format!("model-{:05}-of-{:05}.safetensors", i + 1, shards.len());
        rename(&dir.join(format!("part-{i}")), &dir.join(&file_name))?;
        for name in names {
            weight_map.insert(name.clone(), file_name.clone());
        }
    }
    let index = serde_json::json!({ "metadata": { "total_size": total_bytes }, "weight_map": weight_map });
    let text = serde_json::to_vec_pretty(&index).context("serialising the shard index")?;
    write_atomic(&dir.join("model.safetensors.index.json"), |w| Ok(w.write_all(&text)?))
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))
}

fn copy_tokenizer_files(source: &Path, dir: &Path) -> Result<()> {
    for name in TOKENIZER_FILES {
        let from = source.join(name);
        if from.exists() {
            std::fs::copy(&from, dir.join(name))
                .with_context(|| format!("copying {} into the checkpoint", from.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Checkpoint;
    use tch::Kind;

    fn sample_tensors() -> Vec<(String, Tensor)> {
        let values = |n: i64| Tensor::arange(n, (Kind::Float, Device::Cpu)).sin();
        vec![
            ("a.weight".to_owned(), values(32).reshape([8, 4])),
            ("b.weight".to_owned(), values(16).to_kind(Kind::BFloat16)),
            ("c.weight".to_owned(), values(15).reshape([3, 5]).to_kind(Kind::Half)),
            ("d.index".to_owned(), Tensor::arange(6, (Kind::Int64, Device::Cpu))),
        ]
    }

    fn write(dir: &Path, max_shard_bytes: u64, source: Option<&Path>) {
        let config = serde_json::json!({ "model_type": "llama", "hidden_size": 4 });
        let tensors = sample_tensors().into_iter().map(Ok);
        let options = WriteOptions { max_shard_bytes, copy_files_from: source };
        write_checkpoint(dir, &config, tensors, &options).unwrap();
    }

    fn check_round_trip(dir: &Path) {
        let ckpt = Checkpoint::open(dir).unwrap();
        assert_eq!(ckpt.config["hidden_size"], 4);
        for (name, tensor) in sample_tensors() {
            let back = ckpt.load_stored(&name).unwrap();
            assert_eq!(back.kind(), tensor.kind(), "{name}");
            assert_eq!(back.size(), tensor.size(), "{name}");
            assert!(back.equal(&tensor), "{name}");
        }
    }

    #[test]
    fn single_file_round_trip_keeps_values_and_dtypes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        write(&dir, u64::MAX, None);
        assert!(dir.join("model.safetensors").exists());
        assert!(!dir.join("model.safetensors.index.json").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("model.safetensors")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644);
        }
        check_round_trip(&dir);
    }

    #[test]
    fn sharded_round_trip_writes_an_index() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        write(&dir, 64, None);
        let index: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
        // 128, 32, 30 and 48 bytes under a 64-byte limit: [a] [b c] [d].
        let shard_of = |name: &str| index["weight_map"][name].as_str().unwrap().to_owned();
        assert_eq!(shard_of("a.weight"), "model-00001-of-00003.safetensors");
        assert_eq!(shard_of("b.weight"), "model-00002-of-00003.safetensors");
        assert_eq!(shard_of("c.weight"), "model-00002-of-00003.safetensors");
        assert_eq!(shard_of("d.index"), "model-00003-of-00003.safetensors");
        assert_eq!(index["metadata"]["total_size"], 8 * 4 * 4 + 16 * 2 + 15 * 2 + 6 * 8);
        check_round_trip(&dir);
    }

    #[test]
    fn tokenizer_files_are_copied_from_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        let source = tmp.path().join("source");
        std::fs::create_dir(&source).unwrap();
        std::fs::write(source.join("tokenizer.json"), b"{\"tok\": 1}").unwrap();
        std::fs::write(source.join("unrelated.txt"), b"x").unwrap();
        let dir = tmp.path().join("model");
        write(&dir, u64::MAX, Some(&source));
        assert_eq!(std::fs::read(dir.join("tokenizer.json")).unwrap(), b"{\"tok\": 1}");
        assert!(!dir.join("unrelated.txt").exists());
    }

    #[test]
    fn failed_write_leaves_no_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        let config = serde_json::json!({});
        let tensors = vec![
            Ok(("a".to_owned(), Tensor::zeros([2], (Kind::Float, Device::Cpu)))),
            Err(anyhow::anyhow!("merge failed")),
        ];
        let err = write_checkpoint(&dir, &config, tensors, &WriteOptions::default()).unwrap_err();
        assert!(format!("{err:#}").contains("merge failed"));
        assert!(!dir.exists());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn safetensors_header_declares_pytorch_format() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("model");
        write(&dir, u64::MAX, None);
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(metadata.metadata().as_ref().unwrap()["format"], "pt");
    }
}
