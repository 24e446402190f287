//! One writer per run directory: an advisory lock on `<run>/.lock`, held by `cargo xtask
//! reproduce` for the whole run and by every stage binary while it works. The manifest is
//! read, changed and written back, and directories are swapped in whole, so two writers at once
//! would lose each other's records.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use crate::RunDir;

/// The environment variable `reproduce` sets for the stages it starts: its process id, the
/// holder of the lock, so that its own children work under it.
pub const HOLDER_ENV: &str = "ENTANGLE_RUN_LOCK_HOLDER";

/// The lock on one run directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the run's lock, or fails with one line naming the process that holds it.
    pub fn acquire(run: &RunDir) -> Result<RunLock> {
        let path = run.lock();
        std::fs::create_dir_all(&run.root).with_context(|| format!("creating {}", run.root.display()))?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!(
                "{} is in use by process {} (lock {}); wait for it to finish or stop it",
                run.root.display(),
                holder(&mut file),
                path.display()
            ),
            Err(TryLockError::Error(err)) => return Err(err).with_context(|| format!("locking {}", path.display())),
        }
        file.set_len(0).and_then(|()| file.rewind()).and_then(|()| write!(file, "{}", std::process::id()))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(RunLock { _file: file })
    }
}

/// The process id the lock file names, or "unknown" when it names none.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    match file.read_to_string(&mut text) {
        Ok(_) if !text.trim().is_empty() => text.trim().to_owned(),
        _ => "unknown".to_owned(),
    }
}

/// The run directories this process holds, each locked once for the life of the process.
static HELD: Mutex<Vec<(PathBuf, Option<RunLock>)>> = Mutex::new(Vec::new());

/// Makes sure this process may write to `run`: takes its lock on first use and keeps it until
/// the process ends. A stage started by `reproduce` (its parent holds the lock and said so in
/// [`HOLDER_ENV`]) works under its parent's lock.
pub fn hold(run: &RunDir) -> Result<()> {
    let key = std::path::absolute(&run.root).unwrap_or_else(|_| run.root.clone());
    let mut held = HELD.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if held.iter().any(|(path, _)| *path == key) {
        return Ok(());
    }
    let lock = if parent_holds_lock() { None } else { Some(RunLock::acquire(run)?) };
    held.push((key, lock));
    Ok(())
}

/// Whether this process's parent is the `reproduce` that holds the run's lock.
fn parent_holds_lock() -> bool {
    let parent = std::os::unix::process::parent_id();
    std::env::var(HOLDER_ENV).ok().and_then(|pid| pid.parse::<u32>().ok()) == Some(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        let first = RunLock::acquire(&run).unwrap();
        let err = format!("{:#}", RunLock::acquire(&run).unwrap_err());
        assert!(err.contains(&format!("in use by process {}", std::process::id())), "{err}");
        assert!(!err.contains('\n'), "{err}");
        drop(first);
        RunLock::acquire(&run).unwrap();
    }

    #[test]
    fn holding_is_once_per_process_and_excludes_others() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(&dir.path().join("run"));
        hold(&run).unwrap();
        hold(&run).unwrap();
        assert!(RunLock::acquire(&run).is_err(), "the held lock excludes another writer");
    }
}
