//! The measured `f32` FMA peak of the machine on the vector width of the kernel path in use:
//! the yardstick the benches report the kernels' GFLOP/s against.

/// The machine's `f32` FMA peak in GFLOP/s on `threads` threads, measured: each thread runs
/// a register-only loop of independent 512-bit (or, when the kernels run another path than
/// AVX-512, see [`isa`](crate::isa()), 256-bit) fused multiply-adds for about 0.3 s.
/// Returns the peak and the instruction set, or `None` on a CPU with neither (or not
/// x86-64). Measuring rather than multiplying out the nominal clock
/// matters: this EPYC reports 2.6 GHz but runs its FMA units at turbo clocks.
pub fn fma_peak_gflops(threads: usize) -> Option<(f64, &'static str)> {
    #[cfg(target_arch = "x86_64")]
    {
        // The vector width of the kernel path in use (`CONVNETS_ISA=avx2` on an AVX-512 CPU
        // measures the 256-bit peak that path can reach).
        let avx512 = crate::isa() == crate::Isa::Avx512;
        let (lanes, isa): (usize, &'static str) = if avx512 {
            (16, "AVX-512")
        } else if crate::Isa::Avx2.supported() {
            (8, "AVX2")
        } else {
            return None;
        };
        let iters = 50_000_000usize;
        let start = std::time::Instant::now();
        let sink: f32 = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads.max(1))
                .map(|t| s.spawn(move || fma_loop(iters, lanes, t as f32)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
        });
        let secs = start.elapsed().as_secs_f64();
        // Accumulators x lanes x 2 flops per iteration per thread.
        let accs = if lanes == 16 { FMA_ACCS } else { FMA_ACCS_256 };
        let flops = (threads.max(1) * iters * accs * lanes * 2) as f64;
        std::hint::black_box(sink);
        Some((flops / secs / 1e9, isa))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

/// Independent accumulators in the 512-bit [`fma_loop`]: more than FMA latency x units, so
/// the loop is throughput-bound.
#[cfg(target_arch = "x86_64")]
const FMA_ACCS: usize = 16;

/// Independent accumulators in the 256-bit loop: still more than latency x units (4 x 2),
/// and with the two constant operands 14 of the 16 `ymm` registers. Sixteen would not fit:
/// LLVM then spills accumulators to the stack inside the loop, and the "peak" came out at
/// about half the real one (66 against 117 GFLOP/s on one Zen 4 thread, below what the GEMM
/// kernels themselves reach).
#[cfg(target_arch = "x86_64")]
const FMA_ACCS_256: usize = 12;

/// `iters` rounds of [`FMA_ACCS`] (512-bit) or [`FMA_ACCS_256`] independent FMAs on
/// `lanes`-wide vectors.
#[cfg(target_arch = "x86_64")]
fn fma_loop(iters: usize, lanes: usize, seed: f32) -> f32 {
    // SAFETY: each branch runs only on a CPU with the instruction set it enables.
    unsafe {
        if lanes == 16 {
            fma_loop_512(iters, seed)
        } else {
            fma_loop_256(iters, seed)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_loop_512(iters: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    let mut acc = [_mm512_set1_ps(seed); FMA_ACCS];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|v| _mm512_reduce_add_ps(*v)).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop_256(iters: usize, seed: f32) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_set1_ps(seed); FMA_ACCS_256];
    for _ in 0..iters {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut out = [0f32; 8];
    let mut s = 0.0;
    for v in acc {
        // SAFETY: `out` holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), v) };
        s += out.iter().sum::<f32>();
    }
    s
}
