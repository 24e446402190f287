//! Between the run's tables and polars: each table is read with the artifacts crate's typed
//! reader (which checks every column against the documented schema), put into a polars
//! `DataFrame` for the aggregations, and the aggregated frames are read back as plain vectors.
//!
//! polars reads Parquet itself only with its `parquet` feature, which brings an HTTP and TLS
//! stack and the streaming engine (about 150 more crates to build); the typed reader is already
//! built and owns the schemas.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use entangle_artifacts::{read_table, RunDir, Table};
use entangle_pipeline::Pipeline;
use polars::prelude::{DataFrame, DataType, LazyFrame};

/// The rows of the table at `path`, or `None` when the file does not exist.
pub fn load<T: Table>(path: &Path) -> Result<Option<Vec<T>>> {
    if !path.exists() {
        return Ok(None);
    }
    read_table(path).map(Some)
}

/// The rows of every replicate's table `path(replicates/<r>/)` together (each row carries its
/// replicate), or `None` when no replicate has the table.
pub fn load_replicates<T: Table>(run: &RunDir, pipeline: &Pipeline, path: impl Fn(&RunDir) -> PathBuf) -> Result<Option<Vec<T>>> {
    let mut all: Option<Vec<T>> = None;
    for replicate in pipeline.replicate_numbers() {
        if let Some(rows) = load::<T>(&path(&run.replicate(replicate)))? {
            all.get_or_insert_with(Vec::new).extend(rows);
        }
    }
    Ok(all)
}

/// Runs an aggregation, saying which table it was over in any error.
pub fn collect(query: LazyFrame, what: &str) -> Result<DataFrame> {
    query.collect().with_context(|| format!("aggregating {what}"))
}

/// The column `name` of `frame` as strings; a null is an error.
pub fn strings(frame: &DataFrame, name: &str) -> Result<Vec<String>> {
    let column = frame.column(name).with_context(|| format!("column {name}"))?;
    let values = column.str().with_context(|| format!("column {name}"))?;
    values.iter().map(|v| v.map(str::to_owned).with_context(|| format!("column {name}: unexpected null"))).collect()
}

/// The column `name` of `frame` cast to f64; a null is an error.
pub fn floats(frame: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let column = frame.column(name).with_context(|| format!("column {name}"))?;
    let cast = column.cast(&DataType::Float64).with_context(|| format!("column {name}"))?;
    let values = cast.f64().with_context(|| format!("column {name}"))?;
    values.iter().map(|v| v.with_context(|| format!("column {name}: unexpected null"))).collect()
}

/// The column `name` of `frame` as booleans; a null is an error.
pub fn bools(frame: &DataFrame, name: &str) -> Result<Vec<bool>> {
    let column = frame.column(name).with_context(|| format!("column {name}"))?;
    let values = column.bool().with_context(|| format!("column {name}"))?;
    values.iter().map(|v| v.with_context(|| format!("column {name}: unexpected null"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use entangle_artifacts::{write_table, LossPoint};
    use polars::prelude::{col, df, IntoLazy};

    #[test]
    fn tables_load_into_frames_and_aggregates_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.parquet");
        assert!(load::<LossPoint>(&path).unwrap().is_none());
        let rows: Vec<LossPoint> = (1..=4)
            .map(|step| LossPoint { step, loss: 4.0 / step as f64, lr: 1e-3, tokens: step * 10, seconds: 0.5, replicate: 0 })
            .collect();
        write_table(&path, &rows).unwrap();
        let rows = load::<LossPoint>(&path).unwrap().unwrap();
        let frame = df!(
            "even" => rows.iter().map(|r| r.step % 2 == 0).collect::<Vec<_>>(),
            "loss" => rows.iter().map(|r| r.loss).collect::<Vec<_>>(),
        )
        .unwrap();
        let means = collect(
            frame.lazy().group_by([col("even")]).agg([col("loss").mean()]).sort(["even"], Default::default()),
            "loss",
        )
        .unwrap();
        assert_eq!(bools(&means, "even").unwrap(), vec![false, true]);
        assert_eq!(floats(&means, "loss").unwrap(), vec![(4.0 + 4.0 / 3.0) / 2.0, (2.0 + 1.0) / 2.0]);
        assert!(format!("{:#}", strings(&means, "loss").unwrap_err()).contains("column loss"));
        assert!(format!("{:#}", floats(&means, "nope").unwrap_err()).contains("column nope"));
    }

    #[test]
    fn every_replicates_table_is_read_together() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let pipeline = Pipeline::parse("name = \"t\"\nreplicates = 3").unwrap();
        let curve = |replicate| vec![LossPoint { step: 1, loss: 1.0, lr: 1e-3, tokens: 1, seconds: 0.1, replicate }];
        assert!(load_replicates::<LossPoint>(&run, &pipeline, |scope| scope.loss_curve("j")).unwrap().is_none());
        for replicate in [1, 3, 4] {
            write_table(&run.replicate(replicate).loss_curve("j"), &curve(replicate)).unwrap();
        }
        let rows = load_replicates::<LossPoint>(&run, &pipeline, |scope| scope.loss_curve("j")).unwrap().unwrap();
        let replicates: Vec<u32> = rows.iter().map(|row| row.replicate).collect();
        assert_eq!(replicates, [1, 3], "a replicate the pipeline no longer has is left out");
    }
}
