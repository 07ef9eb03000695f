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
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    // The bounds checks that make the raw-pointer call below sound.
    assert!(last(m, n, dst_rs, 1) < dst.len(), "sgemm: dst too small");
    assert!(
        last(m, k, lhs.rs, lhs.cs) < lhs.data.len(),
        "sgemm: lhs too small"
    );
    assert!(
        last(k, n, rhs.rs, rhs.cs) < rhs.data.len(),
        "sgemm: rhs too small"
    );
    // SAFETY: every element addressed by (m, n, k) and the strides lies inside the slices
    // (checked above); `dst` is borrowed mutably so it does not alias `lhs` or `rhs`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
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

/// What the output of [`Lhs::mul`] holds before the product is added.
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

    /// The inner dimension `k`.
    pub(crate) fn k(&self) -> usize {
        self.k
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
    if nt_dot_pays(m, len) {
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

/// Whether [`gemm_nt_gather`] beats `gemm` for the weight gradient of a convolution with
/// `m` output channels (per group) over `positions` output positions per image. Always with
/// the AVX2 / AVX-512 kernels. On the portable path (128-bit vectors) only for 16 to 32
/// output channels over at least 256 positions, where `gemm` packs a 16-32-row operand for
/// each image's long product: ResNet-20's stage-1 weight gradient ran 4x faster as dot
/// products (14-22 ms against 58-66 ms on one thread), SimpleCNN's first 1.5x; with more
/// channels or fewer positions (SimpleCNN conv2/3, ResNet-20 stage 3, LeNet-5's and
/// MnistNet's second) `gemm` was up to 3x faster (`cargo xtask bench kernels --paths
/// portable --threads 1`, three runs each way, AMD EPYC Zen 4, 2026-12-05).
pub(crate) fn nt_dot_pays(m: usize, positions: usize) -> bool {
    nt_gather_batches() || ((16..=32).contains(&m) && positions >= 256)
}

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
