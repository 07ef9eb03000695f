//! The kernels of `convnets-kernels` on plain slices at the bench models' shapes, on the
//! kernel path of this process (`CONVNETS_ISA=avx512|avx2|portable`; the path is in every
//! bench's name, `kernels/<path>/<shape>/<pass>`). Convolution throughput is in FLOP/s
//! (criterion's `elem/s`); a table of each GEMM's GFLOP/s against the measured FMA peak of the
//! path follows the benches.
//! `CONVNETS_ISA=avx2 cargo bench -p convnets-bench -- kernels/`

use convnets_bench::kernels::{
    ConvCase, NormCase, NormPass, Pass, PoolCase, CONV_SHAPES, NORM_SHAPES, POOL_SHAPES,
};
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Times `f` for criterion (`iter_custom`) and keeps the fastest time per call in `best`.
fn timed(
    b: &mut criterion::Bencher<'_>,
    best: &mut f64,
    mut f: impl FnMut() -> anyhow::Result<usize>,
) {
    b.iter_custom(|iters| {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(f().expect("kernel"));
        }
        let t = start.elapsed();
        *best = best.min(t.as_secs_f64() / iters.max(1) as f64);
        t
    })
}

/// Convolution passes and 2x2 pooling forward / backward at every model shape.
pub fn kernels(c: &mut Criterion) {
    let isa = convnets_kernels::isa();
    let threads = rayon::current_num_threads();
    let mut rows = Vec::new();
    for shape in CONV_SHAPES {
        let case = ConvCase::new(shape).expect("conv case");
        let flops = shape.gemm_flops().expect("flops");
        let mut g = c.benchmark_group(format!("kernels/{isa}/{}", shape.name));
        g.throughput(Throughput::Elements(flops as u64));
        let mut best = [f64::INFINITY; 3];
        for (pass, best) in Pass::ALL.into_iter().zip(best.iter_mut()) {
            g.bench_function(pass.name(), |b| timed(b, best, || case.run(pass)));
        }
        g.finish();
        rows.push((shape.name, flops, best));
    }
    for (name, input, max) in POOL_SHAPES {
        let case = PoolCase::new(input, max).expect("pool case");
        let mut g = c.benchmark_group(format!("kernels/{isa}/{name}"));
        g.throughput(Throughput::Elements(case.d.input_len() as u64));
        for backward in [false, true] {
            let mut best = f64::INFINITY;
            let pass = if backward { "bwd" } else { "fwd" };
            g.bench_function(pass, |b| timed(b, &mut best, || case.run(backward)));
        }
        g.finish();
    }
    for (name, dims) in NORM_SHAPES {
        let case = NormCase::new(dims).expect("norm case");
        let mut g = c.benchmark_group(format!("kernels/{isa}/{name}"));
        g.throughput(Throughput::Bytes(case.tensor_bytes() as u64));
        for pass in NormPass::ALL {
            let mut best = f64::INFINITY;
            g.bench_function(pass.name(), |b| timed(b, &mut best, || case.run(pass)));
        }
        g.finish();
    }
    if rows
        .iter()
        .all(|(_, _, best)| best.iter().all(|t| !t.is_finite()))
    {
        return; // every convolution filtered out
    }
    // GFLOP/s of the fastest call against the path's FMA peak (measured after the benches,
    // on as many threads as rayon runs).
    let Some((peak, name)) = convnets_bench::fma_peak_gflops(threads) else {
        println!("kernels/{isa}: no FMA peak on this CPU");
        return;
    };
    println!(
        "\nkernels/{isa}: conv GEMM GFLOP/s (fastest call) against the FMA peak, {peak:.0} GFLOP/s on {threads} thread(s) of {name} FMAs"
    );
    println!(
        "{:<40} | {:>8} {:>7} | {:>8} {:>7} | {:>8} {:>7}",
        "shape", "fwd", "% peak", "dx", "% peak", "dw", "% peak"
    );
    for (shape, flops, best) in rows {
        let mut row = format!("{shape:<40}");
        for t in best {
            if t.is_finite() {
                let gf = flops / t / 1e9;
                row += &format!(" | {gf:>8.1} {:>6.1}%", 100.0 * gf / peak);
            } else {
                row += &format!(" | {:>8} {:>7}", "-", "-");
            }
        }
        println!("{row}");
    }
}

criterion::criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2));
    targets = kernels
}
