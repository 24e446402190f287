//! ggml tensor types and their dequantization to f32.
//!
//! Block layouts as ggml defines them (`ggml-common.h`), 32 values a block:
//! - Q4_0: f16 scale `d`, 16 bytes of 4-bit `q`; value = (q − 8)·d. Byte j holds element j
//!   in its low nibble and element j + 16 in its high nibble.
//! - Q4_1: f16 `d`, f16 minimum `m`, 16 bytes of nibbles as Q4_0; value = q·d + m.
//! - Q8_0: f16 `d`, 32 signed bytes `q`; value = q·d.
//!
//! F32, F16 and BF16 are plain little-endian arrays.

use std::fmt;

use anyhow::{bail, Result};
use half::f16;

/// A ggml tensor type, by its id in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GgmlType(pub u32);

/// Every ggml type we know: id, name, values per block, bytes per block.
const TYPES: &[(u32, &str, u64, u64)] = &[
    (0, "F32", 1, 4),
    (1, "F16", 1, 2),
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (8, "Q8_0", 32, 34),
    (9, "Q8_1", 32, 36),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (15, "Q8_K", 256, 292),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (24, "I8", 1, 1),
    (25, "I16", 1, 2),
    (26, "I32", 1, 4),
    (27, "I64", 1, 8),
    (28, "F64", 1, 8),
    (29, "IQ1_M", 256, 56),
    (30, "BF16", 1, 2),
    (34, "TQ1_0", 256, 54),
    (35, "TQ2_0", 256, 66),
    (39, "MXFP4", 32, 17),
];

/// The types [`dequantize`] reads.
pub const SUPPORTED: &[GgmlType] =
    &[GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0];

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q4_0: GgmlType = GgmlType(2);
    pub const Q4_1: GgmlType = GgmlType(3);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const BF16: GgmlType = GgmlType(30);

    fn entry(self) -> Option<&'static (u32, &'static str, u64, u64)> {
        TYPES.iter().find(|t| t.0 == self.0)
    }

    /// ggml's name of the type (`Q4_K`), `None` for an id we do not know.
    pub fn name(self) -> Option<&'static str> {
        self.entry().map(|t| t.1)
    }

    /// Values per block and bytes per block, `None` for an id we do not know.
    pub fn layout(self) -> Option<(u64, u64)> {
        self.entry().map(|t| (t.2, t.3))
    }

    /// Whether [`dequantize`] reads this type.
    pub fn is_supported(self) -> bool {
        SUPPORTED.contains(&self)
    }
}

impl fmt::Display for GgmlType {
    /// The name, or the id when unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// The error for a type [`dequantize`] cannot read.
pub fn unsupported(ty: GgmlType) -> anyhow::Error {
    let names: Vec<String> = SUPPORTED.iter().map(GgmlType::to_string).collect();
    anyhow::anyhow!("type {ty} cannot be dequantized (supported: {})", names.join(", "))
}

/// The `numel` values stored in `bytes` as type `ty`, as f32 in storage order.
pub fn dequantize(ty: GgmlType, bytes: &[u8], numel: usize) -> Result<Vec<f32>> {
    if !ty.is_supported() {
        return Err(unsupported(ty));
    }
    let Some((block, block_bytes)) = ty.layout() else { return Err(unsupported(ty)) };
    let (block, block_bytes) = (block as usize, block_bytes as usize);
    if !numel.is_multiple_of(block) || bytes.len() != numel / block * block_bytes {
        bail!(
            "{} values of type {ty} take {} bytes, not {}",
            numel,
            numel.div_ceil(block) * block_bytes,
            bytes.len()
        );
    }
    let mut out = Vec::with_capacity(numel);
    let chunks = bytes.chunks_exact(block_bytes);
    match ty {
        GgmlType::F32 => out.extend(chunks.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        GgmlType::F16 => out.extend(chunks.map(|b| half(b, 0))),
        GgmlType::BF16 => out.extend(chunks.map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))),
        GgmlType::Q4_0 => {
            for b in chunks {
                let d = half(b, 0);
                let qs = &b[2..18];
                out.extend(qs.iter().map(|q| (i32::from(q & 0x0f) - 8) as f32 * d));
                out.extend(qs.iter().map(|q| (i32::from(q >> 4) - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in chunks {
                let (d, m) = (half(b, 0), half(b, 2));
                let qs = &b[4..20];
                out.extend(qs.iter().map(|q| f32::from(q & 0x0f) * d + m));
                out.extend(qs.iter().map(|q| f32::from(q >> 4) * d + m));
            }
        }
        GgmlType::Q8_0 => {
            for b in chunks {
                let d = half(b, 0);
                out.extend(b[2..34].iter().map(|&q| f32::from(q as i8) * d));
            }
        }
        _ => return Err(unsupported(ty)),
    }
    Ok(out)
}

/// The f16 at byte `at` of `b`, as f32.
fn half(b: &[u8], at: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: [u8; 2] = 0x3c00u16.to_le_bytes(); // f16 1.0
    const HALF: [u8; 2] = 0x3800u16.to_le_bytes(); // f16 0.5
    const MINUS_TWO: [u8; 2] = 0xc000u16.to_le_bytes(); // f16 -2.0
    const QUARTER: [u8; 2] = 0x3400u16.to_le_bytes(); // f16 0.25

    fn check(ty: GgmlType, bytes: &[u8], expected: &[f32]) {
        assert_eq!(dequantize(ty, bytes, expected.len()).unwrap(), expected, "{ty}");
    }

    #[test]
    fn plain_types() {
        let f32s: Vec<u8> = [1.5f32, -0.0, f32::MAX].iter().flat_map(|v| v.to_le_bytes()).collect();
        check(GgmlType::F32, &f32s, &[1.5, -0.0, f32::MAX]);
        // f16: 1.0, 0.5, -2.0, the smallest subnormal 2^-24, 65504 (the largest).
        let f16s = [ONE, HALF, MINUS_TWO, 0x0001u16.to_le_bytes(), 0x7bffu16.to_le_bytes()].concat();
        check(GgmlType::F16, &f16s, &[1.0, 0.5, -2.0, 2f32.powi(-24), 65504.0]);
        // bf16 is the upper half of an f32.
        let bf16s = [0x3f80u16, 0xc040, 0x3e20].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>();
        check(GgmlType::BF16, &bf16s, &[1.0, -3.0, 0.15625]);
    }

    /// 16 bytes whose low nibbles are 0..16 and high nibbles 15..0.
    fn nibbles() -> Vec<u8> {
        (0..16u8).map(|j| j | ((15 - j) << 4)).collect()
    }

    #[test]
    fn q4_0_blocks() {
        // Block 1: d = 0.5, elements 0..16 are (j - 8)/2, elements 16..32 are (15 - j - 8)/2.
        // Block 2: d = -2.0, every nibble 8 → 0.
        let block = [HALF.as_slice(), &nibbles(), &MINUS_TWO, &[0x88; 16]].concat();
        let mut expected: Vec<f32> = (0..16).map(|j| (j as f32 - 8.0) * 0.5).collect();
        expected.extend((0..16).map(|j| (7.0 - j as f32) * 0.5));
        expected.extend([0.0; 32]);
        check(GgmlType::Q4_0, &block, &expected);
        assert_eq!(expected[..3], [-4.0, -3.5, -3.0]);
        assert_eq!(expected[16..19], [3.5, 3.0, 2.5]);
    }

    #[test]
    fn q4_1_blocks() {
        // d = 0.25, m = -2.0: element j is j/4 - 2, element 16 + j is (15 - j)/4 - 2.
        let block = [QUARTER.as_slice(), &MINUS_TWO, &nibbles()].concat();
        let mut expected: Vec<f32> = (0..16).map(|j| j as f32 * 0.25 - 2.0).collect();
        expected.extend((0..16).map(|j| (15 - j) as f32 * 0.25 - 2.0));
        check(GgmlType::Q4_1, &block, &expected);
        assert_eq!([expected[0], expected[15], expected[16], expected[31]], [-2.0, 1.75, 1.75, -2.0]);
    }

    #[test]
    fn q8_0_blocks() {
        // d = 0.5, q = -16..16 as signed bytes.
        let qs: Vec<u8> = (-16i8..16).map(|q| q as u8).collect();
        let block = [HALF.as_slice(), &qs, &ONE, &[0x7f; 16], &[0x80; 16]].concat();
        let mut expected: Vec<f32> = (-16..16).map(|q| q as f32 * 0.5).collect();
        expected.extend([127.0; 16]);
        expected.extend([-128.0; 16]);
        check(GgmlType::Q8_0, &block, &expected);
    }

    #[test]
    fn wrong_sizes_and_types_are_errors() {
        let err = |ty, bytes: &[u8], n| format!("{:#}", dequantize(ty, bytes, n).unwrap_err());
        assert_eq!(err(GgmlType::Q8_0, &[0; 33], 32), "32 values of type Q8_0 take 34 bytes, not 33");
        assert_eq!(err(GgmlType::Q4_0, &[0; 18], 31), "31 values of type Q4_0 take 18 bytes, not 18");
        assert_eq!(err(GgmlType::F32, &[0; 7], 2), "2 values of type F32 take 8 bytes, not 7");
        let unsupported = "cannot be dequantized (supported: F32, F16, BF16, Q4_0, Q4_1, Q8_0)";
        assert_eq!(err(GgmlType(12), &[0; 144], 256), format!("type Q4_K {unsupported}"));
        assert_eq!(err(GgmlType(77), &[], 0), format!("type 77 {unsupported}"));
        assert_eq!(GgmlType(14).name(), Some("Q6_K"));
        assert_eq!(GgmlType(14).layout(), Some((256, 210)));
        assert_eq!(GgmlType(4).name(), None);
    }
}
