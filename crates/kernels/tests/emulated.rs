//! The CUDA kernels of `cuda/swaps.cu`, compiled as C++ against a CPU emulation of the CUDA
//! subset they use (`emu/shim.h`, `emu/emu.cpp`), against the CPU engine: masks, swap
//! counts, stop reasons and errors must be identical, bit for bit.
//!
//! Why: CI and most machines have no GPU, and the kernels' logic (tiling, indexing, block
//! reductions, the tie rule, the f32 search and f64 decisions) is where a mask could go
//! wrong. This runs on every `cargo test` where a C++20 compiler exists (`CXX`, `c++`,
//! `g++` or `clang++`); without one it says so and passes, except under `CI`, where it
//! fails. It cannot show what only a
//! GPU shows (races between blocks, warp-synchronous assumptions, speed): tests/gpu.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::case;
use sparseswaps_core::{
    refine, LayerProblem, Mask, Pattern, RefineOptions, RowState, Search, StopReason,
};

type EmuRefine = unsafe extern "C" fn(
    *const f32,
    *const f32,
    *mut u8,
    i32,
    i32,
    i32,
    i32,
    i64,
    i32,
    f64,
    *mut f64,
    *mut f64,
    *mut f64,
    *mut i32,
    *mut i32,
    *mut i32,
) -> i32;

/// Compiles the emulation into a shared library; `Err` names why it could not.
fn build_emulator() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libswaps_emu.so");
    let compilers: Vec<String> = match std::env::var("CXX") {
        Ok(c) if !c.trim().is_empty() => vec![c],
        _ => ["c++", "g++", "clang++"].map(String::from).to_vec(),
    };
    let mut why = Vec::new();
    for cxx in compilers {
        let r = Command::new(&cxx)
            .args([
                "-std=c++20",
                "-O2",
                "-ffp-contract=off",
                "-fPIC",
                "-shared",
                "-pthread",
            ])
            .arg("-I")
            .arg(dir.join("cuda"))
            .arg("-o")
            .arg(&out)
            .arg(dir.join("emu").join("emu.cpp"))
            .output();
        match r {
            Ok(o) if o.status.success() => return Ok(out),
            Ok(o) => {
                // A compiler that runs but rejects the sources is a real failure: the
                // kernels no longer build against the emulation.
                panic!(
                    "{cxx} failed to compile the CUDA emulation:\n{}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            Err(e) => why.push(format!("{cxx}: {e}")),
        }
    }
    Err(format!("no C++ compiler ({})", why.join("; ")))
}

type EmuBestSwaps =
    unsafe extern "C" fn(*const f32, *const f32, *mut u8, i32, i32, *mut i32) -> i32;
type EmuSymmetrize = unsafe extern "C" fn(*mut f32, i32);

struct Emulated {
    mask: Mask,
    warm: Vec<f64>,
    fin: Vec<f64>,
    energy: Vec<f64>,
    swaps: Vec<i32>,
    steps: Vec<i32>,
    status: Vec<i32>,
}

fn run_emulated(
    f: &EmuRefine,
    weights: &[f32],
    gram: &[f32],
    warm: &Mask,
    pattern: &Pattern,
    opts: &RefineOptions,
) -> Emulated {
    let (rows, d) = (warm.rows(), warm.cols());
    let mut mask = warm.as_slice().to_vec();
    let mut e = Emulated {
        mask: Mask::zeros(rows, d),
        warm: vec![0.0; rows],
        fin: vec![0.0; rows],
        energy: vec![0.0; rows],
        swaps: vec![0; rows],
        steps: vec![0; rows],
        status: vec![0; rows],
    };
    let m = pattern.group().map_or(0, |(_, m)| m as i32);
    // SAFETY: every buffer has the length emu_refine indexes (rows * d, d * d, rows).
    unsafe {
        f(
            gram.as_ptr(),
            weights.as_ptr(),
            mask.as_mut_ptr(),
            rows as i32,
            d as i32,
            m,
            pattern.kept_per_row(d) as i32,
            opts.max_swaps.map_or(-1, i64::from),
            opts.recompute_every as i32,
            opts.rel_tol,
            e.warm.as_mut_ptr(),
            e.fin.as_mut_ptr(),
            e.energy.as_mut_ptr(),
            e.swaps.as_mut_ptr(),
            e.steps.as_mut_ptr(),
            e.status.as_mut_ptr(),
        );
    }
    e.mask = Mask::new(rows, d, mask).unwrap();
    e
}

/// Runs the CPU engine and the emulated kernels on one case; `Err` describes the first
/// difference (masks, per-row counts and stops, errors bit for bit).
fn compare_result(
    name: &str,
    f: &EmuRefine,
    weights: &[f32],
    gram: &[f32],
    warm: &Mask,
    pattern: &Pattern,
    opts: &RefineOptions,
) -> Result<String, String> {
    let (rows, d) = (warm.rows(), warm.cols());
    let p = LayerProblem::new(weights, rows, d, gram).unwrap();
    let mut cm = warm.clone();
    let cr = refine(&p, pattern, &mut cm, opts, &|_| {}).unwrap();
    let t = std::time::Instant::now();
    let e = run_emulated(f, weights, gram, warm, pattern, opts);
    let secs = t.elapsed().as_secs_f64();
    for (r, c) in cr.rows.iter().enumerate() {
        let stop = match e.status[r] {
            1 => StopReason::Optimal,
            2 => StopReason::MaxSwaps,
            _ => StopReason::NothingToSwap,
        };
        let (cpu, emu) = (
            (c.swaps, c.steps, c.stop),
            (e.swaps[r] as u32, e.steps[r] as u32, stop),
        );
        if cpu != emu {
            return Err(format!(
                "{name}: row {r}: cpu (swaps, steps, stop) {cpu:?}, emulated kernels {emu:?}"
            ));
        }
        if cm.row(r) != e.mask.row(r) {
            let diff: Vec<usize> = (0..d)
                .filter(|&j| cm.row(r)[j] != e.mask.row(r)[j])
                .collect();
            return Err(format!("{name}: row {r}: masks differ at columns {diff:?}"));
        }
        for (what, a, b) in [
            ("warm error", c.warm_error, e.warm[r]),
            ("final error", c.final_error, e.fin[r]),
            ("energy", c.energy, e.energy[r]),
        ] {
            if a.to_bits() != b.to_bits() {
                return Err(format!("{name}: row {r}: {what} {a:e} vs {b:e}"));
            }
        }
    }
    Ok(format!(
        "{name}: identical ({} swaps, {secs:.1} s emulated)",
        cr.swaps
    ))
}

fn compare(
    name: &str,
    f: &EmuRefine,
    weights: &[f32],
    gram: &[f32],
    warm: &Mask,
    pattern: &Pattern,
    opts: &RefineOptions,
) {
    match compare_result(name, f, weights, gram, warm, pattern, opts) {
        Ok(line) => println!("{line}"),
        Err(e) => panic!("{e}"),
    }
}

/// The emulation library, built once per test process (tests run in parallel and must not
/// write the same file at once); `Err` says why it could not be built.
fn emulator() -> Result<&'static libloading::Library, String> {
    static LIB: OnceLock<Result<libloading::Library, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        let path = build_emulator()?;
        // SAFETY: the library was just built from this crate's sources.
        unsafe { libloading::Library::new(&path) }
            .map_err(|e| format!("loading {}: {e}", path.display()))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// The emulation, or (no C++ compiler) `None` after saying so; under CI a missing
/// compiler fails the test instead, so a CI run cannot pass without running them.
fn emulator_or_skip(test: &str) -> Option<&'static libloading::Library> {
    match emulator() {
        Ok(lib) => Some(lib),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: the emulated kernel tests cannot run under CI: {why}")
        }
        Err(why) => {
            println!("EMULATED KERNEL TESTS DID NOT RUN ({test}): {why}");
            None
        }
    }
}

#[test]
fn emulated_kernels_match_the_cpu_engine_bit_for_bit() {
    let Some(lib) = emulator_or_skip("emulated_kernels_match_the_cpu_engine_bit_for_bit") else {
        return;
    };
    // SAFETY: emu_refine has exactly the EmuRefine signature (emu/emu.cpp).
    let f: libloading::Symbol<EmuRefine> = unsafe { lib.get(b"emu_refine") }.unwrap();
    let opts = |max_swaps, recompute_every| RefineOptions {
        max_swaps,
        recompute_every,
        ..RefineOptions::default()
    };
    // (rows, d_in, pattern, seed, options): tile edges (d_in 129 > one 128-wide u tile,
    // 33+ rows > one 32-row block), no cap, frequent recomputes, N:M with M = 4 and 8.
    let unstructured = |s| Pattern::unstructured(s).unwrap();
    let cases = [
        (9, 64, unstructured(0.5), 1, opts(Some(100), 32)),
        (5, 129, unstructured(0.3), 3, opts(Some(20), 4)),
        (6, 96, Pattern::n_m(2, 8).unwrap(), 6, opts(None, 3)),
        (11, 64, Pattern::n_m(2, 4).unwrap(), 5, opts(Some(100), 32)),
        (4, 32, unstructured(0.0), 7, opts(Some(100), 32)),
        (4, 32, unstructured(0.5), 8, opts(Some(0), 32)),
    ];
    for (rows, d, pattern, seed, o) in cases {
        let c = case(rows, d, pattern, seed);
        let name = format!(
            "{rows}x{d} {pattern} {:?}/{}",
            o.max_swaps, o.recompute_every
        );
        compare(&name, &f, &c.weights, &c.gram, &c.warm, &pattern, &o);
    }
    // One search step, nothing applied (CudaBackend::best_swaps_unstructured), against
    // the CPU engine's step, rows with no pair included (sparsity 0).
    // SAFETY: emu_best_swaps has exactly the EmuBestSwaps signature.
    let best: libloading::Symbol<EmuBestSwaps> = unsafe { lib.get(b"emu_best_swaps") }.unwrap();
    // The last case ties every pair (common::all_ties_case), so the pick is decided by the
    // tie rule alone, across u tiles and the 256-strided scan of the pick kernel.
    for (rows, d, s, seed) in [(40, 150, 0.5, 20), (6, 64, 0.0, 21), (3, 600, 0.5, 0)] {
        let c = if seed == 0 {
            common::all_ties_case(rows, d)
        } else {
            case(rows, d, Pattern::unstructured(s).unwrap(), seed)
        };
        let p = LayerProblem::new(&c.weights, rows, d, &c.gram).unwrap();
        let states: Vec<_> = (0..rows)
            .map(|r| sparseswaps_core::RowState::new(p.row(r), c.warm.row(r), &c.gram))
            .collect();
        let want = sparseswaps_core::best_swaps_unstructured(&c.gram, &states, &c.warm);
        let mut mask = c.warm.as_slice().to_vec();
        let mut picks = vec![0i32; 2 * rows];
        // SAFETY: buffers of rows * d, d * d and 2 * rows elements.
        unsafe {
            best(
                c.gram.as_ptr(),
                c.weights.as_ptr(),
                mask.as_mut_ptr(),
                rows as i32,
                d as i32,
                picks.as_mut_ptr(),
            )
        };
        let got: Vec<Option<(usize, usize)>> = picks
            .chunks_exact(2)
            .map(|q| (q[0] >= 0).then(|| (q[0] as usize, q[1] as usize)))
            .collect();
        assert_eq!(got, want, "first step {rows}x{d} s={s}");
        assert_eq!(mask, c.warm.as_slice(), "a search step must apply nothing");
        println!("first step {rows}x{d} s={s}: identical");
    }
    // The Gram helper makes a matrix exactly symmetric from its upper triangle.
    // SAFETY: emu_symmetrize has exactly the EmuSymmetrize signature.
    let sym: libloading::Symbol<EmuSymmetrize> = unsafe { lib.get(b"emu_symmetrize") }.unwrap();
    let d = 37;
    let mut g: Vec<f32> = (0..d * d).map(|i| i as f32).collect();
    // SAFETY: g holds d * d values.
    unsafe { sym(g.as_mut_ptr(), d as i32) };
    for i in 0..d {
        for j in 0..d {
            let want = (i.min(j) * d + i.max(j)) as f32;
            assert_eq!(g[i * d + j], want, "G[{i},{j}]");
        }
    }

    // Ties everywhere (weights on a coarse grid, G = I + constant): the tie rule decides.
    for (rows, d, pattern) in [
        (37, 70, Pattern::unstructured(0.5).unwrap()),
        (10, 64, Pattern::n_m(2, 4).unwrap()),
    ] {
        let mut c = case(rows, d, pattern, 100);
        for w in c.weights.iter_mut() {
            *w = (*w * 100.0).round() / 100.0;
        }
        for i in 0..d {
            for j in 0..d {
                c.gram[i * d + j] = if i == j { 2.0 } else { 0.5 };
            }
        }
        let diag = vec![2.0f32; d];
        let warm =
            sparseswaps_warmstart_wanda::wanda_mask(&c.weights, rows, d, &diag, &pattern).unwrap();
        let name = format!("ties {rows}x{d} {pattern}");
        compare(
            &name,
            &f,
            &c.weights,
            &c.gram,
            &warm,
            &pattern,
            &opts(None, 32),
        );
    }
}

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
