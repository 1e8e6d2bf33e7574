//! Constructed near ties, shared by the emulated (tests/near_ties.rs) and GPU
//! (tests/gpu.rs) checks: pairs whose f32 search values tie or nearly tie while their
//! exact f64 `Δ` differ, so that an f32-only argmin decides otherwise than the CPU engine.

#![allow(dead_code)]

use sparseswaps_core::{Mask, Pattern, RefineOptions, RowState};

/// One near tie: every row has all special weights 1 and `G = I` except the four cross
/// entries `G[u_i, q_j]` between kept `u_0 < u_1` and pruned `q_0 < q_1` (symmetric).
/// Then `Δ(u_i, q_j) = 2 G[u_i, q_other]`, while the f32 search adds terms of size 1, so
/// the f32 values of the four pairs tie or nearly tie (a few ulp of 1) whatever their f64
/// values are.
pub struct NearTie {
    pub name: &'static str,
    /// `G[u0,q0], G[u0,q1], G[u1,q0], G[u1,q1]`.
    pub cross: [f32; 4],
    /// What the f32 argmin does: takes a worse swap (`false`) or stops (`true`).
    pub f32_stops: bool,
}

pub const NEAR_TIES: [NearTie; 3] = [
    // f32: the four pairs tie exactly (value 0); f64: (u1, q0) is best, (u0, q0) also
    // improves, so the f32 tie rule takes the worse swap.
    NearTie {
        name: "f32 tie, f64 picks the higher u",
        cross: [0.0, -2e-9, -4e-9, 0.0],
        f32_stops: false,
    },
    // f32: all values 0, no pair improves; f64: Δ(u1, q1) = -8e-9 < -tol = -2e-9.
    NearTie {
        name: "f32 finds no improving pair, f64 does",
        cross: [0.0, 0.0, -4e-9, 0.0],
        f32_stops: true,
    },
    // f32 values differ by one ulp in the wrong order: f32 prefers (u1, q1) at -1.8e-7
    // over (u0, q0) at -1.2e-7; f64: Δ(u0, q0) = Δ(u0, q1) = -1.6e-7 (a tie: lower q
    // wins) below Δ(u1, q1) = -1.4e-7.
    NearTie {
        name: "f32 order reversed, f64 tie on q",
        cross: [-8e-8, -8e-8, -7e-8, -4e-8],
        f32_stops: false,
    },
];

/// A layer of `rows` identical near-tie rows. Narrow: `d_in = 4`, the four special
/// columns alone. Wide: `d_in = 1100`, the four columns spread over the row (other kept
/// columns weigh 2 and other pruned ones 0, so no other pair competes), across the
/// kernels' u tiles, the pick kernel's thread stride and the CPU's 1024-column tile.
pub struct TieLayer {
    pub rows: usize,
    pub d: usize,
    pub weights: Vec<f32>,
    pub gram: Vec<f32>,
    pub warm: Mask,
    pub pattern: Pattern,
}

pub fn near_tie_layer(t: &NearTie, wide: bool, rows: usize) -> TieLayer {
    let (d, cols) = if wide {
        (1100, [3, 700, 40, 1090])
    } else {
        (4, [0, 1, 2, 3])
    };
    let [u0, u1, q0, q1] = cols;
    let mut gram = vec![0f32; d * d];
    for i in 0..d {
        gram[i * d + i] = 1.0;
    }
    for (k, (u, q)) in [(u0, q0), (u0, q1), (u1, q0), (u1, q1)]
        .into_iter()
        .enumerate()
    {
        gram[u * d + q] = t.cross[k];
        gram[q * d + u] = t.cross[k];
    }
    let mut mask = vec![0u8; d];
    let mut w = vec![0f32; d];
    // Kept: u0, u1 and (wide) the first 548 other columns; pruned: q0, q1 and the rest.
    let mut others = 0;
    for j in 0..d {
        if j == u0 || j == u1 {
            (mask[j], w[j]) = (1, 1.0);
        } else if j == q0 || j == q1 {
            w[j] = 1.0;
        } else if others < d / 2 - 2 {
            (mask[j], w[j]) = (1, 2.0);
            others += 1;
        }
    }
    TieLayer {
        rows,
        d,
        weights: w.repeat(rows),
        gram,
        warm: Mask::new(rows, d, mask.repeat(rows)).unwrap(),
        pattern: Pattern::unstructured(0.5).unwrap(),
    }
}

/// The pick an f32-only argmin makes (the rule of `cuda/swaps.cu` before the f64
/// re-check): the lowest f32 value `(float) a_u + min_q (b_q + w_u (h_q G[u,q]))`, lowest
/// `u` among equal values, then the first `q` reaching `u`'s minimum.
pub fn f32_argmin_pick(st: &RowState<'_>, w: &[f32], mask: &[u8], gram: &[f32]) -> (usize, usize) {
    let d = w.len();
    let value = |u: usize, q: usize| {
        let (h, b) = (-2.0 * w[q], st.b(q) as f32);
        b + w[u] * (h * gram[u * d + q])
    };
    let min_over_q = |u: usize| {
        (0..d)
            .filter(|&q| mask[q] == 0)
            .map(|q| value(u, q))
            .fold(f32::INFINITY, |m, v| if v < m { v } else { m })
    };
    let mut best: Option<(f32, usize)> = None;
    for u in (0..d).filter(|&u| mask[u] == 1) {
        let v = st.a(u) as f32 + min_over_q(u);
        if best.is_none_or(|(bv, _)| v < bv) {
            best = Some((v, u));
        }
    }
    let (_, u) = best.expect("a kept u");
    let m = min_over_q(u);
    let q = (0..d).find(|&q| mask[q] == 0 && value(u, q) == m).unwrap();
    (u, q)
}

/// Checks that the layer's first row is a real near tie for `t`: the f32 argmin picks
/// another pair than the exact rule (`exact`, an improving pair), and stops where the
/// exact rule swaps exactly when `t.f32_stops`. Returns the f32 argmin's pick.
pub fn assert_near_tie(
    t: &NearTie,
    st: &RowState<'_>,
    l: &TieLayer,
    exact: (usize, usize),
) -> (usize, usize) {
    let naive = f32_argmin_pick(st, &l.weights[..l.d], l.warm.row(0), &l.gram);
    let tol = RefineOptions::default().rel_tol * st.error();
    assert_ne!(naive, exact, "{}: not a near tie", t.name);
    assert!(
        st.delta(exact.0, exact.1) < -tol,
        "{}: the exact pick must improve",
        t.name
    );
    assert_eq!(
        st.delta(naive.0, naive.1) >= -tol,
        t.f32_stops,
        "{}",
        t.name
    );
    naive
}
