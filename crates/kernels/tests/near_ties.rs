//! Near ties: pairs whose f32 search values tie or nearly tie while their exact f64 `Δ`
//! differ (tests/ties). The CPU engine re-checks every pair within a small window of the
//! f32 minimum in f64 and takes the exact best; the kernels must decide the same way (same
//! pick, same masks, counts, stops and errors), through the CPU emulation of
//! `cuda/swaps.cu` (tests/emu). Each case is checked to be one where an f32-only argmin
//! decides otherwise: this test fails on a kernel without the f64 re-check.

mod emu;
mod ties;

use emu::{compare_result, emulator_or_skip, EmuBestSwaps, EmuRefine};
use sparseswaps_core::{refine, LayerProblem, RefineOptions, RowState, Search};
use ties::{assert_near_tie, near_tie_layer, NEAR_TIES};

#[test]
fn near_ties_decide_exactly_as_the_cpu_engine() {
    let Some(lib) = emulator_or_skip("near_ties_decide_exactly_as_the_cpu_engine") else {
        return;
    };
    // SAFETY: the symbols have exactly these signatures (emu/emu.cpp).
    let f: libloading::Symbol<EmuRefine> = unsafe { lib.get(b"emu_refine") }.unwrap();
    let best: libloading::Symbol<EmuBestSwaps> = unsafe { lib.get(b"emu_best_swaps") }.unwrap();
    let mut failures = Vec::new();
    for t in &NEAR_TIES {
        for (wide, rows) in [(false, 1), (true, 2)] {
            let l = near_tie_layer(t, wide, rows);
            let d = l.d;
            let p = LayerProblem::new(&l.weights, rows, d, &l.gram).unwrap();
            let st = RowState::new(p.row(0), l.warm.row(0), &l.gram);
            let exact = sparseswaps_core::best_swaps_unstructured(
                &l.gram,
                std::slice::from_ref(&st),
                &l.warm,
            )[0]
            .expect("a pair");
            let naive = assert_near_tie(t, &st, &l, exact);
            let name = format!("{} ({rows}x{d})", t.name);
            // First step, nothing applied: the CPU's pick in every row.
            let mut m = l.warm.as_slice().to_vec();
            let mut picks = vec![0i32; 2 * rows];
            // SAFETY: buffers of rows * d, d * d and 2 * rows elements.
            unsafe {
                best(
                    l.gram.as_ptr(),
                    l.weights.as_ptr(),
                    m.as_mut_ptr(),
                    rows as i32,
                    d as i32,
                    picks.as_mut_ptr(),
                )
            };
            for (r, p) in picks.chunks_exact(2).enumerate() {
                let got = (p[0] as usize, p[1] as usize);
                if got != exact {
                    failures.push(format!(
                        "{name}: row {r}: first pick: cpu {exact:?}, emulated kernels {got:?} (f32 argmin {naive:?})"
                    ));
                }
            }
            for max_swaps in [Some(1), None] {
                let o = RefineOptions {
                    max_swaps,
                    search: Search::Exhaustive,
                    ..RefineOptions::default()
                };
                // Both CPU searches agree here too (the reference is the exact rule).
                let (mut b, mut e) = (l.warm.clone(), l.warm.clone());
                let bo = RefineOptions {
                    search: Search::Bounded,
                    ..o
                };
                refine(&p, &l.pattern, &mut b, &bo, &|_| {}).unwrap();
                refine(&p, &l.pattern, &mut e, &o, &|_| {}).unwrap();
                assert_eq!(b, e, "{name}: bounded and exhaustive CPU searches differ");
                let name = format!("{name} max_swaps {max_swaps:?}");
                match compare_result(&name, &f, &l.weights, &l.gram, &l.warm, &l.pattern, &o) {
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
