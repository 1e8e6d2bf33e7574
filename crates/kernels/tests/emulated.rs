//! The CUDA kernels of `cuda/swaps.cu`, compiled as C++ against a CPU emulation of the CUDA
//! subset they use (`emu/shim.h`, `emu/emu.cpp`), against the CPU engine: masks, swap
//! counts, stop reasons and errors must be identical, bit for bit.
//!
//! Why: CI and most machines have no GPU, and the kernels' logic (tiling, indexing, block
//! reductions, the tie rule, the f32 search and f64 decisions) is where a mask could go
//! wrong. This runs on every `cargo test` where a C++20 compiler exists (`CXX`, `c++`,
//! `g++` or `clang++`); without one it is a recorded skip (a failure under CI, see
//! `sparseswaps_testkit::skip`). It cannot show what only a
//! GPU shows (races between blocks, warp-synchronous assumptions, speed): tests/gpu.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::case;
use sparseswaps_core::{refine, LayerProblem, Mask, Pattern, RefineOptions, StopReason};
use sparseswaps_testkit::{skip, Need};

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

fn compare(
    name: &str,
    f: &EmuRefine,
    weights: &[f32],
    gram: &[f32],
    warm: &Mask,
    pattern: &Pattern,
    opts: &RefineOptions,
) {
    let (rows, d) = (warm.rows(), warm.cols());
    let p = LayerProblem::new(weights, rows, d, gram).unwrap();
    let mut cm = warm.clone();
    let cr = refine(&p, pattern, &mut cm, opts, &|_| {}).unwrap();
    let t = std::time::Instant::now();
    let e = run_emulated(f, weights, gram, warm, pattern, opts);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(e.mask, cm, "{name}: masks differ");
    for (r, c) in cr.rows.iter().enumerate() {
        let stop = match e.status[r] {
            1 => StopReason::Optimal,
            2 => StopReason::MaxSwaps,
            _ => StopReason::NothingToSwap,
        };
        assert_eq!(
            (c.swaps, c.steps, c.stop),
            (e.swaps[r] as u32, e.steps[r] as u32, stop),
            "{name}: row {r}"
        );
        for (what, a, b) in [
            ("warm error", c.warm_error, e.warm[r]),
            ("final error", c.final_error, e.fin[r]),
            ("energy", c.energy, e.energy[r]),
        ] {
            assert_eq!(
                a.to_bits(),
                b.to_bits(),
                "{name}: row {r}: {what} {a:e} vs {b:e}"
            );
        }
    }
    println!(
        "{name}: identical ({} swaps, {secs:.1} s emulated)",
        cr.swaps
    );
}

#[test]
fn emulated_kernels_match_the_cpu_engine_bit_for_bit() {
    let lib_path = match build_emulator() {
        Ok(p) => p,
        Err(why) => {
            skip(
                Need::Compiler,
                format!("emulated kernel tests did not run: {why}"),
            );
            return;
        }
    };
    // SAFETY: the library was just built from this crate's sources.
    let lib = unsafe { libloading::Library::new(&lib_path) }.unwrap();
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
