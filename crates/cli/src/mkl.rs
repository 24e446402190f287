//! Which kernels MKL runs on the CPU. libtorch's CPU matrix products (and the LAPACK behind its
//! SVDs) run in Intel MKL, linked into `libtorch_cpu.so`. MKL picks its code path by asking
//! `mkl_serv_intel_cpu_true` whether the processor is Intel's: on any other vendor's it takes
//! a generic path, even where the processor has the same AVX2 and FMA units. On an AMD EPYC
//! (Zen 3) that path ran a 1024 × 512 × 1408 single-threaded product at a median of ~55 GFLOPS
//! against ~75 GFLOPS for MKL's AVX2 kernels, and `entangle-bench train` at ~800–1,040
//! tokens/s against ~1,080–1,190.
//!
//! Every stage binary defines that function itself and exports it (entangle-torch-link's link
//! flags), so the dynamic linker binds libtorch's call to this answer: yes on an x86-64
//! processor with AVX2 and FMA, whoever made it, so that MKL chooses among its kernels by the
//! processor's features; MKL's own answer otherwise. The kernels sum in a different order than
//! the generic path, so products differ from it in the last bits of f32, as between any two BLAS.

use std::ffi::c_int;

/// MKL's question "is this an Intel processor?", answered 1 (yes) on every x86-64 processor
/// with AVX2 and FMA; elsewhere MKL's own answer.
#[no_mangle]
pub extern "C" fn mkl_serv_intel_cpu_true() -> c_int {
    if has_avx2_and_fma() {
        1
    } else {
        mkl_own_answer()
    }
}

fn has_avx2_and_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// What MKL's own `mkl_serv_intel_cpu_true`, the next definition after ours, answers; 0 when no
/// loaded library defines one.
fn mkl_own_answer() -> c_int {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name only looks the symbol up.
    let own = unsafe { libc::dlsym(libc::RTLD_NEXT, c"mkl_serv_intel_cpu_true".as_ptr()) };
    if own.is_null() {
        return 0;
    }
    // SAFETY: MKL defines the symbol as a function taking nothing and returning an int.
    let own: extern "C" fn() -> c_int = unsafe { std::mem::transmute(own) };
    own()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary links no MKL, so there is no answer of MKL's own to fall back on.
    #[test]
    fn answers_yes_where_the_cpu_has_avx2_and_fma_else_no_without_mkl() {
        assert_eq!(mkl_own_answer(), 0);
        assert_eq!(mkl_serv_intel_cpu_true(), c_int::from(has_avx2_and_fma()));
    }
}
