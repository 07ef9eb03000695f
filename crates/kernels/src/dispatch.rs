//! `const_dispatch!`: a runtime block shape to a const-generic micro-kernel, the one match
//! every register-blocked kernel (AVX2, AVX-512; GEMM and dot products) uses.

/// Maps runtime `rows` and `cols` onto `f::<R, C>` for the listed `R` and `C`:
/// - `const_dispatch!(f(args), rows => [1, 2], cols => [1, 2, 3])` calls `f::<R, C>(args)`;
/// - `const_dispatch!(f as T, rows => [...], cols => [...])` gives `f::<R, C>` as a `T`.
///
/// A value outside the lists is a bug in the caller's blocking and panics.
macro_rules! const_dispatch {
    ($f:ident $args:tt, $r:expr => [$($R:literal),+], $c:expr => $cs:tt) => {
        match $r {
            $($R => const_dispatch!(@cols $f $args, $R, $c => $cs),)+
            r => unreachable!("no register block of {r} rows"),
        }
    };
    ($f:ident as $t:ty, $r:expr => [$($R:literal),+], $c:expr => $cs:tt) => {
        match $r {
            $($R => const_dispatch!(@ptr $f as $t, $R, $c => $cs),)+
            r => unreachable!("no register block of {r} rows"),
        }
    };
    (@cols $f:ident $args:tt, $R:literal, $c:expr => [$($C:literal),+]) => {
        match $c {
            $($C => const_dispatch!(@call $f $args, $R, $C),)+
            c => unreachable!("no register block of {c} columns"),
        }
    };
    (@call $f:ident ($($a:expr),*), $R:literal, $C:literal) => {
        $f::<$R, $C>($($a),*)
    };
    (@ptr $f:ident as $t:ty, $R:literal, $c:expr => [$($C:literal),+]) => {
        match $c {
            $($C => $f::<$R, $C> as $t,)+
            c => unreachable!("no register block of {c} columns"),
        }
    };
}
