//! The [`Layer`] trait every layer implements, and the module tree walks built on it
//! (PyTorch's `named_children()` / `named_modules()`).
//!
//! A layer is a [`ModuleT`] that also says what kind of module it is (`"Conv2d"`), its own name
//! when it has one (a `Conv2d` is named after its `VarBuilder` prefix, `"layer1.conv1"`), and
//! its direct children (empty for a leaf). Containers ([`Sequential`](crate::Sequential)) and
//! models implement [`Layer::children`], so [`named_modules`] walks any network.

use candle_core::{ModuleT, Result, Tensor};
use std::cell::RefCell;

/// A module of a network: a [`ModuleT`] that knows its kind, its name and its children.
///
/// The trait is object safe: containers hold `Arc<dyn Layer>` and walks hand out
/// `&dyn Layer`. Every layer of this crate implements it; a model implements it by listing its
/// fields in [`Layer::children`].
///
/// ```
/// use convnets_layers::{named_modules, Layer, MaxPool2d, Relu, Sequential};
/// let block = Sequential::new().add("relu1", Relu).add("pool1", MaxPool2d::new(2));
/// assert_eq!(block.kind(), "Sequential");
/// let names: Vec<String> = named_modules(&block).into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["", "relu1", "pool1"]);
/// ```
pub trait Layer: ModuleT + Send + Sync {
    /// The module's kind, PyTorch's class name: `"Conv2d"`, `"Linear"`, `"Sequential"`, ….
    fn kind(&self) -> &'static str;

    /// The module's own full name, if it has one (a `Conv2d` or `Linear` built from a
    /// `VarBuilder` is named after its prefix, `"features.0"`; pools and activations only
    /// when given one with `.named(...)`).
    fn name(&self) -> Option<&str> {
        None
    }

    /// The direct children in registration order, with their attribute names (`"conv1"`,
    /// `"0"`). Empty for a leaf layer.
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        Vec::new()
    }

    /// `relu(self.forward_t(x, train))` as one fused op, where the layer has one (a
    /// [`Conv2d`](crate::Conv2d) does: ReLU in the convolution's epilogue and backward, one
    /// activation and one gradient less for autograd); `None` otherwise. A
    /// [`Sequential`](crate::Sequential) calls it for a layer followed by a ReLU.
    fn forward_relu_t(&self, _x: &Tensor, _train: bool) -> Option<Result<Tensor>> {
        None
    }

    /// `pool.forward(&self.forward_t(x, train))` as one op, where the layer has one (a
    /// [`Conv2d`](crate::Conv2d) does: [`Conv2d::forward_avg_pool`](crate::Conv2d::forward_avg_pool)
    /// folds the pool into the kernel); `None`
    /// otherwise, or when the pair should run as two layers (a summary is traced, the pool
    /// does not fit the layer's output: its own forward then names the error). A
    /// [`Sequential`](crate::Sequential) calls it for a layer followed by an average pool.
    fn forward_avg_pool_t(
        &self,
        _x: &Tensor,
        _pool: &crate::AvgPool2d,
        _train: bool,
    ) -> Option<Result<Tensor>> {
        None
    }

    /// `pool.forward(&relu(self.forward_t(x, train)))` as one fused op, where the layer has
    /// one (a [`Conv2d`](crate::Conv2d) does:
    /// [`Conv2d::forward_relu_max_pool`](crate::Conv2d::forward_relu_max_pool)); `None`
    /// otherwise, or when the three should run as layers (a summary is traced, the pool does
    /// not fit the layer's output). A [`Sequential`](crate::Sequential) calls it for a layer
    /// followed by a ReLU and a max pool.
    fn forward_relu_max_pool_t(
        &self,
        _x: &Tensor,
        _pool: &crate::MaxPool2d,
        _train: bool,
    ) -> Option<Result<Tensor>> {
        None
    }

    /// This layer as a [`MaxPool2d`](crate::MaxPool2d), if it is one (for
    /// [`Layer::forward_relu_max_pool_t`]).
    fn as_max_pool2d(&self) -> Option<&crate::MaxPool2d> {
        None
    }

    /// This layer as an [`AvgPool2d`](crate::AvgPool2d), if it is one (for
    /// [`Layer::forward_avg_pool_t`]).
    fn as_avg_pool2d(&self) -> Option<&crate::AvgPool2d> {
        None
    }
}

/// The direct children of `layer` (PyTorch's `named_children()`).
pub fn named_children(layer: &dyn Layer) -> Vec<(String, &dyn Layer)> {
    layer.children()
}

/// Every module of the tree under `root`, root first, depth first, with dotted names
/// (PyTorch's `named_modules()`: the root is called `""`, then `"layer1"`,
/// `"layer1.conv1"`, …).
pub fn named_modules(root: &dyn Layer) -> Vec<(String, &dyn Layer)> {
    fn walk<'a>(prefix: String, layer: &'a dyn Layer, out: &mut Vec<(String, &'a dyn Layer)>) {
        let children = layer.children();
        out.push((prefix.clone(), layer));
        for (name, child) in children {
            let full = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}.{name}")
            };
            walk(full, child, out);
        }
    }
    let mut out = Vec::new();
    walk(String::new(), root, &mut out);
    out
}

thread_local! {
    /// The names of the containers' children being run on this thread, innermost last.
    static SCOPE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with `name` as the current module scope on this thread: a leaf layer without a
/// name of its own that runs inside `f` (and reports an error or a summary row) is called
/// `name`. Containers call this around each child; `name` is the child's full dotted name.
pub fn with_scope<R>(name: String, f: impl FnOnce() -> R) -> R {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            SCOPE.with(|s| s.borrow_mut().pop());
        }
    }
    SCOPE.with(|s| s.borrow_mut().push(name));
    let _pop = Pop;
    f()
}

/// The innermost scope name set by [`with_scope`] on this thread, if any.
pub fn current_scope() -> Option<String> {
    SCOPE.with(|s| s.borrow().last().cloned())
}

/// The name a leaf layer goes by in errors and summaries: its own name, else the scope it
/// runs in (its name inside a container), else its kind.
pub fn display_name(own: Option<&str>, kind: &'static str) -> String {
    match own {
        Some(n) => n.to_string(),
        None => current_scope().unwrap_or_else(|| kind.to_string()),
    }
}

/// `"name (Kind)"`, or just `"Kind"` when the layer has no name: how errors name a layer.
pub(crate) fn label(own: Option<&str>, kind: &'static str) -> String {
    let name = display_name(own, kind);
    if name == kind {
        name
    } else {
        format!("{name} ({kind})")
    }
}

/// Checks that `x` has rank 4 (`[b, c, h, w]`), or fails naming the layer.
pub(crate) fn expect_4d(
    x: &candle_core::Tensor,
    own: Option<&str>,
    kind: &'static str,
) -> candle_core::Result<()> {
    if x.rank() != 4 {
        candle_core::bail!(
            "{}: expected an input [batch, channels, height, width], found {:?}",
            label(own, kind),
            x.dims()
        )
    }
    Ok(())
}

/// A layer with a name of its own, for layers that have no name field (`Relu`, `Flatten`, a
/// model struct): `Relu.named("1")`. In errors and summaries its leaves without a name of
/// their own go by this name. Transparent otherwise: same kind, children and output.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use convnets_layers::{summary, Layer, Relu};
/// let relu = Relu.named("features.1");
/// assert_eq!((relu.kind(), relu.name()), ("ReLU", Some("features.1")));
/// let x = Tensor::zeros((1, 4), DType::F32, &Device::Cpu)?;
/// assert_eq!(relu.forward(&x)?.dims(), &[1, 4]);
/// assert_eq!(summary(&relu, &[1, 4])?.rows[0].name, "features.1");
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named<L> {
    name: String,
    inner: L,
}

impl<L: Layer> Named<L> {
    /// `inner` called `name`.
    pub fn new(name: impl Into<String>, inner: L) -> Self {
        Self {
            name: name.into(),
            inner,
        }
    }
    /// The wrapped layer.
    pub fn inner(&self) -> &L {
        &self.inner
    }
    /// `forward_t(x, false)`: lets a named `Module` be called as before (`relu.forward(&x)`).
    pub fn forward(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        self.forward_t(x, false)
    }
}

impl<L: Layer> ModuleT for Named<L> {
    fn forward_t(
        &self,
        x: &candle_core::Tensor,
        train: bool,
    ) -> candle_core::Result<candle_core::Tensor> {
        with_scope(self.name.clone(), || self.inner.forward_t(x, train))
    }
}

impl<L: Layer> Layer for Named<L> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        self.inner.children()
    }
}
