//! Which kernels MKL runs on the CPU. libtorch's CPU matrix products (and the LAPACK behind its
//! SVDs) run in Intel MKL, linked into `libtorch_cpu.so`. MKL picks its code path by asking
//! `mkl_serv_intel_cpu_true` whether the processor is Intel's: on any other vendor's it takes
//! a generic path, even where the processor has the same vector units.
//!
//! Every stage binary defines that function itself and exports it (entangle-torch-link's link
//! flags), so the dynamic linker binds libtorch's call to this answer: yes on an x86-64
//! processor with AVX2 and FMA, whoever made it, so that MKL chooses among its Intel code paths
//! by the processor's features (AVX2, or AVX-512 where the processor has it); MKL's own answer
//! otherwise. The kernels sum in a different order than the generic path, so products differ
//! from it in the last bits of f32, as between any two BLAS.
//! The gain on an AMD processor is in bench/README.md's measurement history.

use std::ffi::c_int;

/// MKL's question "is this an Intel processor?", answered 1 (yes) on every x86-64 processor
/// with AVX2 and FMA; elsewhere MKL's own answer.
#[no_mangle]
pub extern "C" fn mkl_serv_intel_cpu_true() -> c_int {
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        1
    } else {
        mkl_own_answer()
    }
}

/// What MKL's own `mkl_serv_intel_cpu_true`, the next definition after ours, answers; 0 when no
/// loaded library defines one.
fn mkl_own_answer() -> c_int {
    // SAFETY: dlsym with RTLD_NEXT and a NUL-terminated name only looks the symbol up.
    let own = unsafe { libc::dlsym(libc::RTLD_NEXT, c"mkl_serv_intel_cpu_true".as_ptr()) };
    // SAFETY: a null pointer becomes None; MKL defines the symbol as `int f(void)`.
    let own: Option<unsafe extern "C" fn() -> c_int> = unsafe { std::mem::transmute(own) };
    // SAFETY: MKL's function only reads the processor's identification.
    own.map_or(0, |own| unsafe { own() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary links no MKL (and nothing may preload one into it), so there is no answer
    /// of MKL's own to fall back on.
    #[test]
    fn answers_yes_where_the_cpu_has_avx2_and_fma_else_no_without_mkl() {
        assert_eq!(mkl_own_answer(), 0);
        let avx2_fma = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        assert_eq!(mkl_serv_intel_cpu_true(), c_int::from(avx2_fma));
    }
}
