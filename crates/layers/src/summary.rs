//! A model summary: per layer its name, kind, output shape, parameter shapes, parameter count
//! and multiply–accumulate count (seed 002's two printouts, plus seed 001's cost arithmetic).
//!
//! [`summary`] runs one forward pass (eval mode, zeros) with tracing switched on for the
//! current thread. Every leaf layer of this crate reports itself to the trace as it runs
//! ([`record`]), so any model built from these layers is summarised without model-specific
//! code, whatever its structure (plain struct, [`Sequential`](crate::Sequential), branches).
//! Operations that are not layers (a `x.relu()` or `Tensor::cat` in a model's `forward`) do
//! not appear.
//!
//! MACs (multiply–accumulates, one per weight use) are counted for `Conv2d`
//! (`output elements · c_in/groups · kh · kw`) and `Linear` (`batch · in · out`); every other
//! layer counts 0 (their cost is a few operations per element, negligible next to these).

use crate::layer::display_name;
use candle_core::{DType, Device, ModuleT, Result, Tensor};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// One row of a [`Summary`]: a leaf layer call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRow {
    /// The layer's name (`"features.0"`; its kind when it has none).
    pub name: String,
    /// The layer's kind (`"Conv2d"`).
    pub kind: &'static str,
    /// The output shape.
    pub output: Vec<usize>,
    /// `(parameter, shape)` for each trainable parameter (`("weight", [96, 3, 11, 11])`);
    /// buffers such as batch norm's running statistics are not listed.
    pub params: Vec<(String, Vec<usize>)>,
    /// Number of scalar parameters of this layer.
    pub num_params: usize,
    /// Multiply–accumulate operations of this call.
    pub macs: u64,
}

/// What [`summary`] found: one row per leaf layer call, in execution order, and totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The input shape.
    pub input: Vec<usize>,
    /// The output shape of the model.
    pub output: Vec<usize>,
    /// The leaf layer calls in execution order.
    pub rows: Vec<LayerRow>,
    /// Total parameters (each tensor counted once, even when a layer runs twice).
    pub total_params: usize,
    /// Total multiply–accumulates of one forward pass.
    pub total_macs: u64,
}

#[derive(Default)]
struct Trace {
    rows: Vec<LayerRow>,
    seen: HashSet<candle_core::TensorId>,
    total_params: usize,
}

thread_local! {
    static TRACE: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

/// Whether a summary is being traced on this thread (layers skip [`record`] work otherwise).
pub fn tracing() -> bool {
    TRACE.with(|t| t.borrow().is_some())
}

/// Reports a leaf layer call to the trace of the current thread, if one is running (a no-op
/// otherwise). `own` is the layer's own name (see [`Layer::name`](crate::Layer::name)),
/// `params` its trainable parameters by local name, `macs` the call's multiply–accumulates.
/// Custom layers call this from their `forward` to appear in summaries.
pub fn record(
    own: Option<&str>,
    kind: &'static str,
    output: &Tensor,
    params: &[(&str, &Tensor)],
    macs: u64,
) {
    if !tracing() {
        return;
    }
    let name = display_name(own, kind);
    TRACE.with(|t| {
        if let Some(trace) = t.borrow_mut().as_mut() {
            for (_, p) in params {
                if trace.seen.insert(p.id()) {
                    trace.total_params += p.elem_count();
                }
            }
            trace.rows.push(LayerRow {
                name,
                kind,
                output: output.dims().to_vec(),
                params: params
                    .iter()
                    .map(|(n, p)| (n.to_string(), p.dims().to_vec()))
                    .collect(),
                num_params: params.iter().map(|(_, p)| p.elem_count()).sum(),
                macs,
            });
        }
    })
}

/// Summarises `model` for an input of `input_shape` (batch included, e.g. `[1, 3, 227, 227]`)
/// by running it once on the CPU, in eval mode, on zeros. `model` is any module, a trait object
/// included (`&dyn ModuleT`, `&dyn Layer`, a zoo `&dyn Model`). See [`summary_on`].
pub fn summary<M: ModuleT + ?Sized>(model: &M, input_shape: &[usize]) -> Result<Summary> {
    summary_on(model, input_shape, &Device::Cpu)
}

/// [`summary`] with the input on `device` (where the model's parameters are).
///
/// ```
/// use candle_core::Device;
/// use convnets_layers::{conv2d, summary, Conv2dConfig, ParamStore};
/// // Seed 001: a 5x5 convolution 192 -> 32 (padding 2) on 28x28 costs 120,422,400 multiplies.
/// let store = ParamStore::new(0, &Device::Cpu);
/// let conv = conv2d(192, 32, 5, Conv2dConfig::default().padding(2), store.vb().pp("conv"))?;
/// let s = summary(&conv, &[1, 192, 28, 28])?;
/// assert_eq!(s.total_macs, 120_422_400);
/// assert_eq!(s.rows[0].output, [1, 32, 28, 28]);
/// assert_eq!(s.total_params, 192 * 32 * 25 + 32);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn summary_on<M: ModuleT + ?Sized>(
    model: &M,
    input_shape: &[usize],
    device: &Device,
) -> Result<Summary> {
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            TRACE.with(|t| t.borrow_mut().take());
        }
    }
    if tracing() {
        candle_core::bail!(
            "summary: already summarising a model on this thread (nested summary call)"
        )
    }
    // Every layer works image by image in eval mode, so one image gives every row; the batch
    // only multiplies the first dimension and the MACs. A user-given shape is checked before
    // anything is allocated.
    let Some((&batch, image)) = input_shape.split_first() else {
        candle_core::bail!(
            "summary: the input shape is empty; give [batch, channels, height, width]"
        )
    };
    image
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= MAX_IMAGE_ELEMS)
        .ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "summary: an input image of {} is too large: over {} elements ({} GiB as f32)",
                shape(image),
                group_digits(MAX_IMAGE_ELEMS as u64),
                (MAX_IMAGE_ELEMS * 4) >> 30
            ))
        })?;
    let run_batch = batch.min(1);
    let mut run_shape = input_shape.to_vec();
    run_shape[0] = run_batch;
    let x = Tensor::zeros(run_shape.as_slice(), DType::F32, device)?;
    TRACE.with(|t| *t.borrow_mut() = Some(Trace::default()));
    let stop = Stop;
    let y = model.forward_t(&x, false)?;
    let mut trace = TRACE.with(|t| t.borrow_mut().take()).unwrap_or_default();
    drop(stop);
    let mut output = y.dims().to_vec();
    if batch != run_batch {
        let too_many = || {
            candle_core::Error::Msg(format!(
                "summary: a batch of {batch} overflows the multiply-accumulate count"
            ))
        };
        for row in &mut trace.rows {
            if let Some(b) = row.output.first_mut() {
                *b = batch;
            }
            row.macs = row.macs.checked_mul(batch as u64).ok_or_else(too_many)?;
        }
        if let Some(b) = output.first_mut() {
            *b = batch;
        }
    }
    let total_macs = trace
        .rows
        .iter()
        .try_fold(0u64, |n, r| n.checked_add(r.macs))
        .ok_or_else(|| {
            candle_core::Error::Msg(format!(
                "summary: a batch of {batch} overflows the multiply-accumulate count"
            ))
        })?;
    Ok(Summary {
        input: input_shape.to_vec(),
        output,
        rows: trace.rows,
        total_params: trace.total_params,
        total_macs,
    })
}

/// The largest input image [`summary`] accepts, in elements (4 GiB as f32): it allocates one
/// image and its activations.
pub const MAX_IMAGE_ELEMS: usize = 1 << 30;

/// Formats `n` with a comma every three digits: `62378344` → `"62,378,344"`.
///
/// ```
/// assert_eq!(convnets_layers::summary::group_digits(62_378_344), "62,378,344");
/// assert_eq!(convnets_layers::summary::group_digits(0), "0");
/// ```
pub fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn shape(dims: &[usize]) -> String {
    format!("{dims:?}")
}

impl fmt::Display for Summary {
    /// Two tables, as seed 002 prints them: every layer's output shape (and MACs), then the
    /// parameter shapes and counts of the layers that have parameters; then the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .chain(["Layer".len()])
            .max()
            .unwrap_or(5);
        let kind_w = self
            .rows
            .iter()
            .map(|r| r.kind.len())
            .chain(["Kind".len()])
            .max()
            .unwrap_or(4);
        let out_w = self
            .rows
            .iter()
            .map(|r| shape(&r.output).len())
            .chain(["Output shape".len()])
            .max()
            .unwrap_or(12);
        let macs: Vec<String> = self.rows.iter().map(|r| group_digits(r.macs)).collect();
        let macs_w = macs
            .iter()
            .map(|m| m.len())
            .chain(["MACs".len()])
            .max()
            .unwrap_or(4);
        writeln!(f, "Input shape: {}", shape(&self.input))?;
        writeln!(
            f,
            "{:<name_w$}  {:<kind_w$}  {:<out_w$}  {:>macs_w$}",
            "Layer", "Kind", "Output shape", "MACs"
        )?;
        writeln!(f, "{}", "-".repeat(name_w + kind_w + out_w + macs_w + 6))?;
        for (r, m) in self.rows.iter().zip(&macs) {
            writeln!(
                f,
                "{:<name_w$}  {:<kind_w$}  {:<out_w$}  {:>macs_w$}",
                r.name,
                r.kind,
                shape(&r.output),
                m
            )?;
        }
        writeln!(f)?;
        let with_params: Vec<&LayerRow> = self.rows.iter().filter(|r| r.num_params > 0).collect();
        let pshapes: Vec<String> = with_params
            .iter()
            .map(|r| {
                r.params
                    .iter()
                    .map(|(n, s)| format!("{n} {}", shape(s)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        let counts: Vec<String> = with_params
            .iter()
            .map(|r| group_digits(r.num_params as u64))
            .collect();
        let ps_w = pshapes
            .iter()
            .map(|s| s.len())
            .chain(["Parameter shapes".len()])
            .max()
            .unwrap_or(16);
        let n_w = counts
            .iter()
            .map(|s| s.len())
            .chain(["Params".len()])
            .max()
            .unwrap_or(6);
        writeln!(
            f,
            "{:<name_w$}  {:<kind_w$}  {:<ps_w$}  {:>n_w$}",
            "Layer", "Kind", "Parameter shapes", "Params"
        )?;
        writeln!(f, "{}", "-".repeat(name_w + kind_w + ps_w + n_w + 6))?;
        for ((r, s), n) in with_params.iter().zip(&pshapes).zip(&counts) {
            writeln!(
                f,
                "{:<name_w$}  {:<kind_w$}  {:<ps_w$}  {:>n_w$}",
                r.name, r.kind, s, n
            )?;
        }
        writeln!(f)?;
        writeln!(f, "Output shape: {}", shape(&self.output))?;
        writeln!(
            f,
            "Total params: {}",
            group_digits(self.total_params as u64)
        )?;
        write!(f, "Total MACs:   {}", group_digits(self.total_macs))
    }
}
