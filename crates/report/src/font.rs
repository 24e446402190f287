//! The font PNG figures are drawn with: a TrueType file found on the system at run time (no font
//! ships with entangle), registered with plotters under [`crate::figure::FAMILY`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, Context, Result};
use plotters::style::FontStyle;

use crate::figure::FAMILY;

/// Where common Linux and macOS systems keep a plain sans-serif TrueType font, in order of
/// preference.
const SYSTEM_FONTS: [&str; 7] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial Unicode.ttf",
];

/// The first of the usual system sans-serif fonts that exists.
pub fn system_font() -> Option<PathBuf> {
    SYSTEM_FONTS.iter().map(PathBuf::from).find(|path| path.is_file())
}

/// Fonts registered so far in this process; plotters keeps each font's bytes for the life of the
/// process, so a file is read and registered only once.
static REGISTERED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers the TrueType or OpenType file `path` as the figures' font.
pub fn register(path: &Path) -> Result<()> {
    let mut registered = REGISTERED.lock().map_err(|_| anyhow!("font registry poisoned"))?;
    if registered.last().is_some_and(|last| last == path) {
        return Ok(());
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading font {}", path.display()))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a TrueType or OpenType font", path.display()))?;
    registered.push(path.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_font_is_rejected_with_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake.ttf");
        std::fs::write(&path, b"not a font").unwrap();
        let err = format!("{:#}", register(&path).unwrap_err());
        assert!(err.contains("fake.ttf is not a TrueType or OpenType font"), "{err}");
        let err = format!("{:#}", register(&dir.path().join("none.ttf")).unwrap_err());
        assert!(err.contains("reading font") && err.contains("none.ttf"), "{err}");
    }
}
