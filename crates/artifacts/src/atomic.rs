//! Writes that are all-or-nothing: content goes to a temporary name in the destination's
//! directory and is renamed over the final name only once complete.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// Writes `path` through `fill`, which receives a buffered writer on a temporary file beside
/// `path`. The file appears under its final name only if `fill` succeeds; on error the
/// temporary file is removed and `path` is left as it was.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let tmp = temporary_sibling(path)?;
    let result = write_and_sync(&tmp, fill)
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_and_sync(
    tmp: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> Result<()>,
) -> Result<()> {
    let file = File::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut writer = BufWriter::new(file);
    fill(&mut writer)?;
    writer.flush().with_context(|| format!("writing {}", tmp.display()))?;
    writer
        .get_ref()
        .sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))
}

/// Builds the directory `dir` through `fill`, which receives an empty temporary directory
/// beside it. On success the temporary directory replaces `dir` (an existing `dir` is moved
/// aside first and removed afterwards); on error it is deleted and `dir` is untouched.
pub fn replace_dir_atomic(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = temporary_sibling(dir)?;
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    if let Err(err) = fill(&tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(err);
    }
    let old = if dir.exists() {
        let old = temporary_sibling(dir)?;
        std::fs::rename(dir, &old)
            .with_context(|| format!("moving the previous {} aside", dir.display()))?;
        Some(old)
    } else {
        None
    };
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
    if let Some(old) = old {
        std::fs::remove_dir_all(&old)
            .with_context(|| format!("removing the previous {}", old.display()))?;
    }
    Ok(())
}

/// A fresh name `.<name>.tmp-<pid>-<n>` in the same directory as `path` (so the final rename
/// stays on one file system), creating that directory if needed.
pub(crate) fn temporary_sibling(path: &Path) -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(parent.join(format!(
        ".{}.tmp-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_write_appears_under_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.txt");
        write_atomic(&path, |w| Ok(w.write_all(b"done")?)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"done");
        assert_eq!(std::fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn interrupted_write_leaves_nothing_under_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let err = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            anyhow::bail!("killed midway")
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "killed midway");
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn interrupted_write_keeps_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, b"old").unwrap();
        let _ = write_atomic(&path, |_| anyhow::bail!("killed"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn directory_replaced_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model");
        replace_dir_atomic(&target, |tmp| Ok(std::fs::write(tmp.join("a"), b"1")?)).unwrap();
        let failed = replace_dir_atomic(&target, |tmp| {
            std::fs::write(tmp.join("b"), b"2")?;
            anyhow::bail!("killed")
        });
        assert!(failed.is_err());
        let names: Vec<_> = std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["a"]);
        replace_dir_atomic(&target, |tmp| Ok(std::fs::write(tmp.join("c"), b"3")?)).unwrap();
        let names: Vec<_> = std::fs::read_dir(&target).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec!["c"]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
