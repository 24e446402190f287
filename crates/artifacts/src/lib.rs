//! The run directory, the only interface between entangle's stages.
//!
//! Every stage of the study (prepare, train, project, mso, capture, eval, report) reads and
//! writes files under one run directory, `runs/<pipeline>/` by default. This crate owns that
//! contract: where each artifact lives ([`RunDir`]), how a file is written so that a killed
//! stage never leaves something that looks finished ([`write_atomic`], [`replace_dir_atomic`]),
//! the stage [`Manifest`] that lets a re-run skip finished work, and the Parquet tables
//! ([`Table`], declared with [`table!`]) whose columns users open in polars. Only this crate
//! defines table schemas. It is also the harness every stage runs through ([`Stage`]: the run's
//! lock, the freshness check, the record, one [`Outcome`]) and their one progress display
//! ([`progress_bar`]).
//!
//! ```no_run
//! use entangle_artifacts::{read_table, table, write_table, RunDir};
//!
//! table! {
//!     /// One optimiser step.
//!     pub struct Point { pub step: u64, pub loss: f64 }
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! let run = RunDir::new(std::path::Path::new("runs/tiny"));
//! let path = run.root.join("example.parquet");
//! write_table(&path, &[Point { step: 1, loss: 2.5 }])?;
//! let rows: Vec<Point> = read_table(&path)?;
//! # Ok(()) }
//! ```

#[cfg(feature = "tables")]
mod activations;
mod atomic;
mod lock;
mod manifest;
#[cfg(feature = "progress")]
mod progress;
mod run_dir;
mod stage;
#[cfg(feature = "tables")]
mod table;
#[cfg(feature = "tables")]
mod tables;

#[cfg(feature = "tables")]
pub use activations::{activation_schema, read_activations, ActivationWriter, Activations};
pub use atomic::{replace_dir_atomic, write_atomic};
pub use lock::{hold as hold_run_lock, RunLock, HOLDER_ENV as RUN_LOCK_HOLDER_ENV};
pub use manifest::{config_hash, fingerprint, stamp_inputs, FileStamp, HubRevision, Manifest, StageEntry};
#[cfg(feature = "progress")]
pub use progress::progress_bar;
pub use run_dir::{check_path_component, RunDir};
pub use stage::{Outcome, Stage, StageVersion};
#[cfg(feature = "tables")]
pub use table::{read_table, write_table, Column, Table};
#[cfg(feature = "tables")]
pub use tables::*;

/// What the [`table!`] expansion refers to, so that crates declaring tables need no direct
/// arrow or anyhow dependency.
#[doc(hidden)]
#[cfg(feature = "tables")]
pub mod __private {
    pub use crate::table::table_column;
    pub use anyhow;
    pub use arrow;
}
