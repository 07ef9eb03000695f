//! The kernel switch. In its own test binary: `set_kernels` is process-wide.

use anyhow::Result;
use candle_core::{Device, Tensor, Var};
use convnets_layers::ops::{self, kernels, set_kernels, Conv2dParams, Kernels, Pool2dParams};

/// Max-pool gradient of a 2x2 window of equal values: all of it goes to the first cell, on
/// either path.
fn pool_grad() -> Result<Vec<f32>> {
    let x = Var::from_vec(vec![0f32, 0., 0., 0.], (1, 1, 2, 2), &Device::Cpu)?;
    let y = ops::max_pool2d(x.as_tensor(), &Pool2dParams::square(2, 2))?;
    let g = y.sum_all()?.backward()?;
    Ok(g.get(x.as_tensor())
        .ok_or_else(|| anyhow::anyhow!("no gradient"))?
        .flatten_all()?
        .to_vec1()?)
}

/// ReLU gradient at `[-1, 0, 1]`: the two paths differ at 0 (native follows PyTorch, no
/// gradient; candle's reference passes it), which tells them apart.
fn relu_grad() -> Result<Vec<f32>> {
    let x = Var::new(&[-1f32, 0., 1.], &Device::Cpu)?;
    let g = ops::relu(x.as_tensor())?.sum_all()?.backward()?;
    Ok(g.get(x.as_tensor())
        .ok_or_else(|| anyhow::anyhow!("no gradient"))?
        .to_vec1()?)
}

fn conv() -> Result<Vec<f32>> {
    let x = Tensor::arange(0f32, 50., &Device::Cpu)?.reshape((1, 2, 5, 5))?;
    let w = Tensor::arange(0f32, 36., &Device::Cpu)?.reshape((2, 2, 3, 3))?;
    let p = Conv2dParams {
        stride: [2, 1],
        padding: [1, 0],
        dilation: [1, 2],
        groups: 1,
    };
    Ok(ops::conv2d(&x, &w, None, &p)?.flatten_all()?.to_vec1()?)
}

#[test]
fn switch_selects_the_implementation() -> Result<()> {
    let default =
        if std::env::var("CONVNETS_KERNELS").is_ok_and(|v| v.eq_ignore_ascii_case("reference")) {
            Kernels::Reference
        } else {
            Kernels::Native
        };
    assert_eq!(kernels(), default);
    set_kernels(Kernels::Native);
    assert_eq!(kernels(), Kernels::Native);
    let (native_pool, native_conv) = (pool_grad()?, conv()?);
    assert_eq!(relu_grad()?, [0., 0., 1.]);
    set_kernels(Kernels::Reference);
    assert_eq!(kernels(), Kernels::Reference);
    let (ref_pool, ref_conv) = (pool_grad()?, conv()?);
    assert_eq!(relu_grad()?, [0., 1., 1.]);
    assert_eq!(native_pool, [1., 0., 0., 0.]);
    assert_eq!(ref_pool, [1., 0., 0., 0.]);
    assert_eq!(native_conv, ref_conv);
    set_kernels(default);
    Ok(())
}

/// The kernel path is the one the environment asked for when the CPU has it (so that `cargo
/// xtask ci`'s runs with `CONVNETS_ISA=avx2` and `=portable` really test those paths), the
/// best one below it otherwise, and the best one the CPU has when nothing is asked.
#[test]
fn isa_is_the_requested_one() {
    use convnets_layers::ops::Isa;
    let best_at_most = |cap: Isa| {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .find(|i| *i <= cap && i.supported())
            .unwrap_or(Isa::Portable)
    };
    let requested = std::env::var("CONVNETS_ISA")
        .ok()
        .filter(|v| !v.is_empty())
        .and_then(|v| Isa::parse(&v));
    let want = match requested {
        Some(isa) => best_at_most(isa),
        None if std::env::var_os("CONVNETS_NO_AVX512").is_some() => best_at_most(Isa::Avx2),
        None => best_at_most(Isa::Avx512),
    };
    eprintln!("kernel path: {} (requested {requested:?})", ops::isa());
    assert_eq!(ops::isa(), want.name());
    if let Some(isa) = requested.filter(|i| i.supported()) {
        assert_eq!(
            ops::isa(),
            isa.name(),
            "CONVNETS_ISA={isa} was not honoured"
        );
    }
}
