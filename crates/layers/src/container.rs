//! `Sequential`: an ordered container of named layers (PyTorch's `nn.Sequential` with
//! `add_module(name, module)`, seed 003).

use crate::layer::{current_scope, named_modules, with_scope, Layer};
use crate::summary;
use candle_core::{ModuleT, Result, Tensor};
use std::fmt;
use std::sync::Arc;

/// Layers run one after the other, each with a name (PyTorch's `nn.Sequential` built with
/// `add_module`). Children are shared (`Arc`), so cloning and [`Sequential::first`] are cheap
/// and share parameters.
///
/// The container's own name (the prefix of its children's full names, `"layer1"`) is given
/// with [`Sequential::named`], or inferred from the first child that has a full name of its
/// own ending in its key: a `Conv2d` built with `vb.pp("layer1").pp("conv1")` and pushed as
/// `"conv1"` makes the container `"layer1"`. Unnamed children (`Relu`, pools) are then called
/// `layer1.relu1`, … in errors and summaries.
///
/// ```
/// use candle_core::{DType, Device, ModuleT, Tensor};
/// use convnets_layers::{conv2d, Conv2dConfig, Layer, MaxPool2d, ParamStore, Relu, Sequential};
/// // Seed 003's SimpleCNN layer1.
/// let store = ParamStore::new(0, &Device::Cpu);
/// let vb = store.vb().pp("layer1");
/// let mut layer1 = Sequential::new();
/// layer1
///     .push("conv1", conv2d(3, 32, 3, Conv2dConfig::default().padding(1), vb.pp("conv1"))?)
///     .push("relu1", Relu)
///     .push("pool1", MaxPool2d::with_stride(2, 2));
/// assert_eq!(layer1.name(), Some("layer1"));
/// let x = Tensor::zeros((1, 3, 32, 32), DType::F32, &Device::Cpu)?;
/// assert_eq!(layer1.forward_t(&x, false)?.dims(), &[1, 32, 16, 16]);
/// let names: Vec<_> = layer1.named_children().into_iter().map(|(n, _)| n).collect();
/// assert_eq!(names, ["conv1", "relu1", "pool1"]);
/// assert_eq!(store.names(), ["layer1.conv1.weight", "layer1.conv1.bias"]);
/// // The first two layers, sharing parameters.
/// assert_eq!(layer1.first(2).forward_t(&x, false)?.dims(), &[1, 32, 32, 32]);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct Sequential {
    name: Option<String>,
    inferred: Option<String>,
    children: Vec<(String, Arc<dyn Layer>)>,
}

impl Sequential {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same container called `name` (its children are `name.child`).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Appends `layer` as child `name` (PyTorch's `add_module(name, layer)`).
    pub fn push(&mut self, name: impl Into<String>, layer: impl Layer + 'static) -> &mut Self {
        self.push_arc(name, Arc::new(layer))
    }

    /// Appends an already shared layer as child `name`.
    pub fn push_arc(&mut self, name: impl Into<String>, layer: Arc<dyn Layer>) -> &mut Self {
        let name = name.into();
        if self.inferred.is_none() {
            if let Some(own) = layer.name() {
                if own == name {
                    self.inferred = Some(String::new());
                } else if let Some(prefix) =
                    own.strip_suffix(&name).and_then(|p| p.strip_suffix('.'))
                {
                    self.inferred = Some(prefix.to_string());
                }
            }
        }
        self.children.push((name, layer));
        self
    }

    /// The same container with `layer` appended as child `name` (builder style of
    /// [`Sequential::push`]).
    pub fn add(mut self, name: impl Into<String>, layer: impl Layer + 'static) -> Self {
        self.push(name, layer);
        self
    }

    /// Number of children.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Whether there are no children.
    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }

    /// The child at `index` (PyTorch's `seq[index]`).
    pub fn get(&self, index: usize) -> Option<&dyn Layer> {
        self.children.get(index).map(|(_, l)| l.as_ref())
    }

    /// The child called `name`.
    pub fn child(&self, name: &str) -> Option<&dyn Layer> {
        self.children
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, l)| l.as_ref())
    }

    /// The direct children with their names (PyTorch's `named_children()`).
    pub fn named_children(&self) -> Vec<(String, &dyn Layer)> {
        self.children
            .iter()
            .map(|(n, l)| (n.clone(), l.as_ref()))
            .collect()
    }

    /// Every module under this one, itself first as `""`, with dotted names (PyTorch's
    /// `named_modules()`).
    pub fn named_modules(&self) -> Vec<(String, &dyn Layer)> {
        named_modules(self)
    }

    /// A container of the first `n` children (all when `n` is larger), sharing their
    /// parameters: seed 003's `nn.Sequential(*list(model.children())[:2])`.
    pub fn first(&self, n: usize) -> Sequential {
        Sequential {
            name: self.name.clone(),
            inferred: self.inferred.clone(),
            children: self.children.iter().take(n).cloned().collect(),
        }
    }

    fn prefix(&self) -> Option<&str> {
        self.name.as_deref().or(self.inferred.as_deref())
    }

    /// The full name of child `child` when this container runs in the current scope.
    fn child_scope(&self, child: &str) -> String {
        let prefix = match self.prefix() {
            Some(p) => Some(p.to_string()),
            None => current_scope(),
        };
        match prefix {
            Some(p) if !p.is_empty() => format!("{p}.{child}"),
            _ => child.to_string(),
        }
    }
}

impl ModuleT for Sequential {
    /// The children in order; a layer followed by a ReLU (and a max pool), or by an
    /// average pool, runs as one fused op where it has one ([`Layer::forward_relu_t`],
    /// [`Layer::forward_relu_max_pool_t`], [`Layer::forward_avg_pool_t`]), except while a
    /// summary is traced (which records each layer).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        let fuse = !summary::tracing();
        let kids = &self.children;
        let mut i = 0;
        while let Some((name, layer)) = kids.get(i) {
            let next = |k: usize| kids.get(i + k).filter(|_| fuse).map(|(_, l)| l);
            let fused = with_scope(self.child_scope(name), || {
                match (next(1), next(2)) {
                    (Some(r), Some(p)) if r.kind() == "ReLU" && p.as_max_pool2d().is_some() => {
                        let pool = p.as_max_pool2d()?;
                        layer
                            .forward_relu_max_pool_t(&x, pool, train)
                            .map(|y| (y, 3))
                    }
                    _ => None,
                }
                .or_else(|| match next(1) {
                    Some(r) if r.kind() == "ReLU" => {
                        layer.forward_relu_t(&x, train).map(|y| (y, 2))
                    }
                    Some(l) => l
                        .as_avg_pool2d()
                        .and_then(|pool| layer.forward_avg_pool_t(&x, pool, train))
                        .map(|y| (y, 2)),
                    None => None,
                })
            });
            let (y, layers) = match fused {
                Some((y, layers)) => (y, layers),
                None => (
                    with_scope(self.child_scope(name), || layer.forward_t(&x, train)),
                    1,
                ),
            };
            x = y?;
            i += layers;
        }
        Ok(x)
    }
}

impl Layer for Sequential {
    fn kind(&self) -> &'static str {
        "Sequential"
    }
    fn name(&self) -> Option<&str> {
        self.prefix().filter(|p| !p.is_empty())
    }
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        self.named_children()
    }
}

impl fmt::Debug for Sequential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_struct("Sequential");
        for (name, layer) in &self.children {
            l.field(name, &layer.kind());
        }
        l.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{conv2d, linear, summary, Conv2dConfig, Flatten, MaxPool2d, ParamStore, Relu};
    use candle_core::{DType, Device};

    #[test]
    fn nested_names_modules_and_summary_rows() -> anyhow::Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        let vb = store.vb();
        let mut features = Sequential::new();
        features
            .push(
                "0",
                conv2d(3, 4, 3, Conv2dConfig::default(), vb.pp("features").pp(0))?,
            )
            .push("1", Relu)
            .push("2", MaxPool2d::new(2));
        let mut model = Sequential::new();
        model
            .push("features", features)
            .push("flatten", Flatten)
            .push("fc", linear(4 * 3 * 3, 2, vb.pp("fc"))?);
        let names: Vec<String> = model.named_modules().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "",
                "features",
                "features.0",
                "features.1",
                "features.2",
                "flatten",
                "fc"
            ]
        );
        assert_eq!(model.get(0).map(|l| l.name()), Some(Some("features")));

        let s = summary(&model, &[1, 3, 8, 8])?;
        let rows: Vec<(&str, &str)> = s.rows.iter().map(|r| (r.name.as_str(), r.kind)).collect();
        assert_eq!(
            rows,
            [
                ("features.0", "Conv2d"),
                ("features.1", "ReLU"),
                ("features.2", "MaxPool2d"),
                ("flatten", "Flatten"),
                ("fc", "Linear")
            ]
        );
        // A failing child names itself inside the container.
        let err = model
            .forward_t(
                &Tensor::zeros((1, 3, 3, 3), DType::F32, &Device::Cpu)?,
                false,
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("features.2 (MaxPool2d): input [1, 4, 1, 1] is too small"),
            "{err}"
        );
        let err = model
            .first(1)
            .forward_t(
                &Tensor::zeros((1, 2, 8, 8), DType::F32, &Device::Cpu)?,
                false,
            )
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("features.0 (Conv2d): expected 3 input channels"),
            "{err}"
        );
        Ok(())
    }
}
