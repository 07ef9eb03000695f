//! Which set of micro-kernels runs: chosen once per process from what the CPU has and the
//! environment.
//!
//! - `CONVNETS_ISA=avx512|avx2|portable` forces a path. A path the CPU cannot run falls back
//!   (with one warning on stderr) to the best one below it that it can: `avx512` → `avx2` →
//!   `portable`. An unknown value warns and is ignored.
//! - `CONVNETS_NO_AVX512` (any value; kept from before the AVX2 kernels) means "anything but
//!   AVX-512": the AVX2 kernels where the CPU has AVX2 and FMA, else the portable path.
//!   `CONVNETS_ISA`, when set, wins.
//! - Otherwise the best path the CPU has.
//!
//! The portable path is the `gemm` crate (which does its own run-time dispatch) and scalar
//! loops the compiler vectorises for the baseline target.

use std::sync::OnceLock;

/// A set of micro-kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// No hand-written kernels: `gemm` and plain loops.
    Portable,
    /// 256-bit AVX2 + FMA kernels (`avx2.rs`).
    Avx2,
    /// 512-bit AVX-512F kernels (`avx512.rs`).
    Avx512,
}

impl Isa {
    /// The name `CONVNETS_ISA` takes and [`isa()`](crate::isa()) reports: `avx512`, `avx2`
    /// or `portable`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a `CONVNETS_ISA` value (case-insensitive).
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "avx512" | "avx-512" => Some(Isa::Avx512),
            "avx2" => Some(Isa::Avx2),
            "portable" | "none" => Some(Isa::Portable),
            _ => None,
        }
    }

    /// Whether this CPU can run the path (the portable one always).
    pub fn supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best path at most `self` that this CPU runs.
    fn best_at_most(self) -> Isa {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .find(|i| *i <= self && i.supported())
            .unwrap_or(Isa::Portable)
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The path chosen from a `CONVNETS_ISA` value and whether `CONVNETS_NO_AVX512` is set, with
/// the warning to print, if any.
pub(crate) fn choose(isa_var: Option<&str>, no_avx512: bool) -> (Isa, Option<String>) {
    let (want, mut warning) = match isa_var.map(|v| (v, Isa::parse(v))) {
        Some((_, Some(isa))) => (isa, None),
        Some((v, None)) => (
            Isa::Avx512,
            Some(format!(
                "CONVNETS_ISA={v:?} is not one of avx512, avx2, portable: ignored"
            )),
        ),
        None if no_avx512 => (Isa::Avx2, None),
        None => (Isa::Avx512, None),
    };
    let got = want.best_at_most();
    if isa_var.is_some() && got != want && warning.is_none() {
        warning = Some(format!(
            "CONVNETS_ISA={want}: this CPU cannot run the {want} kernels, using {got}"
        ));
    }
    (got, warning)
}

/// The kernels this process runs (decided on the first call, see the module docs).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let var = std::env::var("CONVNETS_ISA").ok();
        let var = var.as_deref().filter(|v| !v.is_empty());
        let (isa, warning) = choose(var, std::env::var_os("CONVNETS_NO_AVX512").is_some());
        if let Some(w) = warning {
            eprintln!("convnets: warning: {w}");
        }
        isa
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
            assert_eq!(isa.to_string(), isa.name());
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse"), None);
    }

    #[test]
    fn choice_follows_the_environment_and_the_cpu() {
        let best = Isa::Avx512.best_at_most();
        assert_eq!(choose(None, false), (best, None));
        assert_eq!(choose(Some("portable"), false), (Isa::Portable, None));
        // CONVNETS_ISA wins over CONVNETS_NO_AVX512.
        assert_eq!(choose(Some("portable"), true), (Isa::Portable, None));
        let below = Isa::Avx2.best_at_most();
        assert_eq!(choose(None, true).0, below);
        assert!(below != Isa::Avx512);
        let (isa, warning) = choose(Some("avx2"), false);
        assert_eq!(isa, below);
        assert_eq!(warning.is_some(), !Isa::Avx2.supported());
        let (isa, warning) = choose(Some("avx512"), false);
        assert_eq!(isa, best);
        assert_eq!(warning.is_some(), !Isa::Avx512.supported());
        let (isa, warning) = choose(Some("mmx"), false);
        assert_eq!(isa, best);
        assert!(warning.is_some_and(|w| w.contains("mmx")));
    }
}
