//! Filling a model's parameters from a checkpoint or from tensors in memory, checking that
//! every parameter is given, with its shape, and that nothing unknown is.

use std::collections::{BTreeSet, HashMap};

use anyhow::{bail, Context, Result};
use entangle_checkpoint::Checkpoint;
use tch::{nn::VarStore, Tensor};

/// Names that did not line up between a model's parameters and a weight source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Parameters the source did not provide.
    pub missing: Vec<String>,
    /// Tensors of the source that are not parameters.
    pub unexpected: Vec<String>,
}

impl LoadReport {
    /// An error naming every missing and unexpected tensor of `source`, if there is any.
    pub fn check(&self, source: &str) -> Result<()> {
        let list = |names: &[String]| {
            let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
            let more = names.len().saturating_sub(shown.len());
            if more > 0 {
                format!("{} and {more} more", shown.join(", "))
            } else {
                shown.join(", ")
            }
        };
        match (self.missing.is_empty(), self.unexpected.is_empty()) {
            (true, true) => Ok(()),
            (false, true) => bail!("{source}: {} missing tensor(s): {}", self.missing.len(), list(&self.missing)),
            (true, false) => {
                bail!("{source}: {} unexpected tensor(s): {}", self.unexpected.len(), list(&self.unexpected))
            }
            (false, false) => bail!(
                "{source}: {} missing tensor(s): {}; {} unexpected tensor(s): {}",
                self.missing.len(),
                list(&self.missing),
                self.unexpected.len(),
                list(&self.unexpected)
            ),
        }
    }
}

/// Copies each `(name, tensor)` into the parameter of that name, converted to the parameter's
/// kind and device. A shape that differs from the parameter's is an error; names for which
/// `ignore` is true are skipped; the report lists parameters never given and names that are
/// no parameter.
pub fn copy_tensors(
    vs: &VarStore,
    tensors: impl IntoIterator<Item = Result<(String, Tensor)>>,
    ignore: impl Fn(&str) -> bool,
) -> Result<LoadReport> {
    let variables = vs.variables();
    let mut unset: BTreeSet<&String> = variables.keys().collect();
    let mut unexpected = Vec::new();
    for item in tensors {
        let (name, tensor) = item?;
        match variables.get(&name) {
            Some(var) => {
                copy_into(&name, var, &tensor)?;
                unset.remove(&name);
            }
            None if ignore(&name) => {}
            None => unexpected.push(name),
        }
    }
    Ok(LoadReport { missing: unset.into_iter().cloned().collect(), unexpected })
}

/// Copies every parameter from `checkpoint`, reading only the tensors the model has, checking
/// shapes before reading data.
pub fn load_checkpoint(vs: &VarStore, checkpoint: &Checkpoint, ignore: impl Fn(&str) -> bool) -> Result<LoadReport> {
    let variables: HashMap<String, Tensor> = vs.variables();
    let mut report = LoadReport::default();
    for (name, var) in &variables {
        match checkpoint.info(name) {
            None => report.missing.push(name.clone()),
            Some(info) => {
                let shape: Vec<i64> = info.shape.iter().map(|&d| d as i64).collect();
                check_shape(name, &shape, &var.size())?;
                copy_into(name, var, &checkpoint.load(name, var.kind())?)?;
            }
        }
    }
    report.missing.sort();
    report.unexpected = checkpoint
        .tensors()
        .map(|info| &info.name)
        .filter(|name| !variables.contains_key(*name) && !ignore(name))
        .cloned()
        .collect();
    Ok(report)
}

fn check_shape(name: &str, given: &[i64], expected: &[i64]) -> Result<()> {
    if given != expected {
        bail!("tensor {name} has shape {given:?}, but the model config expects {expected:?}");
    }
    Ok(())
}

fn copy_into(name: &str, var: &Tensor, value: &Tensor) -> Result<()> {
    check_shape(name, &value.size(), &var.size())?;
    let mut var = var.shallow_clone();
    tch::no_grad(|| var.f_copy_(value)).with_context(|| format!("copying tensor {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::Init, Device, Kind};

    fn store() -> VarStore {
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let _ = root.var("a", &[2, 3], Init::Const(0.0));
        let _ = root.sub("b").var("weight", &[4], Init::Const(0.0));
        vs
    }

    fn given(names: &[(&str, &[i64])]) -> Vec<Result<(String, Tensor)>> {
        names.iter().map(|(n, s)| Ok(((*n).to_owned(), Tensor::ones(*s, (Kind::Double, Device::Cpu))))).collect()
    }

    #[test]
    fn copies_values_and_reports_missing_and_unexpected() {
        let vs = store();
        let report = copy_tensors(&vs, given(&[("a", &[2, 3]), ("c", &[1]), ("rotary.inv_freq", &[2])]), |n| {
            n.ends_with("inv_freq")
        })
        .unwrap();
        assert_eq!(report, LoadReport { missing: vec!["b.weight".into()], unexpected: vec!["c".into()] });
        let a = &vs.variables()["a"];
        assert_eq!(a.kind(), Kind::Float);
        assert_eq!(a.sum(Kind::Double).double_value(&[]), 6.0);
        assert!(a.requires_grad());
        let err = report.check("ckpt").unwrap_err().to_string();
        assert_eq!(err, "ckpt: 1 missing tensor(s): b.weight; 1 unexpected tensor(s): c");
    }

    #[test]
    fn shape_mismatch_names_the_tensor() {
        let err = copy_tensors(&store(), given(&[("b.weight", &[5])]), |_| false).unwrap_err();
        assert_eq!(err.to_string(), "tensor b.weight has shape [5], but the model config expects [4]");
    }

    #[test]
    fn long_lists_are_shortened() {
        let report = LoadReport { missing: (0..10).map(|i| format!("t{i}")).collect(), unexpected: vec![] };
        let err = report.check("x").unwrap_err().to_string();
        assert_eq!(err, "x: 10 missing tensor(s): t0, t1, t2, t3, t4, t5, t6, t7 and 2 more");
        assert!(LoadReport::default().check("x").is_ok());
    }
}
