//! `activations/<model>.parquet`: the residual stream at each prompt's last real token, one row
//! per (prompt set, item, layer), the vector as a `FixedSizeList<Float32>` of the model's
//! hidden size. Its width depends on the model, so this table is not a [`crate::table!`]: it is
//! streamed batch by batch through [`ActivationWriter`] (memory stays bounded for thousands of
//! prompts × dozens of layers × thousands of dimensions) and read back by [`read_activations`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context, Result};
use arrow::array::{Array, FixedSizeListArray, Float32Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;

use crate::atomic::temporary_sibling;

/// The schema of an activation table for vectors of `dim` values.
pub fn activation_schema(dim: usize) -> Schema {
    Schema::new(vec![
        Field::new("prompt_set", DataType::Utf8, false),
        Field::new("item", DataType::Utf8, false),
        Field::new("layer", DataType::UInt32, false),
        Field::new("vector", DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, false)), dim as i32), false),
    ])
}

/// Rows of activations, the vectors flattened row-major.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Activations {
    pub prompt_set: Vec<String>,
    pub item: Vec<String>,
    pub layer: Vec<u32>,
    pub dim: usize,
    /// `len() == rows × dim`.
    pub vectors: Vec<f32>,
}

impl Activations {
    pub fn len(&self) -> usize {
        self.layer.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layer.is_empty()
    }

    /// The vector of row `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// Streams an activation table to a temporary file beside its final path; [`finish`]
/// renames it into place. Dropped unfinished, it removes the temporary file.
///
/// [`finish`]: ActivationWriter::finish
pub struct ActivationWriter {
    path: PathBuf,
    tmp: PathBuf,
    writer: Option<ArrowWriter<File>>,
    schema: Arc<Schema>,
    dim: usize,
}

impl ActivationWriter {
    pub fn create(path: &Path, dim: usize) -> Result<ActivationWriter> {
        let tmp = temporary_sibling(path)?;
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let schema = Arc::new(activation_schema(dim));
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), None).with_context(|| format!("writing {}", tmp.display()))?;
        Ok(ActivationWriter { path: path.to_path_buf(), tmp, writer: Some(writer), schema, dim })
    }

    /// Appends the rows of `batch` as one row group.
    pub fn write(&mut self, batch: &Activations) -> Result<()> {
        ensure!(batch.dim == self.dim, "activation width {} does not match the table's {}", batch.dim, self.dim);
        ensure!(batch.vectors.len() == batch.len() * self.dim, "activation rows and vector values disagree");
        let values = Arc::new(Float32Array::from(batch.vectors.clone()));
        let field = Arc::new(Field::new("item", DataType::Float32, false));
        let vectors = FixedSizeListArray::try_new(field, self.dim as i32, values, None)?;
        let record = RecordBatch::try_new(
            Arc::clone(&self.schema),
            vec![
                Arc::new(StringArray::from(batch.prompt_set.clone())),
                Arc::new(StringArray::from(batch.item.clone())),
                Arc::new(UInt32Array::from(batch.layer.clone())),
                Arc::new(vectors),
            ],
        )?;
        let writer = self.writer.as_mut().context("the activation writer is already finished")?;
        writer.write(&record).with_context(|| format!("writing {}", self.tmp.display()))?;
        writer.flush().with_context(|| format!("writing {}", self.tmp.display()))
    }

    /// Completes the file and moves it to its final path.
    pub fn finish(mut self) -> Result<()> {
        let writer = self.writer.take().context("the activation writer is already finished")?;
        let file = writer.into_inner().with_context(|| format!("closing {}", self.tmp.display()))?;
        file.sync_all().with_context(|| format!("syncing {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.path).with_context(|| format!("renaming {} to {}", self.tmp.display(), self.path.display()))
    }
}

impl Drop for ActivationWriter {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads an activation table whole.
pub fn read_activations(path: &Path) -> Result<Activations> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .with_context(|| format!("{}: not a Parquet file", path.display()))?;
    let mut out = Activations::default();
    for batch in reader {
        let batch = batch.with_context(|| format!("reading {}", path.display()))?;
        append(&mut out, &batch).with_context(|| format!("{}", path.display()))?;
    }
    Ok(out)
}

fn append(out: &mut Activations, batch: &RecordBatch) -> Result<()> {
    let column = |name: &str| batch.column_by_name(name).with_context(|| format!("missing column `{name}`"));
    let strings = |name: &str| -> Result<Vec<String>> {
        let array = column(name)?.as_any().downcast_ref::<StringArray>().with_context(|| format!("column `{name}` is not Utf8"))?;
        Ok(array.iter().map(|v| v.unwrap_or_default().to_owned()).collect())
    };
    out.prompt_set.extend(strings("prompt_set")?);
    out.item.extend(strings("item")?);
    let layers = column("layer")?.as_any().downcast_ref::<UInt32Array>().context("column `layer` is not UInt32")?;
    out.layer.extend(layers.values().iter().copied());
    let vectors = column("vector")?.as_any().downcast_ref::<FixedSizeListArray>().context("column `vector` is not a FixedSizeList")?;
    let dim = vectors.value_length() as usize;
    if out.dim != 0 && out.dim != dim {
        bail!("column `vector` changes width from {} to {dim}", out.dim);
    }
    out.dim = dim;
    let values = vectors.values().as_any().downcast_ref::<Float32Array>().context("column `vector` does not hold Float32")?;
    out.vectors.extend_from_slice(&values.values()[vectors.offset() * dim..(vectors.offset() + vectors.len()) * dim]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(set: &str, n: usize, dim: usize, offset: f32) -> Activations {
        Activations {
            prompt_set: vec![set.to_owned(); n],
            item: (0..n).map(|i| format!("{set}-{i}")).collect(),
            layer: (0..n as u32).collect(),
            dim,
            vectors: (0..n * dim).map(|v| v as f32 + offset).collect(),
        }
    }

    #[test]
    fn streamed_batches_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.parquet");
        let mut writer = ActivationWriter::create(&path, 3).unwrap();
        writer.write(&rows("useful", 2, 3, 0.0)).unwrap();
        writer.write(&rows("harmful_a", 3, 3, 100.0)).unwrap();
        assert!(!path.exists());
        writer.finish().unwrap();
        let back = read_activations(&path).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.dim, 3);
        assert_eq!(back.prompt_set[2], "harmful_a");
        assert_eq!(back.vector(1), &[3.0, 4.0, 5.0]);
        assert_eq!(back.vector(2), &[100.0, 101.0, 102.0]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.parquet");
        let mut writer = ActivationWriter::create(&path, 2).unwrap();
        writer.write(&rows("useful", 1, 2, 0.0)).unwrap();
        assert!(writer.write(&rows("useful", 1, 3, 0.0)).is_err());
        drop(writer);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
