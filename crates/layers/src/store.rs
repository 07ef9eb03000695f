//! A seeded parameter store: candle [`Var`]s named by PyTorch's `state_dict()` keys.
//!
//! Layers take their parameters from a [`VarBuilder`] (`store.vb().pp("conv1")`); the store
//! creates each one on first use from a seeded generator following the layer's init hint, and
//! keeps them in creation order, which is PyTorch's registration order. The store saves and
//! loads safetensors files with exactly those names, so weights move between PyTorch and
//! convnets with no renaming.

use crate::init::Rng;
use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// What can go wrong when saving or loading parameters.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid safetensors file.
    #[error("{path}: not a valid safetensors file: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The file does not hold this model's parameters: names the model has that the file
    /// lacks, names the file has that the model does not know, and common names whose shapes
    /// differ (the wrong architecture, or another variant of it).
    #[error("{path}: not the weights of this model ({}){}", .mismatch.counts(), .mismatch)]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        mismatch: Box<Mismatch>,
    },
    /// A tensor has an integer type where the model has floats (batch norm's
    /// `num_batches_tracked`, an int64 counter in PyTorch, is the one exception).
    #[error(
        "{path}: tensor `{name}` is {found:?}, the model expects floating point ({expected:?})"
    )]
    Dtype {
        /// The file.
        path: PathBuf,
        /// The parameter name.
        name: String,
        /// The model's dtype.
        expected: DType,
        /// The file's dtype.
        found: DType,
    },
    /// A candle error.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Which parameters are frozen (see [`ParamStore::freeze`]).
type FrozenFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct Inner {
    rng: Rng,
    names: Vec<String>,
    vars: HashMap<String, Var>,
    frozen: Option<FrozenFn>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("names", &self.names)
            .field("frozen", &self.frozen.is_some())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn is_frozen(&self, name: &str) -> bool {
        self.frozen.as_ref().is_some_and(|f| f(name))
    }

    /// What a layer gets for the parameter `name`: the variable itself, or for a frozen one a
    /// plain tensor sharing its storage (no gradient is tracked through it).
    fn handed_out(&self, name: &str, var: &Var) -> Tensor {
        if self.is_frozen(name) {
            var.as_tensor().detach()
        } else {
            var.as_tensor().clone()
        }
    }
}

/// Named, seeded model parameters. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
    device: Device,
}

impl ParamStore {
    /// An empty store whose new parameters are drawn from a generator seeded with `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        let inner = Inner {
            rng: Rng::new(seed),
            names: Vec::new(),
            vars: HashMap::new(),
            frozen: None,
        };
        Self {
            inner: Arc::new(Mutex::new(inner)),
            device: device.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked while holding it; the map is
        // still consistent (every insertion is a single push + insert).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A `VarBuilder` (f32) that creates parameters in this store.
    pub fn vb(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, self.device.clone())
    }

    /// Parameter names in creation (PyTorch registration) order.
    pub fn names(&self) -> Vec<String> {
        self.lock().names.clone()
    }

    /// `(name, var)` pairs in creation order.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let inner = self.lock();
        inner
            .names
            .iter()
            .map(|n| (n.clone(), inner.vars[n].clone()))
            .collect()
    }

    /// Every tensor in creation order: trainable parameters and buffers.
    pub fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }

    /// The trainable parameters in creation order (what an optimizer takes): every tensor but
    /// the buffers (see [`is_buffer`]) and the frozen parameters ([`ParamStore::freeze`]).
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.named_vars()
            .into_iter()
            .filter(|(n, _)| !is_buffer(n) && !self.is_frozen(n))
            .map(|(_, v)| v)
            .collect()
    }

    /// Freezes every parameter whose name `frozen` accepts (PyTorch's
    /// `p.requires_grad_(False)`), for fine-tuning: call it **before** building the model.
    /// Layers then receive a frozen parameter as a plain tensor, not a variable, so backward
    /// passes compute no gradient for it (and for a frozen backbone under a trainable head, no
    /// gradient work in the backbone at all); [`ParamStore::trainable_vars`] leaves it out, so
    /// an optimizer keeps no state for it. The store still holds, saves and loads it (loading
    /// updates the values the model sees: the tensor shares the variable's storage). Batch
    /// norm's running statistics are buffers and still follow the data in training mode, as
    /// in PyTorch.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use candle_nn::Module;
    /// use convnets_layers::{linear, ParamStore};
    /// let store = ParamStore::new(0, &Device::Cpu);
    /// store.freeze(|name| name.starts_with("backbone."));
    /// let backbone = linear(4, 3, store.vb().pp("backbone"))?;
    /// let head = linear(3, 2, store.vb().pp("head"))?;
    /// assert_eq!(store.trainable_vars().len(), 2); // head.weight, head.bias
    /// let x = Tensor::ones((1, 4), candle_core::DType::F32, &Device::Cpu)?;
    /// let grads = head.forward(&backbone.forward(&x)?)?.sum_all()?.backward()?;
    /// assert!(grads.get(store.get("backbone.weight").unwrap().as_tensor()).is_none());
    /// assert!(grads.get(store.get("head.weight").unwrap().as_tensor()).is_some());
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn freeze(&self, frozen: impl Fn(&str) -> bool + Send + Sync + 'static) {
        self.lock().frozen = Some(Arc::new(frozen));
    }

    /// Whether the parameter `name` is frozen ([`ParamStore::freeze`]).
    pub fn is_frozen(&self, name: &str) -> bool {
        self.lock().is_frozen(name)
    }

    /// Runs `f` with the store's seeded generator (the one new parameters are drawn from), so
    /// that re-initialisation ([`crate::init::apply`]) continues the same seeded stream. The
    /// store is locked meanwhile: `f` must not call the store's methods (it would deadlock).
    pub fn with_rng<R>(&self, f: impl FnOnce(&mut Rng) -> R) -> R {
        f(&mut self.lock().rng)
    }

    /// The parameter called `name`, if any.
    pub fn get(&self, name: &str) -> Option<Var> {
        self.lock().vars.get(name).cloned()
    }

    /// Total number of scalars of the trainable parameters (PyTorch's
    /// `sum(p.numel() for p in model.parameters() if p.requires_grad)`): every tensor but the
    /// buffers and the frozen parameters.
    pub fn num_trainable_params(&self) -> usize {
        self.named_vars()
            .iter()
            .filter(|(n, _)| !is_buffer(n) && !self.is_frozen(n))
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// Total number of scalars in the store: parameters and buffers (PyTorch's `state_dict()`).
    pub fn num_params(&self) -> usize {
        self.lock().vars.values().map(|v| v.elem_count()).sum()
    }

    /// The parameters as a name → tensor map (detached copies sharing storage).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.named_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().detach()))
            .collect()
    }

    /// Writes every parameter to a safetensors file at `path`, atomically: the data goes to a
    /// temporary file beside it that is renamed over `path` only once complete.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let tensors = self.tensors();
        atomic_write(path, |tmp| {
            candle_core::safetensors::save(&tensors, tmp).map_err(|e| StoreError::Format {
                path: tmp.to_path_buf(),
                reason: e.to_string(),
            })
        })
    }

    /// Loads every parameter from a safetensors file (e.g. one written by PyTorch's
    /// `safetensors.torch.save_file(model.state_dict(), ...)`). Every parameter must be in the
    /// file with the right shape; with `strict`, the file may hold nothing else.
    pub fn load(&self, path: &Path, strict: bool) -> Result<(), StoreError> {
        let tensors = read_tensors(path)?;
        self.load_tensors(&tensors, path, strict)
    }

    /// Sets every parameter from `tensors` (see [`ParamStore::load`]); `origin` names the
    /// source in errors.
    pub fn load_tensors(
        &self,
        tensors: &HashMap<String, Tensor>,
        origin: &Path,
        strict: bool,
    ) -> Result<(), StoreError> {
        self.load_tensors_where(tensors, origin, strict, &|_| true)
    }

    /// Loads the parameters `keep` accepts from a safetensors file, as [`ParamStore::load`]
    /// does for all of them: the others keep their values, and the file's tensors of the same
    /// names are not read (fine-tuning loads a pretrained backbone and leaves the new
    /// classifier as initialised: `keep` = not the head). With `strict`, the file may hold
    /// no tensor the model lacks, apart from those `keep` refuses.
    pub fn load_where(
        &self,
        path: &Path,
        strict: bool,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<(), StoreError> {
        let tensors = read_tensors(path)?;
        self.load_tensors_where(&tensors, path, strict, keep)
    }

    /// [`ParamStore::load_where`] from tensors already read; `origin` names their source.
    pub fn load_tensors_where(
        &self,
        tensors: &HashMap<String, Tensor>,
        origin: &Path,
        strict: bool,
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<(), StoreError> {
        let named: Vec<(String, Var)> = self
            .named_vars()
            .into_iter()
            .filter(|(n, _)| keep(n))
            .collect();
        let mut mismatch = Mismatch::default();
        for (name, var) in &named {
            let Some(t) = tensors.get(name) else {
                mismatch.missing.push((name.clone(), var.dims().to_vec()));
                continue;
            };
            // PyTorch stores batch-norm's step counter as int64; every other integer tensor
            // where the model has floats is a wrong or hostile file, not a parameter.
            let counter = name == "num_batches_tracked" || name.ends_with(".num_batches_tracked");
            if t.dtype().is_int() && !var.dtype().is_int() && !counter {
                return Err(StoreError::Dtype {
                    path: origin.into(),
                    name: name.clone(),
                    expected: var.dtype(),
                    found: t.dtype(),
                });
            }
            if t.dims() != var.dims() {
                mismatch
                    .shapes
                    .push((name.clone(), var.dims().to_vec(), t.dims().to_vec()));
            }
        }
        if strict {
            let known: std::collections::HashSet<&str> =
                named.iter().map(|(n, _)| n.as_str()).collect();
            let mut extra: Vec<(String, Vec<usize>)> = tensors
                .iter()
                .filter(|(n, _)| keep(n) && !known.contains(n.as_str()))
                .map(|(n, t)| (n.clone(), t.dims().to_vec()))
                .collect();
            extra.sort();
            mismatch.unexpected = extra;
        }
        if !mismatch.is_empty() {
            return Err(StoreError::Mismatch {
                path: origin.into(),
                mismatch: Box::new(mismatch),
            });
        }
        for (name, var) in &named {
            let t = tensors[name]
                .to_dtype(var.dtype())?
                .to_device(var.device())?;
            var.set(&t)?;
        }
        Ok(())
    }
}

/// Every tensor of the safetensors file at `path`, on the CPU; a malformed file is a
/// [`StoreError::Format`] saying what is wrong with its layout.
fn read_tensors(path: &Path) -> Result<HashMap<String, Tensor>, StoreError> {
    let bytes = std::fs::read(path).map_err(|source| StoreError::Io {
        path: path.into(),
        source,
    })?;
    candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| StoreError::Format {
        path: path.into(),
        reason: layout_problem(&bytes).unwrap_or_else(|| e.to_string()),
    })
}

/// How a weights file differs from a model's parameters ([`StoreError::Mismatch`]). Its
/// `Display` lists up to [`Mismatch::SHOWN`] names of each kind, with shapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mismatch {
    /// Parameters of the model the file lacks: name, the model's shape.
    pub missing: Vec<(String, Vec<usize>)>,
    /// Tensors of the file the model does not have: name, the file's shape (only checked in
    /// strict loading).
    pub unexpected: Vec<(String, Vec<usize>)>,
    /// Common names with other shapes: name, the model's (expected) shape, the file's (found).
    pub shapes: Vec<(String, Vec<usize>, Vec<usize>)>,
}

impl Mismatch {
    /// How many names of each kind [`Mismatch`]'s `Display` lists before "… and N more".
    pub const SHOWN: usize = 8;

    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unexpected.is_empty() && self.shapes.is_empty()
    }

    /// "3 missing, 2 unexpected, 1 with another shape" (only the non-zero parts).
    pub fn counts(&self) -> String {
        let parts: Vec<String> = [
            (self.missing.len(), "missing"),
            (self.unexpected.len(), "unexpected"),
            (self.shapes.len(), "with another shape"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        parts.join(", ")
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn list<T>(
            f: &mut std::fmt::Formatter<'_>,
            title: &str,
            items: &[T],
            show: impl Fn(&T) -> String,
        ) -> std::fmt::Result {
            if items.is_empty() {
                return Ok(());
            }
            write!(f, "; {title}: ")?;
            let shown: Vec<String> = items.iter().take(Mismatch::SHOWN).map(show).collect();
            write!(f, "{}", shown.join(", "))?;
            if items.len() > Mismatch::SHOWN {
                write!(f, " … and {} more", items.len() - Mismatch::SHOWN)?;
            }
            Ok(())
        }
        list(f, "missing (the model's shape)", &self.missing, |(n, s)| {
            format!("{n} {s:?}")
        })?;
        list(
            f,
            "unexpected (the file's shape)",
            &self.unexpected,
            |(n, s)| format!("{n} {s:?}"),
        )?;
        list(f, "other shapes", &self.shapes, |(n, e, g)| {
            format!("{n}: expected {e:?}, found {g:?}")
        })
    }
}

/// What is wrong with the layout of a safetensors file, in numbers (the header length against
/// the file's size, tensors' byte ranges against each other and the data's size), when the
/// header itself can be read; `None` leaves the parser's own words.
fn layout_problem(bytes: &[u8]) -> Option<String> {
    let size = bytes.len();
    let Some(prefix) = bytes.get(..8) else {
        return Some(format!(
            "{size} bytes, too short for the 8-byte header length"
        ));
    };
    let n = u64::from_le_bytes(prefix.try_into().ok()?);
    let rest = (size - 8) as u64;
    if n > rest {
        return Some(format!(
            "the header length (first 8 bytes) says {n} bytes, but only {rest} bytes follow (file of {size} bytes; truncated, or not safetensors)"
        ));
    }
    let header = &bytes[8..8 + n as usize];
    let data = rest - n;
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    let mut ranges: Vec<(u64, u64, &str)> = Vec::new();
    for (name, v) in &map {
        if name == "__metadata__" {
            continue;
        }
        let off = v.get("data_offsets")?.as_array()?;
        let (s, e) = (off.first()?.as_u64()?, off.get(1)?.as_u64()?);
        if s > e {
            return Some(format!(
                "tensor `{name}` has data offsets [{s}, {e}]: the end is before the start"
            ));
        }
        if e > data {
            return Some(format!(
                "tensor `{name}` has data offsets [{s}, {e}], past the end of the data: the file holds {data} bytes after its header (truncated?)"
            ));
        }
        ranges.push((s, e, name));
    }
    ranges.sort();
    let mut end = 0;
    for w in ranges.windows(2) {
        let ((s0, e0, a), (s1, e1, b)) = (w[0], w[1]);
        if s1 < e0 {
            return Some(format!(
                "tensors `{a}` (bytes [{s0}, {e0}]) and `{b}` (bytes [{s1}, {e1}]) overlap"
            ));
        }
    }
    for &(s, e, name) in &ranges {
        if s != end {
            return Some(format!(
                "tensor `{name}` starts at data byte {s}, expected {end} (tensors must cover the data without gaps)"
            ));
        }
        end = e;
    }
    if end != data {
        return Some(format!(
            "the tensors cover {end} bytes of data, the file holds {data} after its header"
        ));
    }
    None
}

/// Whether a state-dict entry is a buffer rather than a trainable parameter: PyTorch's batch
/// norm buffers `running_mean`, `running_var` and `num_batches_tracked`.
pub fn is_buffer(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    matches!(last, "running_mean" | "running_var" | "num_batches_tracked")
}

/// Writes a file atomically: `write` fills a temporary path next to `path`, which is then
/// renamed over `path`. On failure the temporary file is removed and `path` is untouched.
pub fn atomic_write<E: From<StoreError>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file}.tmp-{}", std::process::id()));
    if let Err(e) = write(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        E::from(StoreError::Io {
            path: path.into(),
            source,
        })
    })
}

impl SimpleBackend for ParamStore {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut inner = self.lock();
        if let Some(v) = inner.vars.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "parameter `{name}`: requested shape {s:?}, already created as {:?}",
                    v.shape()
                )
            }
            return Ok(inner.handed_out(name, v));
        }
        let data = inner.rng.sample(h, s.dims());
        let t = Tensor::from_vec(data, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&t)?;
        inner.names.push(name.to_string());
        inner.vars.insert(name.to_string(), var.clone());
        Ok(inner.handed_out(name, &var))
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let inner = self.lock();
        match inner.vars.get(name) {
            Some(v) => Ok(inner.handed_out(name, v)),
            None => candle_core::bail!("parameter `{name}` does not exist in the store"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lock().vars.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_order_names_and_seeded_values() -> anyhow::Result<()> {
        let a = ParamStore::new(3, &Device::Cpu);
        let vb = a.vb();
        let w =
            vb.pp("fc")
                .get_with_hints((2, 3), "weight", Init::Uniform { lo: -1.0, up: 1.0 })?;
        let _b = vb.pp("fc").get_with_hints(2, "bias", Init::Const(0.5))?;
        assert_eq!(a.names(), ["fc.weight", "fc.bias"]);
        assert_eq!(a.num_params(), 8);
        let b = ParamStore::new(3, &Device::Cpu);
        let w2 = b.vb().pp("fc").get_with_hints(
            (2, 3),
            "weight",
            Init::Uniform { lo: -1.0, up: 1.0 },
        )?;
        assert_eq!(w.to_vec2::<f32>()?, w2.to_vec2::<f32>()?);
        assert_eq!(
            a.get("fc.bias").map(|v| v.to_vec1::<f32>()).transpose()?,
            Some(vec![0.5, 0.5])
        );
        Ok(())
    }

    #[test]
    fn save_load_roundtrip_and_errors() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("w.safetensors");
        let a = ParamStore::new(1, &Device::Cpu);
        a.vb()
            .get_with_hints((4, 2), "w", Init::Uniform { lo: -1.0, up: 1.0 })?;
        a.save(&path)?;
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())?.collect();
        assert_eq!(leftovers.len(), 1, "temporary file left behind");

        let b = ParamStore::new(2, &Device::Cpu);
        b.vb().get_with_hints((4, 2), "w", Init::Const(0.0))?;
        b.load(&path, true)?;
        assert_eq!(
            a.tensors()["w"].to_vec2::<f32>()?,
            b.tensors()["w"].to_vec2::<f32>()?
        );

        let c = ParamStore::new(2, &Device::Cpu);
        c.vb().get_with_hints((2, 4), "w", Init::Const(0.0))?;
        let err = c.load(&path, true).unwrap_err().to_string();
        assert!(err.contains("w: expected [2, 4], found [4, 2]"), "{err}");

        let d = ParamStore::new(2, &Device::Cpu);
        d.vb().get_with_hints(3, "other", Init::Const(0.0))?;
        let err = d.load(&path, true).unwrap_err().to_string();
        assert!(
            err.contains("missing (the model's shape): other [3]")
                && err.contains("unexpected (the file's shape): w [4, 2]")
                && err.contains("w.safetensors"),
            "{err}"
        );

        std::fs::write(&path, b"not safetensors")?;
        let err = b.load(&path, true).unwrap_err().to_string();
        assert!(err.contains("not a valid safetensors file"), "{err}");
        Ok(())
    }

    #[test]
    fn integer_tensors_refused_except_the_batch_norm_counter() -> anyhow::Result<()> {
        let store = ParamStore::new(0, &Device::Cpu);
        store
            .vb()
            .get_with_hints(2, "fc.weight", Init::Const(0.0))?;
        store
            .vb()
            .get_with_hints((), "bn.num_batches_tracked", Init::Const(0.0))?;
        let mut t = HashMap::new();
        t.insert(
            "fc.weight".to_string(),
            Tensor::new(&[1.5f32, -2.0], &Device::Cpu)?,
        );
        t.insert(
            "bn.num_batches_tracked".to_string(),
            Tensor::new(7i64, &Device::Cpu)?,
        );
        store.load_tensors(&t, Path::new("ok.safetensors"), true)?;
        assert_eq!(
            store
                .get("bn.num_batches_tracked")
                .unwrap()
                .to_scalar::<f32>()?,
            7.0
        );
        t.insert(
            "fc.weight".to_string(),
            Tensor::new(&[1i64, 2], &Device::Cpu)?,
        );
        let err = store
            .load_tensors(&t, Path::new("bad.safetensors"), true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.safetensors") && err.contains("`fc.weight` is I64"),
            "{err}"
        );
        Ok(())
    }
}
