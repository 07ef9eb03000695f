//! The named parameters a trainer updates and checkpoints.

use candle_core::{Tensor, Var};
use convnets_layers::{is_buffer, ParamStore};
use std::collections::{HashMap, HashSet};

/// A model's tensors by name: the trainable parameters and the buffers (batch norm's running
/// statistics), in a fixed order. The optimizer gets the trainable ones
/// ([`Params::trainable`]); a checkpoint saves all of them.
///
/// Built from our [`ParamStore`] (PyTorch's registration order) or from candle-nn's
/// [`VarMap`](candle_nn::VarMap) (sorted by name), or from any list of named [`Var`]s.
///
/// ```
/// use candle_core::Device;
/// use convnets_layers::{batch_norm2d, ParamStore};
/// use convnets_train::Params;
/// let store = ParamStore::new(0, &Device::Cpu);
/// let _bn = batch_norm2d(4, Default::default(), store.vb().pp("bn"))?;
/// let params = Params::from(&store);
/// assert_eq!(params.trainable().len(), 2); // weight and bias; the running stats are buffers
/// assert_eq!(params.num_trainable(), 8);
/// # Ok::<(), candle_core::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Params {
    named: Vec<(String, Var)>,
    frozen: HashSet<String>,
}

impl Params {
    /// The parameters `named`, in this order. Names ending in `running_mean`, `running_var`
    /// or `num_batches_tracked` are buffers (see [`is_buffer`]).
    pub fn new(named: Vec<(String, Var)>) -> Self {
        Self {
            named,
            frozen: HashSet::new(),
        }
    }

    /// These parameters with the ones `frozen` accepts frozen: left out of
    /// [`Params::trainable`] (no optimizer state, no update) but still saved and checkpointed.
    /// [`Params::from`] a [`ParamStore`] takes the store's own frozen set
    /// ([`ParamStore::freeze`], which also spares the backward pass their gradients).
    pub fn with_frozen(mut self, frozen: impl Fn(&str) -> bool) -> Self {
        self.frozen = self
            .named
            .iter()
            .filter(|(n, _)| frozen(n))
            .map(|(n, _)| n.clone())
            .collect();
        self
    }

    /// Whether the parameter `name` is frozen.
    pub fn is_frozen(&self, name: &str) -> bool {
        self.frozen.contains(name)
    }

    /// The number of frozen scalars (not counted by [`Params::num_trainable`]).
    pub fn num_frozen(&self) -> usize {
        self.named
            .iter()
            .filter(|(n, _)| self.frozen.contains(n))
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// Every tensor with its name, in order.
    pub fn named(&self) -> &[(String, Var)] {
        &self.named
    }

    /// The trainable parameters (what the optimizer updates), in order: neither buffers nor
    /// frozen.
    pub fn trainable(&self) -> Vec<Var> {
        self.named
            .iter()
            .filter(|(n, _)| !is_buffer(n) && !self.frozen.contains(n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The number of trainable scalars (PyTorch's `sum(p.numel() for p in
    /// model.parameters() if p.requires_grad)`): buffers and frozen parameters are not counted.
    pub fn num_trainable(&self) -> usize {
        self.named
            .iter()
            .filter(|(n, _)| !is_buffer(n) && !self.frozen.contains(n))
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// Detached copies (sharing storage) of every tensor, by name.
    pub fn tensors(&self) -> Vec<(String, Tensor)> {
        self.named
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect()
    }

    /// Sets every tensor from `values` (same names, shapes and dtypes); `origin` names the
    /// source in errors. Extra entries are an error too.
    pub fn load(&self, values: &HashMap<String, Tensor>, origin: &str) -> candle_core::Result<()> {
        for (name, var) in &self.named {
            let Some(t) = values.get(name) else {
                candle_core::bail!("{origin}: missing tensor `{name}` (shape {:?})", var.dims())
            };
            if t.dims() != var.dims() || t.dtype() != var.dtype() {
                candle_core::bail!(
                    "{origin}: tensor `{name}` is {:?} {:?}, the model has {:?} {:?}",
                    t.dtype(),
                    t.dims(),
                    var.dtype(),
                    var.dims()
                )
            }
        }
        if values.len() != self.named.len() {
            let known: std::collections::HashSet<&str> =
                self.named.iter().map(|(n, _)| n.as_str()).collect();
            let mut extra: Vec<&String> = values
                .keys()
                .filter(|k| !known.contains(k.as_str()))
                .collect();
            extra.sort();
            candle_core::bail!("{origin}: tensors the model does not have: {extra:?}")
        }
        for (name, var) in &self.named {
            var.set(&values[name].to_device(var.device())?)?;
        }
        Ok(())
    }
}

impl From<&ParamStore> for Params {
    fn from(store: &ParamStore) -> Self {
        Self::new(store.named_vars()).with_frozen(|n| store.is_frozen(n))
    }
}

impl From<&candle_nn::VarMap> for Params {
    fn from(map: &candle_nn::VarMap) -> Self {
        let data = map.data().lock().unwrap_or_else(|e| e.into_inner());
        let mut named: Vec<(String, Var)> =
            data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        Self::new(named)
    }
}
