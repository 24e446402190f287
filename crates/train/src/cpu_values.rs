//! The values of a contiguous f32 CPU tensor as a slice, for the trainer's one-pass CPU loops
//! (AdamW's update in `adamw::fused`, the loss in `cross_entropy`).

use tch::Tensor;

/// The values of `tensor`.
///
/// # Safety
/// `tensor` must be a non-empty contiguous f32 CPU tensor, and nothing may write its values
/// while the slice lives.
pub(crate) unsafe fn values(tensor: &Tensor) -> &[f32] {
    // SAFETY: per the function's contract.
    unsafe { std::slice::from_raw_parts(tensor.data_ptr().cast::<f32>().cast_const(), tensor.numel()) }
}

/// The values of `tensor`, to write.
///
/// # Safety
/// `tensor` must be a non-empty contiguous f32 CPU tensor, and no other reference to its values
/// may be used while the slice lives.
#[allow(clippy::mut_from_ref)]
pub(crate) unsafe fn values_mut(tensor: &Tensor) -> &mut [f32] {
    // SAFETY: per the function's contract.
    unsafe { std::slice::from_raw_parts_mut(tensor.data_ptr().cast::<f32>(), tensor.numel()) }
}
