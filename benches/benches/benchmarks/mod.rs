//! The bench modules of `bench_main`.

pub mod kernels;
pub mod ops;
pub mod steps;
