//! [`no_grad`]: run a forward pass without recording the autograd graph, like PyTorch's
//! `torch.no_grad()`.
//!
//! candle records the graph whenever an op's input is a variable (or computed from one), and
//! each recorded output keeps its inputs alive: an inference pass through a model built on a
//! [`crate::ParamStore`] would hold every intermediate activation until the output is dropped
//! (gigabytes for ResNet-20 at batch 1000), and the convolutions would keep their unfolded
//! inputs for a backward that never comes. Inside [`no_grad`], the layers of this crate use
//! detached views of their parameters (the same storage, no copy), so nothing is recorded
//! and every intermediate is freed as soon as the next layer has read it.

use candle_core::Tensor;
use std::cell::Cell;

thread_local! {
    static NO_GRAD: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with gradient recording off on this thread (restored afterwards, also on panic).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use convnets_layers::{linear, no_grad, ParamStore};
/// use candle_core::Module;
///
/// let store = ParamStore::new(0, &Device::Cpu);
/// let fc = linear(4, 2, store.vb().pp("fc"))?;
/// let x = Tensor::ones((3, 4), candle_core::DType::F32, &Device::Cpu)?;
/// let y = no_grad(|| fc.forward(&x))?;
/// assert!(!y.track_op()); // no graph: intermediates are freed as the pass goes
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_GRAD.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(NO_GRAD.with(|c| c.replace(true)));
    f()
}

/// Whether layers record the autograd graph on this thread (`false` inside [`no_grad`]).
pub fn grad_enabled() -> bool {
    !NO_GRAD.with(Cell::get)
}

/// A parameter as a layer should use it: itself, or a detached view inside [`no_grad`].
pub(crate) fn param(t: &Tensor) -> Tensor {
    if grad_enabled() {
        t.clone()
    } else {
        t.detach()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restored_after_panic() {
        assert!(grad_enabled());
        let r = std::panic::catch_unwind(|| no_grad(|| panic!("inside")));
        assert!(r.is_err());
        assert!(grad_enabled());
        no_grad(|| {
            assert!(!grad_enabled());
            no_grad(|| assert!(!grad_enabled()));
            assert!(!grad_enabled());
        });
        assert!(grad_enabled());
    }
}
