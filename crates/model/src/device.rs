//! Where a model runs and in which floating-point type its weights are held.

use anyhow::{bail, Context, Result};
use tch::{Cuda, Device, Kind};

/// The device a model lives on and the floating-point kind of its weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub device: Device,
    pub kind: Kind,
}

impl Placement {
    /// f32 on the CPU: what every test and the tiny study use.
    pub fn cpu() -> Placement {
        Placement { device: Device::Cpu, kind: Kind::Float }
    }

    /// The placement named by a device spec (`auto`, `cpu`, `cuda`, `cuda:N`) and a dtype spec
    /// (`auto`, `f32`, `bf16`, `f16`, or torch's names `float32`, `bfloat16`, `float16`).
    /// `auto` picks CUDA when present; dtype `auto` is f32 on the CPU and bf16 on CUDA.
    pub fn parse(device: &str, dtype: &str) -> Result<Placement> {
        let device = parse_device(device)?;
        let kind = parse_kind(dtype, device)?;
        Ok(Placement { device, kind })
    }
}

/// The device named by `spec`: `auto` (CUDA when present, else the CPU), `cpu`, `cuda`
/// (the first GPU) or `cuda:N`. Asking for a GPU that is not there is an error.
pub fn parse_device(spec: &str) -> Result<Device> {
    let device = match spec {
        "auto" => return Ok(Device::cuda_if_available()),
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
            .with_context(|| format!("unknown device `{spec}`: expected auto, cpu, cuda or cuda:N"))?,
    };
    let available = Cuda::device_count();
    if device as i64 >= available {
        bail!("device `{spec}` requested but {available} CUDA device(s) are available");
    }
    Ok(Device::Cuda(device))
}

/// The floating-point kind named by `spec` (`auto`, `f32`, `bf16`, `f16` or torch's names);
/// `auto` is f32 on the CPU and bf16 on CUDA.
pub fn parse_kind(spec: &str, device: Device) -> Result<Kind> {
    Ok(match spec {
        "auto" if device == Device::Cpu => Kind::Float,
        "auto" => Kind::BFloat16,
        "f32" | "float32" => Kind::Float,
        "bf16" | "bfloat16" => Kind::BFloat16,
        "f16" | "float16" => Kind::Half,
        _ => bail!("unknown dtype `{spec}`: expected auto, f32, bf16 or f16"),
    })
}

/// The name transformers writes for `kind` in `config.json` (`float32`, `bfloat16`, …).
pub fn kind_name(kind: Kind) -> Result<&'static str> {
    Ok(match kind {
        Kind::Float => "float32",
        Kind::BFloat16 => "bfloat16",
        Kind::Half => "float16",
        Kind::Double => "float64",
        other => bail!("{other:?} is not a floating-point model dtype"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(device: &str, dtype: &str, expected: Result<Placement, &str>) {
        match (Placement::parse(device, dtype), expected) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{device} {dtype}"),
            (Err(err), Err(needle)) => assert!(format!("{err:#}").contains(needle), "{err:#}"),
            (got, want) => panic!("{device} {dtype}: got {got:?}, expected {want:?}"),
        }
    }

    #[test]
    fn specs_parse() {
        let cpu = |kind| Ok(Placement { device: Device::Cpu, kind });
        check("cpu", "auto", cpu(Kind::Float));
        check("cpu", "f32", cpu(Kind::Float));
        check("cpu", "bfloat16", cpu(Kind::BFloat16));
        check("cpu", "f16", cpu(Kind::Half));
        check("cpu", "int8", Err("unknown dtype `int8`"));
        check("tpu", "auto", Err("unknown device `tpu`: expected auto, cpu, cuda or cuda:N"));
        check("cuda:x", "auto", Err("unknown device `cuda:x`"));
        check("cuda:99", "auto", Err("device `cuda:99` requested but"));
    }

    #[test]
    fn auto_follows_the_hardware() {
        let placement = Placement::parse("auto", "auto").unwrap();
        let want = if Cuda::is_available() { Kind::BFloat16 } else { Kind::Float };
        assert_eq!(placement.device, Device::cuda_if_available());
        assert_eq!(placement.kind, want);
    }

    #[test]
    fn kind_names_are_transformers_names() {
        assert_eq!(kind_name(Kind::BFloat16).unwrap(), "bfloat16");
        assert_eq!(kind_name(Kind::Float).unwrap(), "float32");
        assert!(kind_name(Kind::Int64).is_err());
    }
}
