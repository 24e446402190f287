//! Reading rows of an upstream file in the format its name says: a JSON array (`.json`), JSON
//! lines (`.jsonl`, `.jsonl.gz`, `.jsonl.xz`), CSV with a header (`.csv`) or Parquet
//! (`.parquet`). Rows deserialize into the dataset's row type, so a missing column or a value
//! of the wrong type is an error naming the file and the line or row.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type, UInt64Type, UInt8Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Every row of `path`, in file order.
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let open = || File::open(path).with_context(|| format!("opening {}", path.display()));
    if name.ends_with(".jsonl") {
        json_lines(path, BufReader::new(open()?))
    } else if name.ends_with(".jsonl.gz") {
        json_lines(path, BufReader::new(flate2::read::MultiGzDecoder::new(open()?)))
    } else if name.ends_with(".jsonl.xz") {
        let mut text = Vec::new();
        lzma_rs::xz_decompress(&mut BufReader::new(open()?), &mut text).map_err(|e| anyhow!("{}: not valid xz: {e}", path.display()))?;
        json_lines(path, text.as_slice())
    } else if name.ends_with(".json") {
        let mut text = Vec::new();
        open()?.read_to_end(&mut text).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    } else if name.ends_with(".csv") {
        csv_rows(path, open()?)
    } else if name.ends_with(".parquet") {
        parquet_rows(path, open()?)
    } else {
        bail!("{}: unknown format; expected .json, .jsonl, .jsonl.gz, .jsonl.xz, .csv or .parquet", path.display())
    }
}

fn json_lines<T: DeserializeOwned>(path: &Path, reader: impl BufRead) -> Result<Vec<T>> {
    let mut rows = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{} line {}: cannot read", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(serde_json::from_str(&line).map_err(|e| anyhow!("{} line {}: {e}", path.display(), i + 1))?);
    }
    Ok(rows)
}

fn csv_rows<T: DeserializeOwned>(path: &Path, file: File) -> Result<Vec<T>> {
    csv::Reader::from_reader(BufReader::new(file))
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| {
            let line = e.position().map(|p| format!(" line {}", p.line())).unwrap_or_default();
            match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => anyhow!("{}{line}: {err}", path.display()),
                _ => anyhow!("{}{line}: {e}", path.display()),
            }
        })
}

fn parquet_rows<T: DeserializeOwned>(path: &Path, file: File) -> Result<Vec<T>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.build())
        .map_err(|e| anyhow!("{}: not a readable Parquet file: {e}", path.display()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let schema = batch.schema();
        for i in 0..batch.num_rows() {
            let row: Map<String, Value> = schema.fields().iter().zip(batch.columns()).map(|(field, column)| (field.name().clone(), json_value(column.as_ref(), i))).collect();
            rows.push(serde_json::from_value(Value::Object(row)).map_err(|e| anyhow!("{} row {}: {e}", path.display(), rows.len()))?);
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
