//! GPU tests: the CUDA backend against the CPU engine, bit for bit.
//!
//! They run only when `SPARSESWAPS_GPU_TESTS=1` (scripts/gpu-check.sh sets it); then a
//! backend that cannot open is a failure, not a skip. Otherwise this harness prints, on
//! every `cargo test`, that they did not run and why, and records each as a skip
//! (`sparseswaps_testkit::skip`). A plain `main` (harness = false) because libtest
//! captures output: the skip line must be visible.

mod common;
mod ties;

use common::{case, from_bf16_bits, same_result, to_bf16_bits};
use sparseswaps_core::{
    refine, Backend, LayerProblem, Pattern, RefineOptions, RowState, Search, StopReason,
};
use sparseswaps_kernels::{
    cuda_unavailable_reason, gram_of, select_backend, Activations, BackendKind, CudaBackend,
    BOUNDED_SEARCH_REFUSED,
};
use sparseswaps_testkit::{skip, Need};

type TestFn = fn(&CudaBackend) -> Result<(), String>;

/// The CUDA backend runs the exhaustive search (the bounded one it refuses); the CPU
/// reference runs the same options.
fn opts(max_swaps: Option<u32>) -> RefineOptions {
    RefineOptions {
        max_swaps,
        search: Search::Exhaustive,
        ..RefineOptions::default()
    }
}

/// Refines one case on CPU and GPU (optionally with a chunk cap) and compares.
fn check_case(
    gpu: &CudaBackend,
    c: &common::Case,
    o: &RefineOptions,
    chunk: Option<usize>,
) -> Result<(), String> {
    let p = LayerProblem::new(&c.weights, c.d_out, c.d_in, &c.gram).map_err(|e| e.to_string())?;
    let mut cm = c.warm.clone();
    let cr = refine(&p, &c.pattern, &mut cm, o, &|_| {}).map_err(|e| e.to_string())?;
    let mut gm = c.warm.clone();
    let gr = match chunk {
        Some(n) => {
            let b = CudaBackend::new(gpu.ordinal())
                .map_err(|e| e.to_string())?
                .with_max_chunk_rows(n);
            b.refine(&p, &c.pattern, &mut gm, o, &|_| {})
        }
        None => gpu.refine(&p, &c.pattern, &mut gm, o, &|_| {}),
    }
    .map_err(|e| e.to_string())?;
    gm.validate(&c.pattern).map_err(|e| e.to_string())?;
    if gr.backend != "cuda" {
        return Err(format!("backend {}", gr.backend));
    }
    same_result((&cm, &cr), (&gm, &gr)).map_err(|e| {
        format!(
            "{}x{} {}: {e} (cpu swaps {}, gpu swaps {})",
            c.d_out, c.d_in, c.pattern, cr.swaps, gr.swaps
        )
    })
}

fn unstructured_matches_cpu(gpu: &CudaBackend) -> Result<(), String> {
    for (d_out, d_in, s, seed) in [
        (37, 200, 0.5, 1),
        (70, 256, 0.6, 2),
        (33, 129, 0.3, 3),
        (5, 1000, 0.5, 4),
    ] {
        let c = case(d_out, d_in, Pattern::unstructured(s).unwrap(), seed);
        check_case(gpu, &c, &opts(Some(100)), None)?;
    }
    // No cap: to 1-swap optimality.
    let c = case(24, 96, Pattern::unstructured(0.5).unwrap(), 5);
    check_case(gpu, &c, &opts(None), None)
}

/// One search step, nothing applied: the same pair per row as the CPU engine's step.
fn first_step_matches_core(gpu: &CudaBackend) -> Result<(), String> {
    // Seed 0: every pair ties (common::all_ties_case): the tie rule alone decides.
    for (d_out, d_in, s, seed) in [
        (40, 300, 0.5, 17),
        (17, 64, 0.0, 18),
        (33, 129, 0.7, 19),
        (3, 600, 0.5, 0),
    ] {
        let c = if seed == 0 {
            common::all_ties_case(d_out, d_in)
        } else {
            case(d_out, d_in, Pattern::unstructured(s).unwrap(), seed)
        };
        let p =
            LayerProblem::new(&c.weights, c.d_out, c.d_in, &c.gram).map_err(|e| e.to_string())?;
        let states: Vec<RowState<'_>> = (0..c.d_out)
            .map(|r| RowState::new(p.row(r), c.warm.row(r), &c.gram))
            .collect();
        let want = sparseswaps_core::best_swaps_unstructured(&c.gram, &states, &c.warm);
        let got = gpu
            .best_swaps_unstructured(&p, &c.warm)
            .map_err(|e| e.to_string())?;
        if want != got {
            let r = (0..c.d_out).find(|&r| want[r] != got[r]).unwrap_or(0);
            return Err(format!(
                "{d_out}x{d_in} s={s}: row {r}: cpu {:?}, gpu {:?}",
                want[r], got[r]
            ));
        }
    }
    Ok(())
}

fn nm_matches_cpu(gpu: &CudaBackend) -> Result<(), String> {
    for (d_out, d_in, n, m, seed) in [
        (40, 256, 2, 4, 6),
        (19, 128, 1, 4, 7),
        (25, 96, 2, 8, 8),
        (9, 1024, 2, 4, 9),
    ] {
        let c = case(d_out, d_in, Pattern::n_m(n, m).unwrap(), seed);
        check_case(gpu, &c, &opts(Some(100)), None)?;
        check_case(gpu, &c, &opts(None), None)?;
    }
    Ok(())
}

fn chunking_does_not_change_results(gpu: &CudaBackend) -> Result<(), String> {
    let c = case(50, 128, Pattern::unstructured(0.5).unwrap(), 10);
    check_case(gpu, &c, &opts(Some(100)), Some(7))?;
    let c = case(50, 128, Pattern::n_m(2, 4).unwrap(), 11);
    check_case(gpu, &c, &opts(Some(100)), Some(7))
}

fn options_edge_cases(gpu: &CudaBackend) -> Result<(), String> {
    let c = case(20, 64, Pattern::unstructured(0.5).unwrap(), 12);
    for o in [
        opts(Some(0)),
        opts(Some(1)),
        RefineOptions {
            recompute_every: 0,
            ..opts(Some(100))
        },
        RefineOptions {
            recompute_every: 1,
            ..opts(Some(100))
        },
        RefineOptions {
            rel_tol: 1e-3,
            ..opts(None)
        },
    ] {
        check_case(gpu, &c, &o, None)?;
    }
    // Nothing to prune: every row has no pair.
    let c = case(6, 64, Pattern::unstructured(0.0).unwrap(), 13);
    check_case(gpu, &c, &opts(Some(100)), None)?;
    let c = case(4, 8, Pattern::n_m(2, 4).unwrap(), 14);
    check_case(gpu, &c, &opts(Some(0)), None)
}

/// At a natural stop no admissible pair lowers the error (brute force over all pairs).
fn stops_are_1swap_optimal(gpu: &CudaBackend) -> Result<(), String> {
    let c = case(12, 80, Pattern::unstructured(0.5).unwrap(), 15);
    let p = LayerProblem::new(&c.weights, c.d_out, c.d_in, &c.gram).map_err(|e| e.to_string())?;
    let mut m = c.warm.clone();
    let o = opts(None);
    let rep = gpu
        .refine(&p, &c.pattern, &mut m, &o, &|_| {})
        .map_err(|e| e.to_string())?;
    if rep.final_error > rep.warm_error {
        return Err("error increased".into());
    }
    for r in 0..c.d_out {
        if rep.rows[r].stop != StopReason::Optimal {
            return Err(format!("row {r} stopped {:?}", rep.rows[r].stop));
        }
        let st = RowState::new(p.row(r), m.row(r), &c.gram);
        let tol = o.rel_tol * st.error().max(0.0);
        for u in (0..c.d_in).filter(|&u| m.row(r)[u] == 1) {
            for q in (0..c.d_in).filter(|&q| m.row(r)[q] == 0) {
                if st.delta(u, q) < -tol {
                    return Err(format!("row {r}: pair ({u}, {q}) still improves"));
                }
            }
        }
    }
    Ok(())
}

fn gram_matches_reference(gpu: &CudaBackend) -> Result<(), String> {
    let (tokens, d) = (100, 96);
    let mut rng = sparseswaps_testkit::synthetic::SplitMix::new(16);
    let a: Vec<f32> = (0..tokens * d).map(|_| rng.normal() as f32).collect();
    let reference = |x: &[f32]| -> Vec<f64> {
        let mut g = vec![0.0f64; d * d];
        for t in 0..tokens {
            let row = &x[t * d..(t + 1) * d];
            for i in 0..d {
                for j in 0..d {
                    g[i * d + j] += row[i] as f64 * row[j] as f64;
                }
            }
        }
        g
    };
    let check = |g: &[f32], want: &[f64], what: &str| -> Result<(), String> {
        let scale = (0..d).map(|i| want[i * d + i]).fold(0.0, f64::max);
        for i in 0..d {
            for j in 0..d {
                if g[i * d + j].to_bits() != g[j * d + i].to_bits() {
                    return Err(format!("{what}: not exactly symmetric at ({i}, {j})"));
                }
                let e = (g[i * d + j] as f64 - want[i * d + j]).abs();
                if e > 1e-5 * scale {
                    return Err(format!(
                        "{what}: G[{i},{j}] = {} vs {}",
                        g[i * d + j],
                        want[i * d + j]
                    ));
                }
            }
        }
        Ok(())
    };
    let g = gram_of(gpu, d, Activations::F32(&a)).map_err(|e| e.to_string())?;
    check(&g, &reference(&a), "f32")?;
    let bits: Vec<u16> = a.iter().map(|&x| to_bf16_bits(x)).collect();
    let rounded: Vec<f32> = bits.iter().map(|&h| from_bf16_bits(h)).collect();
    let g = gram_of(gpu, d, Activations::Bf16(&bits)).map_err(|e| e.to_string())?;
    check(&g, &reference(&rounded), "bf16")?;
    // Accumulation over two batches equals one batch.
    let mut acc = sparseswaps_kernels::CudaGram::new(gpu, d).map_err(|e| e.to_string())?;
    acc.add(Activations::F32(&a[..50 * d]))
        .map_err(|e| e.to_string())?;
    acc.add(Activations::F32(&a[50 * d..]))
        .map_err(|e| e.to_string())?;
    if acc.tokens() != tokens as u64 {
        return Err("token count".into());
    }
    let g = acc.finish().map_err(|e| e.to_string())?;
    check(&g, &reference(&a), "two batches")
}

/// Constructed near ties (tests/ties): the CPU's pick, masks, counts and stops, where an
/// f32-only argmin would decide otherwise; 40 rows (more than one search block) wide.
fn near_ties_match_cpu(gpu: &CudaBackend) -> Result<(), String> {
    for t in &ties::NEAR_TIES {
        for (wide, rows) in [(false, 1), (true, 40)] {
            let l = ties::near_tie_layer(t, wide, rows);
            let p = LayerProblem::new(&l.weights, rows, l.d, &l.gram).map_err(|e| e.to_string())?;
            let states: Vec<RowState<'_>> = (0..rows)
                .map(|r| RowState::new(p.row(r), l.warm.row(r), &l.gram))
                .collect();
            let want = sparseswaps_core::best_swaps_unstructured(&l.gram, &states, &l.warm);
            ties::assert_near_tie(t, &states[0], &l, want[0].ok_or("no pair")?);
            let got = gpu
                .best_swaps_unstructured(&p, &l.warm)
                .map_err(|e| e.to_string())?;
            if want != got {
                return Err(format!(
                    "{} ({rows}x{}): first picks: cpu {:?}, gpu {:?}",
                    t.name, l.d, want[0], got[0]
                ));
            }
            for max_swaps in [Some(1), None] {
                let o = opts(max_swaps);
                let mut cm = l.warm.clone();
                let cr = refine(&p, &l.pattern, &mut cm, &o, &|_| {}).map_err(|e| e.to_string())?;
                let mut gm = l.warm.clone();
                let gr = gpu
                    .refine(&p, &l.pattern, &mut gm, &o, &|_| {})
                    .map_err(|e| e.to_string())?;
                same_result((&cm, &cr), (&gm, &gr))
                    .map_err(|e| format!("{} ({rows}x{}) {max_swaps:?}: {e}", t.name, l.d))?;
            }
        }
    }
    Ok(())
}

/// `search = "bounded"` is refused by the device backend itself (the same check as
/// `check_refine_options`), before any device work and whatever the budget.
fn bounded_search_is_refused(gpu: &CudaBackend) -> Result<(), String> {
    let c = case(4, 64, Pattern::unstructured(0.5).unwrap(), 20);
    let p = LayerProblem::new(&c.weights, c.d_out, c.d_in, &c.gram).map_err(|e| e.to_string())?;
    for budget in [
        sparseswaps_core::Budget::Row,
        sparseswaps_core::Budget::Layer,
    ] {
        let o = RefineOptions {
            search: Search::Bounded,
            budget,
            ..opts(Some(10))
        };
        let mut m = c.warm.clone();
        let e = match gpu.refine(&p, &c.pattern, &mut m, &o, &|_| {}) {
            Ok(_) => return Err(format!("bounded search ran on CUDA ({budget:?})")),
            Err(e) => e,
        };
        let want = format!("cuda backend failed: {BOUNDED_SEARCH_REFUSED}");
        if e.to_string() != want || m != c.warm {
            return Err(format!("refusal: {e} (mask changed: {})", m != c.warm));
        }
    }
    Ok(())
}

fn auto_selects_cuda(_gpu: &CudaBackend) -> Result<(), String> {
    let (b, reason) = select_backend(BackendKind::Auto).map_err(|e| e.to_string())?;
    if b.name() != "cuda" || reason.is_some() {
        return Err(format!("auto chose {} ({reason:?})", b.name()));
    }
    Ok(())
}

fn main() {
    let tests: &[(&str, TestFn)] = &[
        ("unstructured_matches_cpu", unstructured_matches_cpu),
        ("first_step_matches_core", first_step_matches_core),
        ("nm_matches_cpu", nm_matches_cpu),
        (
            "chunking_does_not_change_results",
            chunking_does_not_change_results,
        ),
        ("options_edge_cases", options_edge_cases),
        ("stops_are_1swap_optimal", stops_are_1swap_optimal),
        ("gram_matches_reference", gram_matches_reference),
        ("near_ties_match_cpu", near_ties_match_cpu),
        ("bounded_search_is_refused", bounded_search_is_refused),
        ("auto_selects_cuda", auto_selects_cuda),
    ];
    // `cargo test -- NAME` filters; libtest flags (--nocapture, --test-threads N, ...) are
    // ignored, with the value of those that take one.
    let mut filters: Vec<String> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let takes_value = [
            "--test-threads",
            "--skip",
            "--format",
            "--color",
            "--logfile",
            "-Z",
        ];
        if takes_value.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    let selected: Vec<_> = tests
        .iter()
        .filter(|(n, _)| filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        .collect();
    // `--list` (cargo test -- --list, nextest): libtest's terse listing.
    if std::env::args().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    let enabled = std::env::var("SPARSESWAPS_GPU_TESTS").is_ok_and(|v| v == "1");
    if !enabled {
        let here = match cuda_unavailable_reason() {
            Some(why) => format!("CUDA cannot run here: {why}"),
            None => "CUDA is available here; set SPARSESWAPS_GPU_TESTS=1 to run them".into(),
        };
        println!(
            "\nGPU TESTS DID NOT RUN ({} skipped): SPARSESWAPS_GPU_TESTS is not set to 1. {here}\n",
            selected.len()
        );
        // One recorded skip per test (a GPU is a legitimate skip, under CI too).
        for (name, _) in &selected {
            skip(
                Need::Gpu,
                format!("{name}: SPARSESWAPS_GPU_TESTS is not set to 1; {here}"),
            );
        }
        return;
    }
    let gpu = match CudaBackend::new(0) {
        Ok(b) => b,
        Err(e) => {
            println!("GPU tests requested (SPARSESWAPS_GPU_TESTS=1) but CUDA cannot run: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "\nrunning {} GPU tests on {}",
        selected.len(),
        gpu.device_name()
    );
    let mut failed = Vec::new();
    for (name, f) in &selected {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&gpu)));
        match r {
            Ok(Ok(())) => println!("test {name} ... ok"),
            Ok(Err(e)) => {
                println!("test {name} ... FAILED: {e}");
                failed.push(*name);
            }
            Err(_) => {
                println!("test {name} ... FAILED (panicked)");
                failed.push(*name);
            }
        }
    }
    println!(
        "\nGPU test result: {} passed; {} failed",
        selected.len() - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        println!("failures: {failed:?}");
        std::process::exit(1);
    }
}
