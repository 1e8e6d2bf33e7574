//! The emulation harness shared by the emulated kernel tests: builds `emu/emu.cpp` (which
//! includes `cuda/swaps.cu`) into a shared library once per test binary, runs its
//! entry points, and compares their results with the CPU engine's bit for bit.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sparseswaps_core::{refine, LayerProblem, Mask, Pattern, RefineOptions, StopReason};

pub type EmuRefine = unsafe extern "C" fn(
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
pub fn build_emulator() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("libswaps_emu_{}.so", env!("CARGO_CRATE_NAME")));
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

pub type EmuBestSwaps =
    unsafe extern "C" fn(*const f32, *const f32, *mut u8, i32, i32, *mut i32) -> i32;
pub type EmuSymmetrize = unsafe extern "C" fn(*mut f32, i32);

pub struct Emulated {
    pub mask: Mask,
    pub warm: Vec<f64>,
    pub fin: Vec<f64>,
    pub energy: Vec<f64>,
    pub swaps: Vec<i32>,
    pub steps: Vec<i32>,
    pub status: Vec<i32>,
}

pub fn run_emulated(
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
pub fn compare_result(
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

pub fn compare(
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
pub fn emulator() -> Result<&'static libloading::Library, String> {
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

/// The emulation, or (no C++ compiler) `None` after a recorded skip; under CI a missing
/// compiler fails the test instead (`sparseswaps_testkit::skip`), so a CI run cannot pass
/// without running them.
pub fn emulator_or_skip(test: &str) -> Option<&'static libloading::Library> {
    match emulator() {
        Ok(lib) => Some(lib),
        Err(why) => {
            sparseswaps_testkit::skip(
                sparseswaps_testkit::Need::Compiler,
                format!("emulated kernel tests ({test}) did not run: {why}"),
            );
            None
        }
    }
}
