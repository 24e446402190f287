//! Opening a checkpoint directory and reading its tensors lazily from memory-mapped
//! safetensors files.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use memmap2::{Mmap, UncheckedAdvice};
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use tch::{Kind, Tensor};

use crate::kind_of_dtype;

const SINGLE_FILE: &str = "model.safetensors";
const INDEX_FILE: &str = "model.safetensors.index.json";

/// A tensor of a checkpoint, as listed in its safetensors header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    shard: usize,
    /// Byte range of the data within the shard's data section.
    offsets: (usize, usize),
}

impl TensorInfo {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

struct Shard {
    path: PathBuf,
    mmap: Mmap,
    /// Offset of the data section: 8 length bytes plus the JSON header.
    data_start: usize,
}

/// An open checkpoint: its config and the headers of its safetensors files. Tensor data stays
/// on disk until [`Checkpoint::load`] asks for one tensor.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: serde_json::Value,
    shards: Vec<Shard>,
    tensors: BTreeMap<String, TensorInfo>,
}

#[derive(Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

/// Reads and parses `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<serde_json::Value> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: cannot read the model config", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not valid JSON", path.display()))
}

impl Checkpoint {
    /// Opens the checkpoint in `dir`: `config.json` plus either `model.safetensors` or the shards
    /// named by `model.safetensors.index.json`. Every header is parsed and checked now; an index
    /// entry whose tensor is missing from its shard is an error.
    pub fn open(dir: &Path) -> Result<Checkpoint> {
        let config = read_config(dir)?;
        let index_path = dir.join(INDEX_FILE);
        let (shards, tensors) = if index_path.exists() {
            open_sharded(dir, &index_path)?
        } else if dir.join(SINGLE_FILE).exists() {
            let (shard, infos) = open_shard(&dir.join(SINGLE_FILE), 0)?;
            let tensors = infos.into_iter().map(|t| (t.name.clone(), t)).collect();
            (vec![shard], tensors)
        } else {
            bail!("{}: no {SINGLE_FILE} or {INDEX_FILE}", dir.display());
        };
        Ok(Checkpoint { dir: dir.to_path_buf(), config, shards, tensors })
    }

    /// Every tensor, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = &TensorInfo> {
        self.tensors.values()
    }

    /// The tensor called `name`, if the checkpoint has it.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.get(name)
    }

    /// Reads tensor `name` from disk and converts it to `kind`, on the CPU.
    pub fn load(&self, name: &str, kind: Kind) -> Result<Tensor> {
        let stored = self.load_stored(name)?;
        stored
            .f_to_kind(kind)
            .with_context(|| format!("converting {name} to {kind:?}"))
    }

    /// Reads tensor `name` from disk in its stored dtype, on the CPU.
    pub fn load_stored(&self, name: &str) -> Result<Tensor> {
        let info = self
            .tensors
            .get(name)
            .with_context(|| format!("{}: no tensor named {name}", self.dir.display()))?;
        let shard = &self.shards[info.shard];
        let kind = kind_of_dtype(info.dtype).with_context(|| {
            format!("{}: tensor {name} has dtype {:?}, which tch cannot hold", shard.path.display(), info.dtype)
        })?;
        let range = shard.data_start + info.offsets.0..shard.data_start + info.offsets.1;
        let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
        tensor_from_map(&shard.mmap, range, &shape, kind)
            .with_context(|| format!("{}: reading tensor {name}", shard.path.display()))
    }
}

/// The tensor whose bytes are `range` of a read-only file map, copied into memory; the pages of
/// the range are then dropped from the process's resident memory (the file stays mapped and is
/// read again if asked for), so reading a checkpoint tensor by tensor keeps in memory what the
/// caller holds, not every page it has touched.
pub fn tensor_from_map(map: &Mmap, range: Range<usize>, shape: &[i64], kind: Kind) -> Result<Tensor> {
    let bytes = map.get(range.clone()).with_context(|| format!("bytes {range:?} lie outside the {}-byte file", map.len()))?;
    let tensor = Tensor::f_from_data_size(bytes, shape, kind)?;
    // SAFETY: `map` is a read-only shared mapping of a file and the borrow of these bytes ended
    // with the copy above; MADV_DONTNEED on such pages only evicts them from this process (a
    // later read faults them in from the file again). It is advice: a refusal changes nothing.
    let _ = unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, range.start, range.len()) };
    Ok(tensor)
}

fn open_sharded(dir: &Path, index_path: &Path) -> Result<(Vec<Shard>, BTreeMap<String, TensorInfo>)> {
    let text = std::fs::read_to_string(index_path)
        .with_context(|| format!("reading {}", index_path.display()))?;
    let index: ShardIndex = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a safetensors shard index", index_path.display()))?;
    let mut file_names: Vec<&String> = index.weight_map.values().collect();
    file_names.sort();
    file_names.dedup();
    for file_name in &file_names {
        entangle_artifacts::check_path_component(file_name)
            .with_context(|| format!("{}: a shard of the weight map", index_path.display()))?;
    }
    let mut shards = Vec::new();
    let mut by_shard: HashMap<&str, HashMap<String, TensorInfo>> = HashMap::new();
    for (i, file_name) in file_names.iter().enumerate() {
        let (shard, infos) = open_shard(&dir.join(file_name), i)?;
        by_shard.insert(file_name.as_str(), infos.into_iter().map(|t| (t.name.clone(), t)).collect());
        shards.push(shard);
    }
    let mut tensors = BTreeMap::new();
    for (name, file_name) in &index.weight_map {
        let info = by_shard[file_name.as_str()].get(name).with_context(|| {
            format!(
                "{}: tensor {name} is listed in {INDEX_FILE} but absent from {file_name}",
                dir.join(file_name).display()
            )
        })?;
        tensors.insert(name.clone(), info.clone());
    }
    Ok((shards, tensors))
}

/// Maps one safetensors file and lists its tensors; `shard_index` is its place in the
/// checkpoint's shard list.
fn open_shard(path: &Path, shard_index: usize) -> Result<(Shard, Vec<TensorInfo>)> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: the map is read-only; like every safetensors reader we rely on checkpoint files
    // not being truncated while a stage reads them (stages write new files by rename).
    let mmap = unsafe { Mmap::map(&file) }.with_context(|| format!("mapping {}", path.display()))?;
    let (header_len, metadata) = SafeTensors::read_metadata(&mmap)
        .map_err(|e| anyhow::anyhow!("{}: invalid safetensors file: {e}", path.display()))?;
    let tensors = metadata
        .tensors()
        .into_iter()
        .map(|(name, info)| TensorInfo {
            name,
            dtype: info.dtype,
            shape: info.shape.clone(),
            shard: shard_index,
            offsets: info.data_offsets,
        })
        .collect();
    Ok((Shard { path: path.to_path_buf(), mmap, data_start: 8 + header_len }, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_reads_its_bytes_as_a_tensor_and_rejects_a_range_outside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bytes");
        let values = [1.5f32, -2.0, 3.25];
        std::fs::write(&path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
        let map = unsafe { Mmap::map(&File::open(&path).unwrap()) }.unwrap();
        let tensor = tensor_from_map(&map, 4..12, &[2], Kind::Float).unwrap();
        assert_eq!(Vec::<f32>::try_from(&tensor).unwrap(), [-2.0, 3.25]);
        assert_eq!(Vec::<f32>::try_from(&tensor_from_map(&map, 0..12, &[3], Kind::Float).unwrap()).unwrap(), values);
        assert!(tensor_from_map(&map, 8..16, &[2], Kind::Float).is_err());
    }

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
    }

    #[derive(Deserialize)]
    struct Expected {
        dtype: String,
        shape: Vec<usize>,
        values: Vec<f64>,
    }

    /// Every tensor of the checkpoint equals transformers' own record of it, in value, dtype
    /// and shape, and nothing is missing or extra.
    fn check_against_transformers(name: &str) {
        let dir = fixture(name);
        let expected: BTreeMap<String, Expected> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("tensors.json")).unwrap()).unwrap();
        let ckpt = Checkpoint::open(&dir).unwrap();
        let names: Vec<_> = ckpt.tensors().map(|t| t.name.clone()).collect();
        assert_eq!(names, expected.keys().cloned().collect::<Vec<_>>());
        for (tensor_name, want) in &expected {
            let info = ckpt.info(tensor_name).unwrap();
            assert_eq!(format!("{:?}", info.dtype), want.dtype, "{tensor_name}");
            assert_eq!(info.shape, want.shape, "{tensor_name}");
            let values: Vec<f32> = Vec::try_from(ckpt.load(tensor_name, Kind::Float).unwrap().flatten(0, -1)).unwrap();
            // The recorded values are exactly representable in f32; JSON parsing may be off by
            // one f64 ulp, which the cast to f32 removes.
            let want: Vec<f32> = want.values.iter().map(|&v| v as f32).collect();
            let mismatch = values.iter().zip(&want).position(|(a, b)| a != b);
            assert_eq!(values.len(), want.len(), "{tensor_name}");
            assert_eq!(mismatch, None, "{tensor_name}: first differing element");
        }
    }

    #[test]
    fn single_file_fixture_matches_transformers() {
        check_against_transformers("tiny-llama");
    }

    #[test]
    fn sharded_bf16_fixture_matches_transformers() {
        check_against_transformers("tiny-llama-sharded");
        let ckpt = Checkpoint::open(&fixture("tiny-llama-sharded")).unwrap();
        assert_eq!(ckpt.load_stored("lm_head.weight").unwrap().kind(), Kind::BFloat16);
        assert_eq!(ckpt.load("lm_head.weight", Kind::Half).unwrap().kind(), Kind::Half);
    }

    #[test]
    fn config_is_read() {
        let ckpt = Checkpoint::open(&fixture("tiny-llama")).unwrap();
        assert_eq!(ckpt.config["model_type"], "llama");
        assert_eq!(ckpt.config["hidden_size"], 16);
    }

    /// A copy of a fixture in a temporary directory, to be damaged by a test.
    fn copy_fixture(name: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(fixture(name)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
        }
        tmp
    }

    /// Opening the damaged checkpoint fails with one message containing every `needle`.
    fn check_error(dir: &Path, needles: &[&str]) {
        let err = match Checkpoint::open(dir) {
            Ok(_) => panic!("opening {} should fail", dir.display()),
            Err(err) => format!("{err:#}"),
        };
        assert!(!err.contains('\n'), "{err}");
        for needle in needles {
            assert!(err.contains(needle), "`{needle}` not in: {err}");
        }
    }

    /// Rewrites `model.safetensors` of `dir` with its header replaced by `edit(header)`.
    fn edit_header(dir: &Path, edit: impl FnOnce(String) -> String) {
        let path = dir.join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = edit(String::from_utf8(bytes[8..8 + n].to_vec()).unwrap());
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&bytes[8 + n..]);
        std::fs::write(&path, out).unwrap();
    }

    #[test]
    fn missing_config_names_the_file() {
        let dir = copy_fixture("tiny-llama");
        std::fs::remove_file(dir.path().join("config.json")).unwrap();
        check_error(dir.path(), &["config.json", "cannot read the model config"]);
    }

    #[test]
    fn truncated_safetensors_names_the_file() {
        let dir = copy_fixture("tiny-llama");
        let path = dir.path().join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        check_error(dir.path(), &["model.safetensors: invalid safetensors file"]);
    }

    #[test]
    fn header_length_past_end_of_file_names_the_file() {
        let dir = copy_fixture("tiny-llama");
        let path = dir.path().join("model.safetensors");
        let mut bytes = std::fs::read(&path).unwrap();
        let past_end = bytes.len() as u64 + 10;
        bytes[..8].copy_from_slice(&past_end.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        check_error(dir.path(), &["model.safetensors: invalid safetensors file"]);
    }

    #[test]
    fn unknown_dtype_names_the_file() {
        let dir = copy_fixture("tiny-llama");
        edit_header(dir.path(), |h| h.replacen("\"F32\"", "\"F99\"", 1));
        check_error(dir.path(), &["model.safetensors: invalid safetensors file"]);
    }

    #[test]
    fn tensor_missing_from_its_shard_names_tensor_and_shard() {
        let dir = copy_fixture("tiny-llama-sharded");
        let index_path = dir.path().join("model.safetensors.index.json");
        let mut index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
        index["weight_map"]["model.layers.9.ghost.weight"] = "model-00001-of-00004.safetensors".into();
        std::fs::write(&index_path, index.to_string()).unwrap();
        check_error(
            dir.path(),
            &["model.layers.9.ghost.weight", "listed in model.safetensors.index.json", "model-00001-of-00004.safetensors"],
        );
    }

    #[test]
    fn shard_names_outside_the_checkpoint_are_refused() {
        for outside in ["../model-00001-of-00004.safetensors", "/etc/passwd"] {
            let dir = copy_fixture("tiny-llama-sharded");
            let index_path = dir.path().join("model.safetensors.index.json");
            let mut index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path).unwrap()).unwrap();
            index["weight_map"]["model.norm.weight"] = outside.into();
            std::fs::write(&index_path, index.to_string()).unwrap();
            check_error(dir.path(), &["model.safetensors.index.json: a shard of the weight map", "is not a plain file name"]);
        }
    }

    #[test]
    fn directory_without_weights_is_an_error() {
        let dir = copy_fixture("tiny-llama");
        std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
        check_error(dir.path(), &["no model.safetensors or model.safetensors.index.json"]);
    }
}
