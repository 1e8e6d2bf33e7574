//! Near ties: pairs whose f32 search values tie or nearly tie while their exact f64 `Δ`
//! differ. The CPU engine re-checks every pair within a small window of the f32 minimum in
//! f64 and takes the exact best; the kernels must decide the same way (same pick, same
//! masks, counts, stops and errors), through the CPU emulation of `cuda/swaps.cu`
//! (tests/emu). Each case is built so that an f32-only argmin decides otherwise: this test
//! fails on a kernel without the f64 re-check.

mod emu;

use emu::{compare_result, emulator_or_skip, EmuBestSwaps, EmuRefine};
use sparseswaps_core::{refine, LayerProblem, Mask, Pattern, RefineOptions, RowState, Search};

/// The pick an f32-only argmin makes (the rule of `cuda/swaps.cu` before the f64 re-check):
/// the lowest f32 value `(float) a_u + min_q (b_q + w_u (h_q G[u,q]))`, lowest `u` among
/// equal values, then the first `q` reaching `u`'s minimum. The near-tie cases assert that
/// this pick differs from the exact one, so each case can only pass with the re-check.
fn f32_argmin_pick(st: &RowState<'_>, w: &[f32], mask: &[u8], gram: &[f32]) -> (usize, usize) {
    let d = w.len();
    let value = |u: usize, q: usize| {
        let (h, b) = (-2.0 * w[q], st.b(q) as f32);
        b + w[u] * (h * gram[u * d + q])
    };
    let mut best: Option<(f32, usize)> = None;
    for u in (0..d).filter(|&u| mask[u] == 1) {
        let m = (0..d)
            .filter(|&q| mask[q] == 0)
            .map(|q| value(u, q))
            .fold(f32::INFINITY, |m, v| if v < m { v } else { m });
        let v = st.a(u) as f32 + m;
        if best.is_none_or(|(bv, _)| v < bv) {
            best = Some((v, u));
        }
    }
    let (_, u) = best.expect("a kept u");
    let m = (0..d)
        .filter(|&q| mask[q] == 0)
        .map(|q| value(u, q))
        .fold(f32::INFINITY, |m, v| if v < m { v } else { m });
    let q = (0..d).find(|&q| mask[q] == 0 && value(u, q) == m).unwrap();
    (u, q)
}

/// A constructed near tie: one row, all weights 1, `G = I` except the four cross entries
/// `G[u_i, q_j]` between kept `u_0 < u_1` and pruned `q_0 < q_1` (symmetric). Then
/// `Δ(u_i, q_j) = 2 G[u_i, q_other]` exactly, while the f32 search adds terms of size 1, so
/// the f32 values of the four pairs tie or nearly tie (a few ulp of 1) whatever their f64
/// values are. `wide`: the four columns are spread over a row of 1100 (other kept
/// columns weigh 2 and other pruned ones 0, so no other pair competes), across the
/// kernels' u tiles, the pick kernel's thread stride and the CPU's 1024-column tile.
struct NearTie {
    name: &'static str,
    /// `G[u0,q0], G[u0,q1], G[u1,q0], G[u1,q1]`.
    cross: [f32; 4],
    /// What the f32 argmin does: takes a worse swap (`false`) or stops (`true`).
    f32_stops: bool,
}

fn near_tie_layer(t: &NearTie, wide: bool) -> (Vec<f32>, Vec<f32>, Mask, Pattern) {
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
    let pattern = Pattern::unstructured(0.5).unwrap();
    (w, gram, Mask::new(1, d, mask).unwrap(), pattern)
}

/// Near ties decide as on the CPU: pairs whose f32 values tie or nearly tie while their
/// f64 `Δ` differ. Each case is checked to be one where the f32 argmin alone picks
/// another pair than the exact rule (or stops where the exact rule swaps); the kernels
/// must then give the CPU's masks, counts, stops and errors, and the CPU's first pick.
#[test]
fn near_ties_decide_exactly_as_the_cpu_engine() {
    let Some(lib) = emulator_or_skip("near_ties_decide_exactly_as_the_cpu_engine") else {
        return;
    };
    // SAFETY: the symbols have exactly these signatures (emu/emu.cpp).
    let f: libloading::Symbol<EmuRefine> = unsafe { lib.get(b"emu_refine") }.unwrap();
    let best: libloading::Symbol<EmuBestSwaps> = unsafe { lib.get(b"emu_best_swaps") }.unwrap();
    let cases = [
        // f32: the four pairs tie exactly (value 0); f64: (u1, q1) is best, (u0, q0) also
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
        // f32 values differ by one ulp in the wrong order: f32 prefers (u1, q1) at
        // -1.8e-7 over (u0, q0) at -1.2e-7; f64: Δ(u0, q0) = Δ(u0, q1) = -1.6e-7 (a tie:
        // lower q wins) below Δ(u1, q1) = -1.4e-7.
        NearTie {
            name: "f32 order reversed, f64 tie on q",
            cross: [-8e-8, -8e-8, -7e-8, -4e-8],
            f32_stops: false,
        },
    ];
    let mut failures = Vec::new();
    for t in &cases {
        for wide in [false, true] {
            let (w, gram, warm, pattern) = near_tie_layer(t, wide);
            let d = w.len();
            let p = LayerProblem::new(&w, 1, d, &gram).unwrap();
            let st = RowState::new(p.row(0), warm.row(0), &gram);
            let exact =
                sparseswaps_core::best_swaps_unstructured(&gram, std::slice::from_ref(&st), &warm)
                    [0]
                .expect("a pair");
            // The case must be a real near tie: the f32 argmin alone decides otherwise.
            let naive = f32_argmin_pick(&st, &w, warm.row(0), &gram);
            let tol = RefineOptions::default().rel_tol * st.error();
            assert_ne!(naive, exact, "{}: not a near tie", t.name);
            assert!(
                st.delta(exact.0, exact.1) < -tol,
                "{}: exact pick must improve",
                t.name
            );
            assert_eq!(
                st.delta(naive.0, naive.1) >= -tol,
                t.f32_stops,
                "{}",
                t.name
            );
            let name = format!("{} (1x{d})", t.name);
            // First step, nothing applied: the CPU's pick.
            let mut m = warm.as_slice().to_vec();
            let mut picks = [0i32; 2];
            // SAFETY: buffers of d, d * d and 2 elements.
            unsafe {
                best(
                    gram.as_ptr(),
                    w.as_ptr(),
                    m.as_mut_ptr(),
                    1,
                    d as i32,
                    picks.as_mut_ptr(),
                )
            };
            let got = (picks[0] as usize, picks[1] as usize);
            if got != exact {
                failures.push(format!(
                    "{name}: first pick: cpu {exact:?}, emulated kernels {got:?} (f32 argmin {naive:?})"
                ));
            }
            for max_swaps in [Some(1), None] {
                let o = RefineOptions {
                    max_swaps,
                    search: Search::Exhaustive,
                    ..RefineOptions::default()
                };
                // Both CPU searches agree here too (the reference is the exact rule).
                let mut b = warm.clone();
                let bo = RefineOptions {
                    search: Search::Bounded,
                    ..o
                };
                let mut e = warm.clone();
                refine(&p, &pattern, &mut b, &bo, &|_| {}).unwrap();
                refine(&p, &pattern, &mut e, &o, &|_| {}).unwrap();
                assert_eq!(b, e, "{name}: bounded and exhaustive CPU searches differ");
                let name = format!("{name} max_swaps {max_swaps:?}");
                match compare_result(&name, &f, &w, &gram, &warm, &pattern, &o) {
                    Ok(line) => println!("{line}"),
                    Err(e) => failures.push(e),
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "near ties decided differently from the CPU engine:\n{}",
        failures.join("\n")
    );
}
