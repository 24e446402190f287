//! Typed Parquet tables. A table is a Rust struct whose fields are its columns; [`table!`]
//! declares the struct and derives its Arrow schema and conversions, so every table of the run
//! directory is written and read by the same two functions, [`write_table`] and [`read_table`].

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch,
    StringArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::write_atomic;

/// A Rust type stored as one Arrow column.
pub trait Column: Sized {
    const NULLABLE: bool;
    fn data_type() -> DataType;
    fn to_array(values: Vec<Self>) -> ArrayRef;
    /// The column's values; `array` has been checked to be of [`Column::data_type`].
    fn from_array(array: &dyn Array) -> Result<Vec<Self>>;
}

macro_rules! primitive_column {
    ($ty:ty, $array:ty, $data_type:expr) => {
        impl Column for $ty {
            const NULLABLE: bool = false;
            fn data_type() -> DataType {
                $data_type
            }
            fn to_array(values: Vec<Self>) -> ArrayRef {
                Arc::new(<$array>::from(values))
            }
            fn from_array(array: &dyn Array) -> Result<Vec<Self>> {
                let array = downcast::<$array>(array)?;
                if array.null_count() > 0 {
                    bail!("has {} null values", array.null_count());
                }
                Ok(array.iter().flatten().map(<$ty>::from).collect())
            }
        }

        impl Column for Option<$ty> {
            const NULLABLE: bool = true;
            fn data_type() -> DataType {
                $data_type
            }
            fn to_array(values: Vec<Self>) -> ArrayRef {
                Arc::new(<$array>::from(values))
            }
            fn from_array(array: &dyn Array) -> Result<Vec<Self>> {
                Ok(downcast::<$array>(array)?.iter().map(|v| v.map(<$ty>::from)).collect())
            }
        }
    };
}

primitive_column!(u32, UInt32Array, DataType::UInt32);
primitive_column!(u64, UInt64Array, DataType::UInt64);
primitive_column!(i64, Int64Array, DataType::Int64);
primitive_column!(f32, Float32Array, DataType::Float32);
primitive_column!(f64, Float64Array, DataType::Float64);
primitive_column!(bool, BooleanArray, DataType::Boolean);
primitive_column!(String, StringArray, DataType::Utf8);

fn downcast<A: 'static>(array: &dyn Array) -> Result<&A> {
    array
        .as_any()
        .downcast_ref::<A>()
        .with_context(|| format!("unexpected array type {}", array.data_type()))
}

/// A typed table: rows of `Self` to and from Arrow record batches. Implemented by [`table!`].
pub trait Table: Sized {
    fn schema() -> Schema;
    fn to_batch(rows: &[Self]) -> Result<RecordBatch>;
    fn from_batch(batch: &RecordBatch) -> Result<Vec<Self>>;
}

/// Declares a table: a struct whose public fields are [`Column`]s, with its [`Table`]
/// implementation. Field names are the column names.
#[macro_export]
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub struct $name:ident { $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name { $( $(#[$field_meta])* pub $field: $ty ),* }

        impl $crate::Table for $name {
            fn schema() -> $crate::__private::arrow::datatypes::Schema {
                $crate::__private::arrow::datatypes::Schema::new(vec![$(
                    $crate::__private::arrow::datatypes::Field::new(
                        stringify!($field),
                        <$ty as $crate::Column>::data_type(),
                        <$ty as $crate::Column>::NULLABLE,
                    )
                ),*])
            }

            fn to_batch(rows: &[Self]) -> $crate::__private::anyhow::Result<$crate::__private::arrow::array::RecordBatch> {
                let columns = vec![$(
                    <$ty as $crate::Column>::to_array(rows.iter().map(|row| row.$field.clone()).collect())
                ),*];
                Ok($crate::__private::arrow::array::RecordBatch::try_new(::std::sync::Arc::new(Self::schema()), columns)?)
            }

            fn from_batch(batch: &$crate::__private::arrow::array::RecordBatch) -> $crate::__private::anyhow::Result<Vec<Self>> {
                $(
                    let mut $field = $crate::__private::table_column::<$ty>(batch, stringify!($field))?.into_iter();
                )*
                Ok((0..batch.num_rows())
                    .map(|_| Self { $( $field: $field.next().expect("column length equals row count") ),* })
                    .collect())
            }
        }
    };
}

/// The values of column `name` of `batch`, checked against the type `T` expects.
#[doc(hidden)]
pub fn table_column<T: Column>(batch: &RecordBatch, name: &str) -> Result<Vec<T>> {
    let array = batch
        .column_by_name(name)
        .with_context(|| format!("missing column `{name}`"))?;
    if array.data_type() != &T::data_type() {
        bail!("column `{name}` is {}, expected {}", array.data_type(), T::data_type());
    }
    T::from_array(array.as_ref()).with_context(|| format!("column `{name}`"))
}

/// Writes `rows` as a Parquet file at `path`, atomically.
pub fn write_table<T: Table>(path: &Path, rows: &[T]) -> Result<()> {
    let batch = T::to_batch(rows).with_context(|| format!("building the table for {}", path.display()))?;
    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
    write_atomic(path, |file| {
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
        writer.write(&batch)?;
        writer.close()?;
        Ok(())
    })
    .with_context(|| format!("writing {}", path.display()))
}

/// Reads every row of the Parquet table at `path`; a missing column or a column of the wrong
/// type is an error naming the file and the column.
pub fn read_table<T: Table>(path: &Path) -> Result<Vec<T>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.build())
        .with_context(|| format!("{}: not a Parquet file", path.display()))?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {}", path.display()))?;
        rows.extend(T::from_batch(&batch).with_context(|| format!("{}", path.display()))?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::table! {
        /// Every supported column type.
        pub struct Sample {
            pub id: u64,
            pub small: u32,
            pub delta: i64,
            pub value: f64,
            pub single: f32,
            pub ok: bool,
            pub text: String,
            pub maybe: Option<f64>,
        }
    }

    crate::table! {
        pub struct Other { pub id: String }
    }

    fn sample(i: u64) -> Sample {
        Sample {
            id: i,
            small: i as u32 * 2,
            delta: -(i as i64),
            value: i as f64 / 3.0,
            single: 0.5,
            ok: i % 2 == 0,
            text: format!("row {i}"),
            maybe: (i % 2 == 1).then_some(1.0),
        }
    }

    #[test]
    fn rows_round_trip_through_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let rows: Vec<Sample> = (0..5).map(sample).collect();
        write_table(&path, &rows).unwrap();
        assert_eq!(read_table::<Sample>(&path).unwrap(), rows);
        assert_eq!(read_table::<Sample>(&path).unwrap().len(), 5);
    }

    #[test]
    fn empty_table_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_table::<Sample>(&path, &[]).unwrap();
        assert!(read_table::<Sample>(&path).unwrap().is_empty());
    }

    #[test]
    fn schema_mismatch_names_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_table(&path, &[Other { id: "x".into() }]).unwrap();
        let err = format!("{:#}", read_table::<Sample>(&path).unwrap_err());
        assert!(err.contains("t.parquet") && err.contains("column `id` is Utf8, expected UInt64"), "{err}");
    }

    #[test]
    fn not_parquet_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        std::fs::write(&path, b"hello").unwrap();
        let err = format!("{:#}", read_table::<Sample>(&path).unwrap_err());
        assert!(err.contains("t.parquet: not a Parquet file"), "{err}");
    }
}
