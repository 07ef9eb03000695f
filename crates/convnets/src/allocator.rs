//! The allocator for training programs (feature `mimalloc`): [`MiMalloc`], with freed memory
//! kept by the process ([`keep_freed_memory`]).
//!
//! A training step allocates and frees the same large activation and gradient buffers every
//! step. glibc gives blocks over its mmap threshold back to the kernel on every free, so the
//! next step pays page faults and the kernel's zeroing of every fresh page (on the 2-core
//! bench machine mimalloc trains SimpleCNN 1.6x and ResNet-20 1.1x faster). mimalloc itself
//! returns freed memory 1 s after a free, which a model with steps longer than that would
//! pay again; [`keep_freed_memory`] turns that off. A binary opts in with
//!
//! ```no_run
//! #[global_allocator]
//! static GLOBAL: convnets::allocator::MiMalloc = convnets::allocator::MiMalloc;
//!
//! fn main() {
//!     convnets::allocator::keep_freed_memory();
//!     // ...
//! }
//! ```

pub use mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (`mimalloc.h`): milliseconds before
/// freed memory is returned to the OS (1000 by default in mimalloc 3); -1 never returns it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps memory mimalloc has taken from the OS for the life of the process instead of
/// returning it a second after it is freed. The peak footprint is unchanged (it is what the
/// largest step needs); only the page faults on reuse go away.
pub fn keep_freed_memory() {
    // SAFETY: sets a process-wide mimalloc option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option index names the purge delay: it starts at mimalloc 3's default of 1000 ms
    /// (`options.c`) and reads back what was set.
    #[test]
    fn purge_delay_option() {
        // SAFETY: reads and writes a mimalloc option.
        unsafe {
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), 1000);
            keep_freed_memory();
            assert_eq!(libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY), -1);
        }
    }
}
