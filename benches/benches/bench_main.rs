//! The criterion benches of convnets (`cargo bench -p convnets-bench`), one module per topic:
//!
//! - `steps/`: a training step and an inference batch of each recipe, our kernels and candle's;
//! - `ops/`: each convolution pass at the models' shapes through its candle op, ours against
//!   candle's own;
//! - `kernels/<path>/`: the kernels of `convnets-kernels` on plain slices at the models'
//!   shapes, on the process's kernel path (`CONVNETS_ISA=avx512|avx2|portable`), with the
//!   GEMMs' GFLOP/s against the measured FMA peak of that path printed at the end.
//!
//! Filter with criterion's regex: `cargo bench -p convnets-bench -- kernels/`. The table
//! against PyTorch is `cargo xtask bench`; the kernels on every path in one command are
//! `cargo xtask bench kernels`.

mod benchmarks;

criterion::criterion_main!(
    benchmarks::steps::benches,
    benchmarks::ops::benches,
    benchmarks::kernels::benches
);
