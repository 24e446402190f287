//! How far two forward passes of one model may differ by rounding alone, for tests that compare
//! them across implementations, kernels or machines. Each bound is derived from the arithmetic
//! (a dtype's unit roundoff, the longest sum, the roundings on the path), not from what one
//! machine printed, so it holds on every CPU's kernels (AVX2, AVX-512, AVX512-BF16, AMX).

/// f32's unit roundoff, 2⁻²⁴: one rounding's largest relative error.
pub const F32_UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;

/// bfloat16's unit roundoff, 2⁻⁸ (8 significant bits).
pub const BF16_UNIT_ROUNDOFF: f64 = 1.0 / 256.0;

/// Roundings between a token and its logits in a decoder of `layers` layers, each of which moves
/// a value by at most one rounding error relative to its magnitude: per layer the input norm,
/// q, k, v, the two rotations, the scores, the softmax, the weighted sum, the output projection,
/// the residual sum, the post-attention norm, gate, up, the activation, their product, down and
/// the second residual sum (18); then the final norm, the output projection and the weights.
pub fn roundings(layers: usize) -> f64 {
    (18 * layers + 3) as f64
}

/// How far two f32 forward passes of a decoder may differ in a value of magnitude up to `scale`
/// when they sum in different orders (other kernels, instruction sets or batch shapes): each
/// rounding step is a sum of at most `longest_sum` terms, within γₙ = n·u of the exact one
/// (Higham), for each of the two.
pub fn f32_forward(layers: usize, longest_sum: usize, scale: f64) -> f64 {
    2.0 * roundings(layers) * longest_sum as f64 * F32_UNIT_ROUNDOFF * scale
}

/// How far a bfloat16 forward pass may be from the f32 one in a value of magnitude up to
/// `scale`: every rounding step rounds to bf16, while products accumulate in f32 (whose error is
/// negligible beside bf16's). Which bf16 kernels a CPU has moves the result within this bound.
pub fn bf16_forward(layers: usize, scale: f64) -> f64 {
    roundings(layers) * BF16_UNIT_ROUNDOFF * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_scale_with_depth_length_and_magnitude() {
        assert_eq!(F32_UNIT_ROUNDOFF, 2f64.powi(-24));
        assert_eq!(roundings(2), 39.0);
        assert_eq!(f32_forward(2, 64, 1.0), 2.0 * 39.0 * 64.0 * 2f64.powi(-24));
        assert_eq!(f32_forward(2, 64, 4.0), 4.0 * f32_forward(2, 64, 1.0));
        assert_eq!(bf16_forward(2, 2.0), 39.0 / 128.0);
    }
}
