//! The process setup the `convnets` binary uses, for programs of your own: [`init`].
//!
//! candle 0.11's element-wise ops run on their own spinning thread pool, which fights with
//! rayon (our kernels) on small machines: the LeNet-5 step is 2.6x slower with both. The CLI
//! keeps candle's pool at one thread (`CANDLE_NUM_THREADS=1`) unless the user chose otherwise;
//! our kernels use rayon's pool (`RAYON_NUM_THREADS`). Together with the mimalloc allocator
//! (feature `mimalloc`, see `convnets::allocator`), this is all a library program needs to
//! train as fast as `cargo xtask train`:
//!
//! ```no_run
//! # #[cfg(feature = "mimalloc")]
//! #[global_allocator]
//! static GLOBAL: convnets::allocator::MiMalloc = convnets::allocator::MiMalloc;
//!
//! fn main() {
//!     convnets::runtime::init();
//!     // build and train ...
//! }
//! ```

/// Keeps candle's element-wise thread pool to one thread unless `CANDLE_NUM_THREADS` is set.
/// Call it first in `main`, before any other thread starts and before the first tensor op.
pub fn tune_threads() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
}

/// Everything the CLI sets up: [`tune_threads`], and with the `mimalloc` feature, mimalloc
/// keeping freed memory (`convnets::allocator::keep_freed_memory`; the allocator itself is
/// chosen with `#[global_allocator]` in your binary).
pub fn init() {
    tune_threads();
    #[cfg(feature = "mimalloc")]
    crate::allocator::keep_freed_memory();
}
