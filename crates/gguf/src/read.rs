//! Reading GGUF files: the header (version, metadata, tensor infos), memory-mapped, and each
//! tensor's bytes dequantized to f32.
//!
//! Layout (little-endian, versions 2 and 3): magic `GGUF`, version u32, tensor count u64,
//! metadata count u64, the metadata key/values (key string, value type u32, value), the tensor
//! infos (name string, dimension count u32, dimensions u64 each, ggml type u32, offset u64), then
//! padding to `general.alignment` (32 when absent) where the data section starts; a tensor's
//! offset is relative to it. A string is a u64 byte length and UTF-8 bytes.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use memmap2::Mmap;

use crate::quant::{dequantize, GgmlType};

/// The data section's alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Nested arrays deeper than this are refused (the format allows arrays of arrays).
const MAX_ARRAY_DEPTH: usize = 8;

/// A metadata value, one variant per GGUF value type.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetaValue {
    /// The GGUF name of the value's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            MetaValue::U8(_) => "uint8",
            MetaValue::I8(_) => "int8",
            MetaValue::U16(_) => "uint16",
            MetaValue::I16(_) => "int16",
            MetaValue::U32(_) => "uint32",
            MetaValue::I32(_) => "int32",
            MetaValue::F32(_) => "float32",
            MetaValue::Bool(_) => "bool",
            MetaValue::String(_) => "string",
            MetaValue::Array(_) => "array",
            MetaValue::U64(_) => "uint64",
            MetaValue::I64(_) => "int64",
            MetaValue::F64(_) => "float64",
        }
    }

    /// The value of any integer type, when it fits an i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            MetaValue::U8(v) => Some(v.into()),
            MetaValue::I8(v) => Some(v.into()),
            MetaValue::U16(v) => Some(v.into()),
            MetaValue::I16(v) => Some(v.into()),
            MetaValue::U32(v) => Some(v.into()),
            MetaValue::I32(v) => Some(v.into()),
            MetaValue::U64(v) => i64::try_from(v).ok(),
            MetaValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value of any float type as f64; an f32 is read as the shortest decimal that
    /// round-trips it (1e-5 stored as f32 gives 1e-5, not 9.999999747378752e-6).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::F32(v) => v.to_string().parse().ok(),
            MetaValue::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for MetaValue {
    /// Scalars as written; strings quoted and cut at 60 characters; arrays as their length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::String(s) if s.chars().count() > 60 => {
                write!(f, "{:?}…", s.chars().take(60).collect::<String>())
            }
            MetaValue::String(s) => write!(f, "{s:?}"),
            MetaValue::Array(items) => write!(f, "[{} items]", items.len()),
            MetaValue::Bool(v) => write!(f, "{v}"),
            MetaValue::F32(v) => write!(f, "{v}"),
            MetaValue::F64(v) => write!(f, "{v}"),
            other => write!(f, "{}", other.as_i64().map_or_else(|| format!("{other:?}"), |v| v.to_string())),
        }
    }
}

/// Where one tensor lies and how it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in GGUF order (`ne`): the first varies fastest, so a row-major `[rows,
    /// cols]` matrix is stored as `[cols, rows]`.
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The row-major shape (PyTorch, safetensors): the dimensions reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Bytes of the tensor's data, when its type's block layout is known and the first
    /// dimension is a whole number of blocks.
    pub fn byte_len(&self) -> Option<u64> {
        let (block, bytes) = self.ggml_type.layout()?;
        let first = self.dims.first().copied().unwrap_or(1);
        if first % block != 0 {
            return None;
        }
        (self.numel() / block).checked_mul(bytes)
    }
}

/// Everything before the data section.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    /// Metadata by key (`general.architecture`, `llama.block_count`, …).
    pub metadata: BTreeMap<String, MetaValue>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Byte offset of the data section in the file.
    pub data_start: u64,
}

impl Header {
    /// Parses the header at the start of `bytes` (a whole file, or at least its header).
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        let mut c = Cursor { bytes, pos: 0 };
        let magic = c.take(4, "the magic number")?;
        if magic != b"GGUF" {
            bail!("not a GGUF file (it starts with {:?}, not \"GGUF\")", String::from_utf8_lossy(magic));
        }
        let version = c.u32("the version")?;
        match version {
            2 | 3 => {}
            v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => bail!("big-endian GGUF files are not supported"),
            v => bail!("GGUF version {v} is not supported (only 2 and 3)"),
        }
        let tensor_count = c.u64("the tensor count")?;
        let metadata_count = c.u64("the metadata count")?;
        let mut metadata = BTreeMap::new();
        for i in 0..metadata_count {
            let key = c.string("a metadata key").with_context(|| format!("metadata entry {i}"))?;
            let value = c.typed_value(0).with_context(|| format!("metadata `{key}`"))?;
            if metadata.insert(key.clone(), value).is_some() {
                bail!("metadata `{key}` appears twice");
            }
        }
        let mut tensors: Vec<TensorInfo> = Vec::new();
        let mut names = std::collections::HashSet::new();
        for i in 0..tensor_count {
            let info = c.tensor_info().with_context(|| format!("tensor info {i}"))?;
            if !names.insert(info.name.clone()) {
                bail!("tensor `{}` appears twice", info.name);
            }
            tensors.push(info);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => match v.as_i64() {
                Some(a) if a > 0 => a as u64,
                _ => bail!("metadata `general.alignment` is {v} ({}), not a positive integer", v.type_name()),
            },
        };
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        Ok(Header { version, metadata, tensors, alignment, data_start })
    }

    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }

    /// Integer metadata `key` (any integer type), `None` when absent; another type or a
    /// negative value is an error naming the key.
    pub fn u64(&self, key: &str) -> Result<Option<u64>> {
        self.get(key)
            .map(|v| match v.as_i64() {
                Some(n) if n >= 0 => Ok(n as u64),
                _ => bail!("metadata `{key}` is {v} ({}), not a non-negative integer", v.type_name()),
            })
            .transpose()
    }

    /// Integer metadata `key`, which must be present.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        self.u64(key)?.with_context(|| format!("missing metadata `{key}`"))
    }

    /// Float metadata `key` (float32 or float64), `None` when absent.
    pub fn f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| v.as_f64().with_context(|| format!("metadata `{key}` is {v} ({}), not a float", v.type_name())))
            .transpose()
    }

    /// String metadata `key`, `None` when absent.
    pub fn str(&self, key: &str) -> Result<Option<&str>> {
        self.get(key)
            .map(|v| v.as_str().with_context(|| format!("metadata `{key}` is {v} ({}), not a string", v.type_name())))
            .transpose()
    }

    /// Boolean metadata `key`, `None` when absent.
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| match v {
                MetaValue::Bool(b) => Ok(*b),
                _ => bail!("metadata `{key}` is {v} ({}), not a bool", v.type_name()),
            })
            .transpose()
    }

    /// Array-of-strings metadata `key`, `None` when absent.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<&str>>> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let items = match value {
            MetaValue::Array(items) => items,
            v => bail!("metadata `{key}` is {v} ({}), not an array of strings", v.type_name()),
        };
        let strings = items.iter().map(MetaValue::as_str).collect::<Option<Vec<_>>>();
        strings.map(Some).with_context(|| format!("metadata `{key}` is not an array of strings"))
    }

    /// Array-of-integers metadata `key`, `None` when absent.
    pub fn integers(&self, key: &str) -> Result<Option<Vec<i64>>> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let items = match value {
            MetaValue::Array(items) => items,
            v => bail!("metadata `{key}` is {v} ({}), not an array of integers", v.type_name()),
        };
        let integers = items.iter().map(MetaValue::as_i64).collect::<Option<Vec<_>>>();
        integers.map(Some).with_context(|| format!("metadata `{key}` is not an array of integers"))
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The file range of `info`'s data, checked against a file of `file_len` bytes; an error
    /// when the type's layout is unknown or the range leaves the file.
    pub fn tensor_range(&self, info: &TensorInfo, file_len: u64) -> Result<std::ops::Range<usize>> {
        let len = info.byte_len().with_context(|| match info.ggml_type.layout() {
            None => format!("tensor `{}` has an unknown ggml type ({})", info.name, info.ggml_type.0),
            Some((block, _)) => format!(
                "tensor `{}`: its first dimension {} is not a multiple of the {} block of {block} values",
                info.name,
                info.dims.first().copied().unwrap_or(1),
                info.ggml_type
            ),
        })?;
        let start = self.data_start.checked_add(info.offset);
        match start.and_then(|s| s.checked_add(len)) {
            Some(end) if end <= file_len => Ok(start.unwrap_or_default() as usize..end as usize),
            _ => bail!(
                "tensor `{}`: {len} bytes at offset {} of the data section (file byte {}) run past the end \
                 of the file ({file_len} bytes); is the file truncated?",
                info.name,
                info.offset,
                self.data_start.saturating_add(info.offset)
            ),
        }
    }
}

/// A GGUF file, memory-mapped, with its parsed header.
#[derive(Debug)]
pub struct GgufFile {
    pub path: PathBuf,
    pub header: Header,
    map: Mmap,
}

impl GgufFile {
    /// Maps `path`, parses its header and checks that every tensor lies inside the file.
    /// Errors name the file.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let open = || -> Result<GgufFile> {
            let file = File::open(path).context("cannot open")?;
            // Safety: the map is read-only and private; a file changed underneath us while
            // importing is not something we defend against (as with safetensors checkpoints).
            let map = unsafe { Mmap::map(&file) }.context("cannot map")?;
            let header = Header::parse(&map)?;
            for info in &header.tensors {
                if info.ggml_type.layout().is_some() {
                    header.tensor_range(info, map.len() as u64)?;
                }
            }
            Ok(GgufFile { path: path.to_owned(), header, map })
        };
        open().with_context(|| path.display().to_string())
    }

    /// The stored bytes of `info`.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8]> {
        let range = self.header.tensor_range(info, self.map.len() as u64)?;
        Ok(&self.map[range])
    }

    /// `info`'s values as f32 in storage order (row-major in [`TensorInfo::shape`]).
    pub fn tensor_f32(&self, info: &TensorInfo) -> Result<Vec<f32>> {
        let bytes = self.tensor_bytes(info)?;
        dequantize(info.ggml_type, bytes, info.numel() as usize).with_context(|| format!("tensor `{}`", info.name))
    }
}

/// Reads little-endian values with bounds checks.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let left = self.bytes.len() - self.pos;
        if n > left {
            bail!(
                "truncated: {what} needs {n} bytes at byte {}, but the file ends at byte {}",
                self.pos,
                self.bytes.len()
            );
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length that must fit in what is left of the file, at `unit` bytes per element.
    fn length(&mut self, what: &str, unit: usize) -> Result<usize> {
        let at = self.pos;
        let n = self.u64(what)?;
        let left = (self.bytes.len() - self.pos) as u64;
        if n.saturating_mul(unit as u64) > left {
            bail!("truncated: {what} at byte {at} is {n}, more than the {left} bytes left in the file");
        }
        Ok(n as usize)
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.length(what, 1)?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).with_context(|| format!("{what} at byte {at} is not UTF-8"))
    }

    /// A value type followed by a value of that type.
    fn typed_value(&mut self, depth: usize) -> Result<MetaValue> {
        let ty = self.u32("a value type")?;
        self.value(ty, depth)
    }

    fn value(&mut self, ty: u32, depth: usize) -> Result<MetaValue> {
        Ok(match ty {
            0 => MetaValue::U8(self.array::<1>("a uint8")?[0]),
            1 => MetaValue::I8(i8::from_le_bytes(self.array("an int8")?)),
            2 => MetaValue::U16(u16::from_le_bytes(self.array("a uint16")?)),
            3 => MetaValue::I16(i16::from_le_bytes(self.array("an int16")?)),
            4 => MetaValue::U32(self.u32("a uint32")?),
            5 => MetaValue::I32(i32::from_le_bytes(self.array("an int32")?)),
            6 => MetaValue::F32(f32::from_le_bytes(self.array("a float32")?)),
            7 => match self.array::<1>("a bool")?[0] {
                0 => MetaValue::Bool(false),
                1 => MetaValue::Bool(true),
                b => bail!("bool at byte {} is {b}, not 0 or 1", self.pos - 1),
            },
            8 => MetaValue::String(self.string("a string")?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    bail!("arrays nested deeper than {MAX_ARRAY_DEPTH}");
                }
                let at = self.pos;
                let item_type = self.u32("an array's item type")?;
                if item_type > 12 {
                    bail!("unknown array item type {item_type} at byte {at}");
                }
                let len = self.length("an array's length", 1)?;
                let mut items = Vec::with_capacity(len);
                for i in 0..len {
                    items.push(self.value(item_type, depth + 1).with_context(|| format!("array item {i}"))?);
                }
                MetaValue::Array(items)
            }
            10 => MetaValue::U64(self.u64("a uint64")?),
            11 => MetaValue::I64(i64::from_le_bytes(self.array("an int64")?)),
            12 => MetaValue::F64(f64::from_le_bytes(self.array("a float64")?)),
            other => bail!("unknown value type {other} at byte {}", self.pos - 4),
        })
    }

    fn tensor_info(&mut self) -> Result<TensorInfo> {
        let name = self.string("a tensor name")?;
        let (dims, ggml_type, offset) = self.tensor_layout().with_context(|| format!("tensor `{name}`"))?;
        Ok(TensorInfo { name, dims, ggml_type, offset })
    }

    /// A tensor info after its name: dimensions, type and offset.
    fn tensor_layout(&mut self) -> Result<(Vec<u64>, GgmlType, u64)> {
        let n_dims = self.u32("the dimension count")?;
        if n_dims > 8 {
            bail!("{n_dims} dimensions (at most 8)");
        }
        let dims = (0..n_dims).map(|_| self.u64("a dimension")).collect::<Result<Vec<_>>>()?;
        if dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).is_none() {
            bail!("dimensions {dims:?} overflow");
        }
        let ggml_type = GgmlType(self.u32("the ggml type")?);
        let offset = self.u64("the data offset")?;
        Ok((dims, ggml_type, offset))
    }
}

/// Builds GGUF bytes by hand, for tests here and in the other modules.
#[cfg(test)]
pub(crate) mod testing {
    /// A GGUF v3 file under construction: metadata, then tensor infos and data.
    #[derive(Default)]
    pub struct Builder {
        pub version: u32,
        alignment: usize,
        metadata: Vec<(String, u32, Vec<u8>)>,
        tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    }

    pub fn string(s: &str) -> Vec<u8> {
        let mut out = (s.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(s.as_bytes());
        out
    }

    /// An array value: item type, length, items.
    pub fn array(item_type: u32, items: &[Vec<u8>]) -> Vec<u8> {
        let mut out = item_type.to_le_bytes().to_vec();
        out.extend_from_slice(&(items.len() as u64).to_le_bytes());
        for item in items {
            out.extend_from_slice(item);
        }
        out
    }

    pub fn strings(items: &[&str]) -> Vec<u8> {
        array(8, &items.iter().map(|s| string(s)).collect::<Vec<_>>())
    }

    impl Builder {
        pub fn new() -> Builder {
            Builder { version: 3, alignment: 32, ..Default::default() }
        }

        /// Sets `general.alignment` and lays the data out with it.
        pub fn align(mut self, alignment: u32) -> Builder {
            self.alignment = alignment as usize;
            self.u32("general.alignment", alignment)
        }

        /// Adds a key with a raw value of GGUF type `ty`.
        pub fn kv(mut self, key: &str, ty: u32, value: Vec<u8>) -> Builder {
            self.metadata.push((key.to_owned(), ty, value));
            self
        }

        pub fn u32(self, key: &str, v: u32) -> Builder {
            self.kv(key, 4, v.to_le_bytes().to_vec())
        }

        pub fn f32(self, key: &str, v: f32) -> Builder {
            self.kv(key, 6, v.to_le_bytes().to_vec())
        }

        pub fn str(self, key: &str, v: &str) -> Builder {
            self.kv(key, 8, string(v))
        }

        pub fn bool(self, key: &str, v: bool) -> Builder {
            self.kv(key, 7, vec![u8::from(v)])
        }

        /// Adds a tensor with GGUF dimensions `dims` (`ne` order) and raw data.
        pub fn tensor(mut self, name: &str, dims: &[u64], ggml_type: u32, data: Vec<u8>) -> Builder {
            self.tensors.push((name.to_owned(), dims.to_vec(), ggml_type, data));
            self
        }

        /// An F32 tensor of row-major `shape` ([rows, cols]) holding `values`.
        pub fn f32_tensor(self, name: &str, shape: &[u64], values: &[f32]) -> Builder {
            let dims: Vec<u64> = shape.iter().rev().copied().collect();
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            self.tensor(name, &dims, 0, data)
        }

        pub fn build(&self) -> Vec<u8> {
            let mut out = b"GGUF".to_vec();
            out.extend_from_slice(&self.version.to_le_bytes());
            out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
            out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
            for (key, ty, value) in &self.metadata {
                out.extend_from_slice(&string(key));
                out.extend_from_slice(&ty.to_le_bytes());
                out.extend_from_slice(value);
            }
            let mut offset = 0u64;
            let mut offsets = Vec::new();
            for (name, dims, ty, data) in &self.tensors {
                out.extend_from_slice(&string(name));
                out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
                for d in dims {
                    out.extend_from_slice(&d.to_le_bytes());
                }
                out.extend_from_slice(&ty.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                offsets.push(offset);
                offset += (data.len() as u64).div_ceil(self.alignment as u64) * self.alignment as u64;
            }
            if !self.tensors.is_empty() {
                out.resize(out.len().div_ceil(self.alignment) * self.alignment, 0);
            }
            let start = out.len();
            for ((_, _, _, data), offset) in self.tensors.iter().zip(offsets) {
                out.resize(start + offset as usize, 0);
                out.extend_from_slice(data);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{array, string, strings, Builder};
    use super::*;

    fn parse_err(bytes: &[u8]) -> String {
        format!("{:#}", Header::parse(bytes).unwrap_err())
    }

    #[test]
    fn every_value_type_parses() {
        let bytes = Builder::new()
            .kv("u8", 0, vec![200])
            .kv("i8", 1, vec![0xff])
            .kv("u16", 2, 60000u16.to_le_bytes().to_vec())
            .kv("i16", 3, (-300i16).to_le_bytes().to_vec())
            .u32("u32", 4_000_000_000)
            .kv("i32", 5, (-5i32).to_le_bytes().to_vec())
            .f32("f32", 1e-5)
            .bool("bool", true)
            .str("string", "héllo")
            .kv("u64", 10, u64::MAX.to_le_bytes().to_vec())
            .kv("i64", 11, (-7i64).to_le_bytes().to_vec())
            .kv("f64", 12, 0.25f64.to_le_bytes().to_vec())
            .kv("strings", 9, strings(&["a", "b c"]))
            .kv("ints", 9, array(5, &[1i32.to_le_bytes().to_vec(), (-2i32).to_le_bytes().to_vec()]))
            .kv("nested", 9, array(9, &[array(0, &[vec![1], vec![2]]), array(0, &[])]))
            .build();
        let header = Header::parse(&bytes).unwrap();
        assert_eq!(header.version, 3);
        let get = |key: &str| header.get(key).unwrap().clone();
        assert_eq!(get("u8"), MetaValue::U8(200));
        assert_eq!(get("i8"), MetaValue::I8(-1));
        assert_eq!(get("u16"), MetaValue::U16(60000));
        assert_eq!(get("i16"), MetaValue::I16(-300));
        assert_eq!(get("u32"), MetaValue::U32(4_000_000_000));
        assert_eq!(get("i32"), MetaValue::I32(-5));
        assert_eq!(get("f32"), MetaValue::F32(1e-5));
        assert_eq!(get("bool"), MetaValue::Bool(true));
        assert_eq!(get("string"), MetaValue::String("héllo".into()));
        assert_eq!(get("u64"), MetaValue::U64(u64::MAX));
        assert_eq!(get("i64"), MetaValue::I64(-7));
        assert_eq!(get("f64"), MetaValue::F64(0.25));
        assert_eq!(header.strings("strings").unwrap().unwrap(), ["a", "b c"]);
        assert_eq!(header.integers("ints").unwrap().unwrap(), [1, -2]);
        assert_eq!(
            get("nested"),
            MetaValue::Array(vec![
                MetaValue::Array(vec![MetaValue::U8(1), MetaValue::U8(2)]),
                MetaValue::Array(vec![])
            ])
        );
        // Typed accessors: integers of any width, f32 read as its shortest decimal.
        assert_eq!(header.u64("u8").unwrap(), Some(200));
        assert_eq!(header.u64("u32").unwrap(), Some(4_000_000_000));
        assert_eq!(header.f64("f32").unwrap(), Some(1e-5));
        assert_eq!(header.u64("absent").unwrap(), None);
        assert_eq!(header.bool("bool").unwrap(), Some(true));
        assert_eq!(header.str("string").unwrap(), Some("héllo"));
        let err = |r: Result<Option<u64>>| format!("{:#}", r.unwrap_err());
        assert_eq!(err(header.u64("i32")), "metadata `i32` is -5 (int32), not a non-negative integer");
        assert_eq!(err(header.u64("string")), "metadata `string` is \"héllo\" (string), not a non-negative integer");
        assert_eq!(format!("{:#}", header.require_u64("absent").unwrap_err()), "missing metadata `absent`");
        assert_eq!(
            format!("{:#}", header.strings("ints").unwrap_err()),
            "metadata `ints` is not an array of strings"
        );
        assert_eq!(format!("{:#}", header.f64("u8").unwrap_err()), "metadata `u8` is 200 (uint8), not a float");
    }

    #[test]
    fn tensor_infos_and_the_data_section() {
        let bytes = Builder::new()
            .align(64)
            .tensor("a", &[4, 2], 0, vec![0; 32])
            .tensor("b", &[32], 8, vec![0; 34])
            .build();
        let header = Header::parse(&bytes).unwrap();
        assert_eq!(header.alignment, 64);
        assert_eq!(header.data_start % 64, 0);
        let a = header.tensor("a").unwrap();
        assert_eq!((a.dims.clone(), a.shape(), a.numel(), a.byte_len()), (vec![4, 2], vec![2, 4], 8, Some(32)));
        let b = header.tensor("b").unwrap();
        assert_eq!((b.ggml_type, b.offset, b.byte_len()), (GgmlType::Q8_0, 64, Some(34)));
        let default = Header::parse(&Builder::new().tensor("a", &[1], 0, vec![0; 4]).build()).unwrap();
        assert_eq!((default.alignment, default.data_start % 32), (32, 0));
    }

    #[test]
    fn tensors_are_read_from_a_mapped_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("model.gguf");
        let values = [1.5f32, -2.0, 0.0, 3.25, 8.0, -0.5];
        std::fs::write(&path, Builder::new().f32_tensor("w", &[2, 3], &values).build()).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let info = file.header.tensor("w").unwrap().clone();
        assert_eq!(info.shape(), [2, 3]);
        assert_eq!(file.tensor_f32(&info).unwrap(), values);
    }

    #[test]
    fn bad_headers_are_one_clear_error() {
        assert_eq!(parse_err(b"GGML\x03\0\0\0"), "not a GGUF file (it starts with \"GGML\", not \"GGUF\")");
        assert_eq!(
            parse_err(b"GG"),
            "truncated: the magic number needs 4 bytes at byte 0, but the file ends at byte 2"
        );
        let mut v1 = Builder::new();
        v1.version = 1;
        assert_eq!(parse_err(&v1.build()), "GGUF version 1 is not supported (only 2 and 3)");
        let mut be = Builder::new();
        be.version = 3u32.swap_bytes();
        assert_eq!(parse_err(&be.build()), "big-endian GGUF files are not supported");
        let mut v2 = Builder::new();
        v2.version = 2;
        assert_eq!(Header::parse(&v2.build()).unwrap().version, 2);

        // Cut inside a string: the key and the place are named.
        let full = Builder::new().str("general.name", "a long enough name").build();
        let err = parse_err(&full[..full.len() - 3]);
        assert_eq!(
            err,
            "metadata `general.name`: truncated: a string at byte 48 is 18, more than the 15 bytes left in the file"
        );
        let full = Builder::new().tensor("w", &[4, 4], 0, vec![0; 64]).build();
        let err = parse_err(&full[..40]);
        assert!(err.starts_with("tensor info 0: tensor `w`: truncated"), "{err}");
        let err = parse_err(&Builder::new().kv("x", 13, vec![]).build());
        assert_eq!(err, "metadata `x`: unknown value type 13 at byte 33");
        let err = parse_err(&Builder::new().kv("x", 9, array(13, &[vec![0]])).build());
        assert_eq!(err, "metadata `x`: unknown array item type 13 at byte 37");
        let err = parse_err(&Builder::new().kv("x", 7, vec![2]).build());
        assert_eq!(err, "metadata `x`: bool at byte 37 is 2, not 0 or 1");
        let mut invalid = 1u64.to_le_bytes().to_vec();
        invalid.push(0xff);
        let err = parse_err(&Builder::new().kv("x", 8, invalid).build());
        assert!(err.starts_with("metadata `x`: a string at byte 45 is not UTF-8"), "{err}");
        let err = parse_err(&Builder::new().u32("k", 1).u32("k", 2).build());
        assert_eq!(err, "metadata `k` appears twice");
        let err = parse_err(&Builder::new().kv("general.alignment", 8, string("x")).build());
        assert_eq!(err, "metadata `general.alignment` is \"x\" (string), not a positive integer");
        let err = parse_err(&Builder::new().tensor("w", &[1], 0, vec![0; 4]).tensor("w", &[1], 0, vec![0; 4]).build());
        assert_eq!(err, "tensor `w` appears twice");
        // A huge array length is refused before allocating.
        let mut huge = 0u32.to_le_bytes().to_vec();
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        let err = parse_err(&Builder::new().kv("x", 9, huge).build());
        let want = "metadata `x`: truncated: an array's length at byte 41 is 18446744073709551615";
        assert!(err.starts_with(want), "{err}");
    }

    #[test]
    fn truncated_data_and_unknown_types_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cut.gguf");
        let bytes = Builder::new().tensor("a", &[8], 0, vec![0; 32]).tensor("b", &[64], 0, vec![0; 256]).build();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = format!("{:#}", GgufFile::open(&path).unwrap_err());
        assert!(err.starts_with(&format!("{}: tensor `b`: 256 bytes at offset 32", path.display())), "{err}");
        assert!(err.ends_with("is the file truncated?"), "{err}");

        let path = tmp.path().join("odd.gguf");
        std::fs::write(&path, Builder::new().tensor("q", &[256], 14, vec![0; 210]).build()).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let err = format!("{:#}", file.tensor_f32(&file.header.tensors[0]).unwrap_err());
        assert_eq!(
            err,
            "tensor `q`: type Q6_K cannot be dequantized (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)"
        );
        let path = tmp.path().join("unknown.gguf");
        std::fs::write(&path, Builder::new().tensor("q", &[32], 99, vec![0; 4]).build()).unwrap();
        let file = GgufFile::open(&path).unwrap();
        let err = format!("{:#}", file.tensor_f32(&file.header.tensors[0]).unwrap_err());
        assert_eq!(err, "tensor `q` has an unknown ggml type (99)");
    }
}
