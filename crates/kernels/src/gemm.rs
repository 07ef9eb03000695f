//! A checked, safe wrapper around `gemm::gemm` for `f32`, and thread-local scratch buffers.

use gemm::Parallelism;
use rayon::prelude::*;
use std::cell::RefCell;

use super::isa::{isa, Isa};
use super::portable;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};

/// A row-major-or-strided matrix view: `data[i * rs + j * cs]` is element `(i, j)`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// `dst[m, n] (+)= lhs[m, k] @ rhs[k, n]`; `dst` is row-major with row stride `dst_rs`.
/// Accumulates into `dst` when `accumulate`, overwrites it otherwise.
///
/// `gemm` computes a row-major product as its transpose, `dst^T = rhs^T @ lhs^T` into a
/// column-major destination, and runs at full speed only when the left operand of that is
/// column-major, that is when `rhs` is row-major: otherwise it reads rows across the packing
/// and runs 5-10x slower (m = 144, n = 16, k = 1024: 10 against 100 GFLOP/s on one Zen 4
/// core). Where `rhs` is not row-major, the product goes through the cheaper of two copies:
/// `rhs` into a row-major scratch (`k * n` floats), or `lhs` into a column-major scratch
/// (`m * k`) with the result computed column-major and added back (`m * n`): the weight
/// gradient of a convolution, `dy[c_out, positions] @ col^T`, takes the second.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * dst_rs..i * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    // The bounds checks that make the raw-pointer calls below sound.
    assert!(last(m, n, dst_rs, 1) < dst.len(), "sgemm: dst too small");
    check_operands("sgemm", (m, n, k), lhs, rhs);
    let (copy_rhs, copy_lhs) = (k * n, m * k + m * n);
    // Copies are worth it when they are small beside the product's multiply-adds.
    if rhs.cs == 1
        || n == 1
        || k < RELAYOUT_MIN_K
        || copy_rhs.min(copy_lhs) * RELAYOUT_RATIO > m * n * k
    {
        // SAFETY: checked above; `dst` is borrowed mutably so it aliases neither operand.
        unsafe { gemm_raw(m, n, k, dst, (dst_rs, 1), accumulate, lhs, rhs, par) };
    } else if copy_rhs <= copy_lhs {
        with_scratch(k * n, |rows| {
            relayout(rhs, k, n, rows);
            let rhs = Mat {
                data: rows,
                rs: n,
                cs: 1,
            };
            // SAFETY: as above; `rows` holds the k x n row-major copy.
            unsafe { gemm_raw(m, n, k, dst, (dst_rs, 1), accumulate, lhs, rhs, par) };
        })
    } else {
        with_scratch(m * k + m * n, |scratch| {
            let (cols, out) = scratch.split_at_mut(m * k);
            // lhs^T row-major [k, m] is lhs column-major.
            let lhs_t = Mat {
                data: lhs.data,
                rs: lhs.cs,
                cs: lhs.rs,
            };
            relayout(lhs_t, k, m, cols);
            let lhs = Mat {
                data: cols,
                rs: 1,
                cs: m,
            };
            // SAFETY: `cols` holds lhs column-major (m x k), `out` the m x n column-major
            // result; neither aliases `rhs`.
            unsafe { gemm_raw(m, n, k, out, (1, m), false, lhs, rhs, par) };
            // out^T row-major [n, m] is out column-major: add it back row by row.
            for (i0, i1) in tiles(m) {
                for (j0, j1) in tiles(n) {
                    for i in i0..i1 {
                        let row = &mut dst[i * dst_rs..][..n];
                        for j in j0..j1 {
                            let v = out[j * m + i];
                            row[j] = if accumulate { row[j] + v } else { v };
                        }
                    }
                }
            }
        })
    }
}

/// `dst[m, n] += lhs[m, k] @ rhs[k, n]` with `dst` column-major (element `(i, j)` at
/// `j * m`), `lhs` column-major (`rs == 1`: `gemm`'s fast layout), `rhs` any strides.
///
/// # Panics
/// If `lhs` is not column-major or a view reaches past its slice.
pub(crate) fn sgemm_acc_col_major(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: Mat<'_>,
    rhs: Mat<'_>,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert_eq!(lhs.rs, 1, "sgemm_acc_col_major: lhs not column-major");
    assert!(m * n <= dst.len(), "sgemm_acc_col_major: dst too small");
    check_operands("sgemm_acc_col_major", (m, n, k), lhs, rhs);
    // SAFETY: the bounds are checked above; `dst` is borrowed mutably.
    unsafe { gemm_raw(m, n, k, dst, (1, m), true, lhs, rhs, Parallelism::None) }
}

/// The most a relayout copy in [`sgemm`] may cost: `1 / RELAYOUT_RATIO` of the product's
/// multiply-adds (a copied float costs about as much as several of them).
const RELAYOUT_RATIO: usize = 16;

/// The shortest inner dimension for a relayout copy in [`sgemm`]: over fewer than 256 terms
/// `gemm`'s slow layout ran within a few % of its fast one (m = 32, n = 288, k = 256: 108
/// against 106-108 GFLOP/s on one core), and the copy costs more than it saves (LeNet-5's
/// small weight-gradient products).
const RELAYOUT_MIN_K: usize = 256;

/// Asserts that `lhs` (`m x k`) and `rhs` (`k x n`) lie inside their slices (`m`, `n`, `k`
/// nonzero), naming `op`.
fn check_operands(op: &str, (m, n, k): (usize, usize, usize), lhs: Mat<'_>, rhs: Mat<'_>) {
    assert!(
        last(m, k, lhs.rs, lhs.cs) < lhs.data.len(),
        "{op}: lhs too small"
    );
    assert!(
        last(k, n, rhs.rs, rhs.cs) < rhs.data.len(),
        "{op}: rhs too small"
    );
}

/// Offset of the last element of a `rows x cols` view with strides `rs`, `cs`.
fn last(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    (rows - 1) * rs + (cols - 1) * cs
}

/// Tiles of 32 over `0..len`: the copies go tile by tile, so the strided side stays in cache.
fn tiles(len: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..len).step_by(32).map(move |a| (a, (a + 32).min(len)))
}

/// Copies the `rows x cols` view `src` into `dst` row-major: row by row where `src`'s rows
/// are contiguous, in 8 x 8 tiles where its columns are (a transpose), element by element
/// otherwise.
pub(crate) fn relayout(src: Mat<'_>, rows: usize, cols: usize, dst: &mut [f32]) {
    let dst = &mut dst[..rows * cols];
    if src.cs == 1 {
        for (i, row) in dst.chunks_exact_mut(cols).enumerate() {
            row.copy_from_slice(&src.data[i * src.rs..][..cols]);
        }
    } else if src.rs == 1 {
        for i0 in (0..rows).step_by(8) {
            let ib = (rows - i0).min(8);
            for j0 in (0..cols).step_by(8) {
                let jb = (cols - j0).min(8);
                let mut tile = [[0f32; 8]; 8];
                for (j, t) in tile.iter_mut().enumerate().take(jb) {
                    let col = &src.data[(j0 + j) * src.cs + i0..][..ib];
                    // A whole tile's column as one fixed-size copy, not a `memcpy` call.
                    match <&[f32; 8]>::try_from(col) {
                        Ok(col) => *t = *col,
                        Err(_) => t[..ib].copy_from_slice(col),
                    }
                }
                for (i, row) in dst[i0 * cols..].chunks_exact_mut(cols).take(ib).enumerate() {
                    for (d, t) in row[j0..j0 + jb].iter_mut().zip(&tile) {
                        *d = t[i];
                    }
                }
            }
        }
    } else {
        for (i, row) in dst.chunks_exact_mut(cols).enumerate() {
            for (j, d) in row.iter_mut().enumerate() {
                *d = src.data[i * src.rs + j * src.cs];
            }
        }
    }
}

/// `gemm::gemm` for `f32` with `dst` at strides `(rs, cs)`, `alpha = beta = 1`.
///
/// # Safety
/// Every element the sizes and strides address lies inside its slice.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    (dst_rs, dst_cs): (usize, usize),
    accumulate: bool,
    lhs: Mat<'_>,
    rhs: Mat<'_>,
    par: Parallelism,
) {
    // SAFETY: the caller vouches for the bounds; `dst` is borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a thread-local scratch buffer of at least `len` elements (contents
/// unspecified). The buffer is taken out of the thread-local pool while `f` runs, so nested
/// calls on the same thread (rayon work stealing) get their own.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    let r = f(&mut buf[..len]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}

/// The bounds every `gemm_nn` micro-kernel (AVX2, AVX-512) relies on for its unsafe loads and
/// stores: the packed lhs holds `m * k` floats, each of the `k` rhs rows (at `offs`) `n`, the
/// `m` destination rows (stride `ldc`) `n`, and a row bias `m`.
///
/// # Panics
/// When one is violated, naming it.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_gemm_nn(
    m: usize,
    n: usize,
    k: usize,
    ap: &[f32],
    b: &[f32],
    offs: &[usize],
    c: &[f32],
    ldc: usize,
    init: &Init<'_>,
) {
    assert!(ap.len() >= m * k, "gemm_nn: packed lhs too small");
    assert!(offs.len() >= k, "gemm_nn: fewer row offsets than k");
    assert!(
        offs[..k].iter().all(|&o| o + n <= b.len()),
        "gemm_nn: rhs too small"
    );
    assert!((m - 1) * ldc + n <= c.len(), "gemm_nn: dst too small");
    if let Init::RowBias(bias) = init {
        assert!(bias.len() >= m, "gemm_nn: bias too small");
    }
}

/// Images summed by one weight-gradient product: `imgs` of them, image `t`'s `a` at
/// `t * a_img`, its `b` at `t * b_img`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NtBatch {
    pub imgs: usize,
    pub a_img: usize,
    pub b_img: usize,
}

impl NtBatch {
    /// One image.
    pub(crate) fn one() -> Self {
        Self {
            imgs: 1,
            a_img: 0,
            b_img: 0,
        }
    }
}

/// The bounds the dot-product kernels rely on for `c[m, n] += sum over images of
/// a[m, len] @ b[n, len]^T`: in image `t`, row `i` of `a` at `a[t * a_img + i * lda..][..len]`,
/// row `j` of `b` at `b[t * b_img + offs[j]..][..len]`; `c` with row stride `ldc`.
///
/// # Panics
/// When one is violated, naming it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_gemm_nt(
    m: usize,
    n: usize,
    len: usize,
    batch: NtBatch,
    a: &[f32],
    lda: usize,
    b: &[f32],
    offs: &[usize],
    c: &[f32],
    ldc: usize,
) {
    let last = batch.imgs.saturating_sub(1);
    assert!(
        m == 0 || last * batch.a_img + (m - 1) * lda + len <= a.len(),
        "gemm_nt: a too small"
    );
    assert!(offs.len() >= n, "gemm_nt: fewer row offsets than rows of b");
    assert!(
        offs[..n]
            .iter()
            .all(|&o| last * batch.b_img + o + len <= b.len()),
        "gemm_nt: b too small"
    );
    assert!(
        m == 0 || n == 0 || (m - 1) * ldc + n <= c.len(),
        "gemm_nt: c too small"
    );
}

/// What the output of [`Lhs::mul_offsets`] (and [`Lhs::mul_rows`]) holds before the product is added.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Init<'a> {
    /// Zeros: `c = a @ b`.
    Zero,
    /// `c[i, :] = bias[i] + (a @ b)[i, :]`; `bias` has `m` elements.
    RowBias(&'a [f32]),
}

/// Packs `a[m, k]` (element `(i, j)` at `data[i * rs + j * cs]`) into panels of `mr` rows
/// for the register-blocked kernels: panel `p` starts at `p * mr * k` and holds
/// `[k][rows]`, with `rows = min(mr, m - p * mr)`. `out` has at least `m * k` elements.
pub(crate) fn pack_a(
    mr: usize,
    m: usize,
    k: usize,
    data: &[f32],
    rs: usize,
    cs: usize,
    out: &mut [f32],
) {
    let mut o = out[..m * k].iter_mut();
    for m0 in (0..m).step_by(mr) {
        let rows = (m - m0).min(mr);
        for kk in 0..k {
            for (i, o) in (&mut o).take(rows).enumerate() {
                *o = data[(m0 + i) * rs + kk * cs];
            }
        }
    }
}

/// The matrix-product kernel an [`Lhs`] is prepared for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// `gemm` on a row-major copy.
    Portable,
    /// `avx512::gemm_nn` on panels of `avx512::MR` rows.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// `avx2::gemm_nn` on panels of `avx2::MR` rows.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The kernel of the selected instruction set.
    fn selected() -> Self {
        match isa() {
            Isa::Portable => Kernel::Portable,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Kernel::Avx512,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Kernel::Avx2,
            #[cfg(not(target_arch = "x86_64"))]
            _ => Kernel::Portable,
        }
    }

    /// Rows per packed panel: a row range of the product must start at a multiple.
    fn panel(self) -> usize {
        match self {
            Kernel::Portable => 8,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::MR,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::MR,
        }
    }
}

/// A small left operand `[m, k]` (a convolution weight, or its transpose) prepared once for
/// many products with large right operands read in place: packed in panels for the AVX-512
/// or AVX2 kernels when those run ([`isa`]), a row-major copy for `gemm` otherwise.
pub(crate) struct Lhs {
    m: usize,
    k: usize,
    data: Vec<f32>,
    kernel: Kernel,
}

impl Lhs {
    /// Prepares `a` `[m, k]`.
    pub(crate) fn new(m: usize, k: usize, a: Mat<'_>) -> Self {
        let kernel = Kernel::selected();
        let data = if kernel == Kernel::Portable {
            let mut data = Vec::with_capacity(m * k);
            for i in 0..m {
                data.extend((0..k).map(|j| a.data[i * a.rs + j * a.cs]));
            }
            data
        } else {
            let mut data = vec![0.0; m * k];
            pack_a(kernel.panel(), m, k, a.data, a.rs, a.cs, &mut data);
            data
        };
        Self { m, k, data, kernel }
    }

    /// The rows `m`.
    pub(crate) fn m(&self) -> usize {
        self.m
    }

    /// The inner dimension `k`.
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Whether products of `n` columns, rows of `b` read in place through offsets, are as
    /// fast as longer ones: on the AVX2 / AVX-512 paths, `n` a multiple of 16 columns (whole
    /// 16-column blocks of the AVX2 kernel, whole vectors of the AVX-512 one); never on the
    /// portable path, where `gemm` wants its columns in one long run. The padded
    /// convolutions then multiply row by row instead of over the padded width (whose extra
    /// columns are computed, then dropped in a copy): forward at batch 128, two threads,
    /// SimpleCNN's conv1 1.95-2.24 → 1.49-1.67 ms and conv2 7.4 → 5.8-6.6 ms on `avx2`,
    /// ResNet-20's stage 1 and 2 about 5 and 10 % faster forward and input gradient; on
    /// `avx512` SimpleCNN's 1.64-2.12 → 1.38-1.46 and 6.4-6.8 → 5.7-5.8 ms, ResNet-20's stage
    /// 2 6 % faster, stage 1 level (`cargo xtask bench kernels`, alternating runs, AMD EPYC
    /// Zen 4, 2026-12-06).
    pub(crate) fn row_products_pay(&self, n: usize) -> bool {
        self.kernel != Kernel::Portable && n.is_multiple_of(16)
    }

    /// `c[m, n] = self @ b[k, n]` where row `kk` of `b` is `b[offs[kk]..][..n]`, with
    /// the rows of `c` split over the rayon threads when `threads`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mul_offsets(
        &self,
        n: usize,
        b: &[f32],
        offs: &[usize],
        c: &mut [f32],
        ldc: usize,
        init: Init<'_>,
        threads: bool,
    ) {
        let threads = if threads {
            rayon::current_num_threads()
        } else {
            1
        };
        let panel = self.kernel.panel();
        if threads < 2 || self.m <= panel || n == 0 {
            return self.mul_rows(0, self.m, n, b, offs, c, ldc, init);
        }
        // Row blocks start at multiples of the panel height, where packed panels start.
        let per = self.m.div_ceil(threads).div_ceil(panel) * panel;
        let c = &mut c[..(self.m - 1) * ldc + n];
        c.par_chunks_mut(per * ldc).enumerate().for_each(|(i, c)| {
            let m0 = i * per;
            self.mul_rows(m0, per.min(self.m - m0), n, b, offs, c, ldc, init)
        });
    }

    /// Rows `m0..m0 + rows` of the product into `c` (whose row 0 is row `m0`); `m0` is a
    /// multiple of the panel height.
    #[allow(clippy::too_many_arguments)]
    fn mul_rows(
        &self,
        m0: usize,
        rows: usize,
        n: usize,
        b: &[f32],
        offs: &[usize],
        c: &mut [f32],
        ldc: usize,
        init: Init<'_>,
    ) {
        let k = self.k;
        let a = &self.data[m0 * k..(m0 + rows) * k];
        let init = match init {
            Init::RowBias(bias) => Init::RowBias(&bias[m0..m0 + rows]),
            other => other,
        };
        match self.kernel {
            Kernel::Portable => {}
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => return avx512::gemm_nn(rows, n, k, a, b, offs, c, ldc, init),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => return avx2::gemm_nn(rows, n, k, a, b, offs, c, ldc, init),
        }
        if rows == 0 || n == 0 {
            return;
        }
        if let Init::RowBias(bias) = init {
            for (i, &v) in bias.iter().enumerate() {
                c[i * ldc..i * ldc + n].fill(v);
            }
        }
        let accumulate = matches!(init, Init::RowBias(_));
        let lhs = Mat {
            data: a,
            rs: k,
            cs: 1,
        };
        // `gemm` wants one row stride: use b in place when the offsets have one, gather the
        // rows otherwise.
        let ldb = if k > 1 { offs[1] - offs[0] } else { n };
        if offs[..k]
            .iter()
            .enumerate()
            .all(|(kk, &o)| o == offs[0] + kk * ldb)
        {
            let rhs = Mat {
                data: &b[offs[0]..],
                rs: ldb,
                cs: 1,
            };
            return sgemm(rows, n, k, c, ldc, accumulate, lhs, rhs, Parallelism::None);
        }
        with_scratch(k * n, |rows_b| {
            for (dst, &o) in rows_b.chunks_exact_mut(n).zip(offs) {
                dst.copy_from_slice(&b[o..o + n]);
            }
            let rhs = Mat {
                data: rows_b,
                rs: n,
                cs: 1,
            };
            sgemm(rows, n, k, c, ldc, accumulate, lhs, rhs, Parallelism::None)
        })
    }
}

/// `c[m, n] += a[m, len] @ b[n, len]^T` (row strides `lda`, `ldb`, `ldc`), one thread:
/// through [`gemm_nt_gather`] when that pays off, otherwise in `gemm`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_nt(
    m: usize,
    n: usize,
    len: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 || len == 0 {
        return;
    }
    if nt_dot_pays(n) {
        let rows: Vec<usize> = (0..n).map(|j| j * ldb).collect();
        gemm_nt_gather(m, n, len, NtBatch::one(), a, lda, b, &rows, c, ldc);
        return;
    }
    let lhs = Mat {
        data: a,
        rs: lda,
        cs: 1,
    };
    // b^T: element (i, j) of [len, n] is b[j, i].
    let rhs = Mat {
        data: b,
        rs: 1,
        cs: ldb,
    };
    sgemm(m, n, len, c, ldc, true, lhs, rhs, Parallelism::None);
}

/// Whether the AVX2 or AVX-512 kernels run: then the dot-product kernels
/// ([`gemm_nt_gather`]) take every weight-gradient product and large FC forward; the
/// portable path's 128-bit one only the shapes [`nt_dot_pays`] names.
pub(crate) fn nt_gather_batches() -> bool {
    Kernel::selected() != Kernel::Portable
}

/// Whether [`gemm_nt_gather`] beats `gemm` for the weight gradient of a convolution: `c[m,
/// n] += a[m, positions] @ b[n, positions]^T`, `m` output channels (per group), `n` the
/// unfolded rows (input channels x kernel taps). Always with the AVX2 / AVX-512 kernels. On
/// the portable path (128-bit vectors) only for at most [`PORTABLE_DOT_MAX_ROWS`] unfolded
/// rows, the convolutions of one to three input channels: there `gemm`'s product is too thin
/// to hide its packing (LeNet-5's and MnistNet's first weight gradient 2.5x faster as dot
/// products); with more rows `gemm`, given its fast layout by [`sgemm`], was as fast or up to
/// 1.4x faster (ResNet-20's stage 1 and 2: 80 against 89-117 GFLOP/s on two threads; `cargo
/// xtask bench kernels --paths portable`, AMD EPYC Zen 4, 2026-12-05).
pub(crate) fn nt_dot_pays(n: usize) -> bool {
    nt_gather_batches() || n <= PORTABLE_DOT_MAX_ROWS
}

/// See [`nt_dot_pays`].
const PORTABLE_DOT_MAX_ROWS: usize = 32;

/// Rows of `a` per register block of the dot-product kernels (every path).
pub(crate) const DOT_MR: usize = 2;
/// Rows of `b` per register block of the dot-product kernels.
pub(crate) const DOT_NR: usize = 6;

/// One register block of the dot-product kernels (`avx2::dot_block`, `avx512::dot_block`,
/// `portable::dot_block`),
/// `(len, imgs, a, a_img, lda, b, b_img, offs, c, ldc)`: see [`gemm_nt_dot`].
pub(crate) type DotBlock = unsafe fn(
    usize,
    usize,
    *const f32,
    usize,
    usize,
    *const f32,
    usize,
    *const usize,
    *mut f32,
    usize,
);

/// An instruction set's choice of [`DotBlock`] for a `rows x cols` block.
pub(crate) type DotBlockFor = fn(usize, usize) -> DotBlock;

/// `c[m, n] += sum over images of a[m, len] @ b[n, len]^T` (`a` with row stride `lda`) where
/// row `j` of `b` is `b[offs[j]..][..len]` (shifted windows of a padded image: the weight
/// gradient of an implicit convolution, no im2col); image `t` at `t * batch.a_img` and
/// `t * batch.b_img`, as register-blocked dot products ([`gemm_nt_dot`]) in the selected
/// instruction set's kernel (the portable one on 128-bit `wide` vectors).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_nt_gather(
    m: usize,
    n: usize,
    len: usize,
    batch: NtBatch,
    a: &[f32],
    lda: usize,
    b: &[f32],
    offs: &[usize],
    c: &mut [f32],
    ldc: usize,
) {
    let block_for: DotBlockFor = match Kernel::selected() {
        Kernel::Portable => portable::dot_block_for,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => avx2::dot_block_for,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => avx512::dot_block_for,
    };
    gemm_nt_dot(block_for, m, n, len, batch, a, lda, b, offs, c, ldc);
}

/// [`gemm_nt_gather`] as register-blocked dot products, `block_for(rows, cols)` giving the
/// instruction set's kernel of each block: 12 accumulators ([`DOT_MR`] rows of `a` x
/// [`DOT_NR`] rows of `b`), each summing a row pair lane-wise over all the images, reduced
/// horizontally once at the end (which is what keeps short rows, such as 8x8 maps,
/// efficient). The weight gradient of a convolution `dy[og, N] @ col[K, N]^T` summed over
/// images this way needs no unfolding and no transpose; the transpose into [`Lhs`]'s GEMM it
/// replaced ran ResNet-20's first-stage weight gradient at half the speed.
///
/// # Panics
/// If a slice is too short for the sizes (or `block_for` refuses: its CPU lacks the
/// instructions).
#[allow(clippy::too_many_arguments)]
fn gemm_nt_dot(
    block_for: DotBlockFor,
    m: usize,
    n: usize,
    len: usize,
    batch: NtBatch,
    a: &[f32],
    lda: usize,
    b: &[f32],
    offs: &[usize],
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || n == 0 || len == 0 || batch.imgs == 0 {
        return;
    }
    check_gemm_nt(m, n, len, batch, a, lda, b, offs, c, ldc);
    let NtBatch { imgs, a_img, b_img } = batch;
    // Blocks of `b` rows outside, of `a` rows inside: the windows of one block stay in L1
    // while every row pair of `a` streams past them.
    for j0 in (0..n).step_by(DOT_NR) {
        let cols = (n - j0).min(DOT_NR);
        for i0 in (0..m).step_by(DOT_MR) {
            let rows = (m - i0).min(DOT_MR);
            let block = block_for(rows, cols);
            // SAFETY: `block_for` checked that the CPU has the block's instructions; rows
            // i0..i0 + rows of `a` and the rows of `b` at offs[j0..j0 + cols] hold `len`
            // floats in every image, and `c`'s block is inside `c`, by check_gemm_nt.
            unsafe {
                block(
                    len,
                    imgs,
                    a.as_ptr().add(i0 * lda),
                    a_img,
                    lda,
                    b.as_ptr(),
                    b_img,
                    offs.as_ptr().add(j0),
                    c.as_mut_ptr().add(i0 * ldc + j0),
                    ldc,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 20) as f32 / 4096.0
                    - 0.5
            })
            .collect()
    }

    /// `sgemm` against a plain loop for operands in every layout, sizes that take each of
    /// its routes (in place; `rhs` copied row-major; `lhs` copied column-major with the
    /// result added back; too short or too small to copy), overwriting and accumulating.
    #[test]
    fn sgemm_matches_loops_in_every_layout() {
        // (m, n, k): the route follows from the copy sizes, the inner dimension and the
        // layouts: rhs copied (40 x 33 x 300, 64 x 5 x 300), lhs copied (3 x 50 x 300), in
        // place (k under 256, one column, too small).
        let sizes = [
            (40, 33, 300),
            (3, 50, 300),
            (64, 5, 300),
            (40, 33, 70),
            (2, 2, 3),
            (17, 1, 9),
        ];
        for (m, n, k) in sizes {
            let a = data(m * k, 1);
            let b = data(k * n, 2);
            for (a_rows, b_rows, accumulate) in [
                (true, true, false),
                (true, false, true),
                (false, true, true),
                (false, false, false),
            ] {
                let lhs = if a_rows {
                    Mat {
                        data: &a,
                        rs: k,
                        cs: 1,
                    }
                } else {
                    Mat {
                        data: &a,
                        rs: 1,
                        cs: m,
                    }
                };
                let rhs = if b_rows {
                    Mat {
                        data: &b,
                        rs: n,
                        cs: 1,
                    }
                } else {
                    Mat {
                        data: &b,
                        rs: 1,
                        cs: k,
                    }
                };
                let ldc = n + 3;
                let start = data(m * ldc, 3);
                let mut want = start.clone();
                for i in 0..m {
                    for j in 0..n {
                        let dot: f32 = (0..k)
                            .map(|t| {
                                lhs.data[i * lhs.rs + t * lhs.cs]
                                    * rhs.data[t * rhs.rs + j * rhs.cs]
                            })
                            .sum();
                        want[i * ldc + j] = if accumulate {
                            want[i * ldc + j] + dot
                        } else {
                            dot
                        };
                    }
                }
                let mut got = start.clone();
                sgemm(
                    m,
                    n,
                    k,
                    &mut got,
                    ldc,
                    accumulate,
                    lhs,
                    rhs,
                    Parallelism::None,
                );
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
                        "{m}x{n}x{k} a_rows {a_rows} b_rows {b_rows} acc {accumulate}: [{i}] {g} vs {w}"
                    );
                }
            }
        }
    }

    /// Every block shape and tail of the dot-product kernels of each instruction set the CPU
    /// has (and the portable one) against a plain loop, one image and three summed.
    #[test]
    fn nt_dot_matches_loops() {
        let kernels: Vec<(&str, bool, DotBlockFor)> = vec![
            ("portable", true, portable::dot_block_for),
            #[cfg(target_arch = "x86_64")]
            ("AVX2", Isa::Avx2.supported(), avx2::dot_block_for),
            #[cfg(target_arch = "x86_64")]
            ("AVX-512", Isa::Avx512.supported(), avx512::dot_block_for),
        ];
        for (name, supported, block_for) in kernels {
            if !supported {
                // Straight to stderr: libtest captures eprintln!, and CI must show the skip.
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIP: this CPU has no {name}; its dot-product kernels are not tested"
                );
                continue;
            }
            for (m, n, len) in [
                (1, 1, 1),
                (2, 6, 8),
                (16, 144, 1088),
                (3, 7, 9),
                (5, 13, 78),
                (16, 27, 33),
                (4, 5, 15),
            ] {
                let (lda, ldc) = (len + 3, n + 2);
                // Overlapping, shifted rows of b, as the windows of a padded image are.
                let offs: Vec<usize> = (0..n).map(|j| (j * 7) % 41 + j * len / 2).collect();
                let b_img = offs.iter().max().map_or(0, |&o| o + len) + 5;
                let a_img = m * lda + 2;
                for imgs in [1, 3] {
                    let a = data(imgs * a_img, 11);
                    let b = data(imgs * b_img, 12);
                    let start = data(m * ldc, 13);
                    let mut c = start.clone();
                    let batch = NtBatch { imgs, a_img, b_img };
                    gemm_nt_dot(block_for, m, n, len, batch, &a, lda, &b, &offs, &mut c, ldc);
                    for i in 0..m {
                        for j in 0..ldc {
                            let got = c[i * ldc + j];
                            if j >= n {
                                assert_eq!(got, start[i * ldc + j], "column {j} past n written");
                                continue;
                            }
                            let mut want = f64::from(start[i * ldc + j]);
                            for t in 0..imgs {
                                for p in 0..len {
                                    want += f64::from(a[t * a_img + i * lda + p])
                                        * f64::from(b[t * b_img + offs[j] + p]);
                                }
                            }
                            assert!(
                                (f64::from(got) - want).abs() <= 1e-4 * (1.0 + want.abs()),
                                "{name} ({m},{n},{len}) x {imgs} c[{i},{j}] = {got}, want {want}"
                            );
                        }
                    }
                }
            }
        }
    }
}
