//! Timing of the CUDA backend at Llama-3.1-8B layer shapes, with a CPU agreement check.
//!
//! For each shape (`q/k/v/o` 4096x4096, `gate/up` 14336x4096, `down` 4096x14336) and
//! pattern (50% unstructured, 2:4): a synthetic LLM-like layer (`llm_like_layer`), a Wanda
//! warm start, the whole layer refined on the GPU (timed), and the first rows refined on
//! the CPU for comparison (masks equal, per-row errors within 1e-5 relative). Also times
//! the cuBLAS Gram accumulation from bf16 activations. Every figure is written, line by
//! line, to `--out` (default `gpu-check-results.txt`), so a run cut short keeps what it
//! measured.
//!
//! ```sh
//! cargo run --release -p sparseswaps-kernels --example gpu_timing -- --out results.txt
//! ```
//!
//! Options: `--out PATH`, `--max-swaps N` (100), `--tokens N` (64, calibration tokens of
//! the synthetic Gram), `--cpu-rows N` (16: rows checked on the CPU per layer),
//! `--quick` (1024-wide shapes only, for a smoke test).

use std::fs::File;
use std::io::Write;
use std::time::Instant;

use rayon::prelude::*;
use sparseswaps_core::{refine, LayerProblem, Mask, Pattern, RefineOptions, RefineReport, Search};
use sparseswaps_kernels::{gram_of, ptx, Activations, CudaBackend};
use sparseswaps_testkit::synthetic::{llm_like_layer, SplitMix};

struct Args {
    out: String,
    max_swaps: u32,
    tokens: usize,
    cpu_rows: usize,
    quick: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        out: "gpu-check-results.txt".into(),
        max_swaps: 100,
        tokens: 64,
        cpu_rows: 16,
        quick: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut val = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match k.as_str() {
            "--out" => a.out = val("--out")?,
            "--max-swaps" => {
                a.max_swaps = val("--max-swaps")?.parse().map_err(|e| format!("{e}"))?
            }
            "--tokens" => a.tokens = val("--tokens")?.parse().map_err(|e| format!("{e}"))?,
            "--cpu-rows" => a.cpu_rows = val("--cpu-rows")?.parse().map_err(|e| format!("{e}"))?,
            "--quick" => a.quick = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// Writes a line to stdout and the results file (flushed: partial runs keep their lines).
fn emit(f: &mut File, line: &str) {
    println!("{line}");
    let _ = writeln!(f, "{line}");
    let _ = f.flush();
}

/// CPU refinement of the first `rows` rows, one row per task so all cores work even on a
/// few rows (the engine batches 16 rows per task); rows are independent problems, so the
/// result is the engine's own.
fn cpu_rows(
    weights: &[f32],
    gram: &[f32],
    d: usize,
    warm: &Mask,
    rows: usize,
    pattern: &Pattern,
    opts: &RefineOptions,
) -> Vec<(Vec<u8>, RefineReport)> {
    (0..rows)
        .into_par_iter()
        .map(|r| {
            let p = LayerProblem::new(&weights[r * d..(r + 1) * d], 1, d, gram).unwrap();
            let mut m = Mask::new(1, d, warm.row(r).to_vec()).unwrap();
            let rep = refine(&p, pattern, &mut m, opts, &|_| {}).unwrap();
            (m.into_vec(), rep)
        })
        .collect()
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gpu_timing: {e}");
            std::process::exit(2);
        }
    };
    let mut out = match File::create(&args.out) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("gpu_timing: cannot write {}: {e}", args.out);
            std::process::exit(2);
        }
    };
    let gpu = match CudaBackend::new(0) {
        Ok(b) => b,
        Err(e) => {
            emit(&mut out, &format!("GPU timing not run: {e}"));
            std::process::exit(1);
        }
    };
    let (free, total) = gpu.memory().unwrap_or((0, 0));
    emit(
        &mut out,
        &format!(
            "sparseswaps GPU check: device {} ({} GiB, {} GiB free); {}",
            gpu.device_name(),
            total >> 30,
            free >> 30,
            ptx::build_info()
        ),
    );
    emit(
        &mut out,
        &format!(
            "synthetic LLM-like layers (llm_like_layer, {} tokens), Wanda warm start, max_swaps {}, CPU threads {}",
            args.tokens,
            args.max_swaps,
            rayon::current_num_threads()
        ),
    );
    emit(
        &mut out,
        "layer d_out x d_in | pattern | GPU s/layer | GPU s for one search step (incl. upload) | admissible pairs/s | swaps | error reduction | CPU rows checked | masks equal | max rel. error diff | CPU s/row | CPU s/layer (extrapolated)",
    );
    let shapes: Vec<(&str, usize, usize)> = if args.quick {
        vec![("quick", 512, 1024), ("quick", 1024, 1024)]
    } else {
        vec![
            ("q/k/v/o", 4096, 4096),
            ("gate/up", 14336, 4096),
            ("down", 4096, 14336),
        ]
    };
    // The CUDA backend searches exhaustively (it refuses the bounded search); the CPU rows
    // checked against it run the same options.
    let opts = RefineOptions {
        max_swaps: Some(args.max_swaps),
        search: Search::Exhaustive,
        ..RefineOptions::default()
    };
    let mut all_agree = true;
    for (name, d_out, d_in) in shapes {
        let t = Instant::now();
        let layer = llm_like_layer(d_out, d_in, args.tokens, 42);
        let gen_s = t.elapsed().as_secs_f64();
        let diag: Vec<f32> = (0..d_in).map(|i| layer.gram[i * d_in + i]).collect();
        let problem = LayerProblem::new(&layer.weights, d_out, d_in, &layer.gram).unwrap();
        println!("  ({name} {d_out}x{d_in}: synthetic data in {gen_s:.1} s)");
        for pattern in [
            Pattern::unstructured(0.5).unwrap(),
            Pattern::n_m(2, 4).unwrap(),
        ] {
            let warm = sparseswaps_warmstart_wanda::wanda_mask(
                &layer.weights,
                d_out,
                d_in,
                &diag,
                &pattern,
            )
            .unwrap();
            let mut gm = warm.clone();
            let rep = match gpu.refine_layer(&problem, &pattern, &mut gm, &opts, &|_| {}) {
                Ok(r) => r,
                Err(e) => {
                    emit(
                        &mut out,
                        &format!("{name} {d_out}x{d_in} | {pattern} | GPU FAILED: {e}"),
                    );
                    all_agree = false;
                    continue;
                }
            };
            // One search step alone (upload, exact c, one exhaustive step, nothing applied):
            // how the layer time splits between the search and the rest.
            let step_s = if pattern.group().is_none() {
                let t = Instant::now();
                match gpu.best_swaps_unstructured(&problem, &warm) {
                    Ok(_) => format!("{:.3}", t.elapsed().as_secs_f64()),
                    Err(e) => format!("failed: {e}"),
                }
            } else {
                "-".into()
            };
            let rows = args.cpu_rows.min(d_out);
            let t = Instant::now();
            let cpu = cpu_rows(
                &layer.weights,
                &layer.gram,
                d_in,
                &warm,
                rows,
                &pattern,
                &opts,
            );
            let cpu_s = t.elapsed().as_secs_f64();
            // Per-row CPU time: rows ran in parallel, one per task.
            let waves = rows.div_ceil(rayon::current_num_threads()).max(1);
            let cpu_s_row = cpu_s / waves as f64;
            let mut equal = 0;
            let mut max_rel = 0.0f64;
            for (r, (m, crep)) in cpu.iter().enumerate() {
                if m.as_slice() == gm.row(r) {
                    equal += 1;
                }
                let (a, b) = (crep.rows[0].final_error, rep.rows[r].final_error);
                let rel = (a - b).abs() / a.abs().max(f64::MIN_POSITIVE);
                max_rel = max_rel.max(rel);
            }
            let agree = equal == rows || max_rel <= 1e-5;
            all_agree &= agree;
            emit(
                &mut out,
                &format!(
                    "{name} {d_out}x{d_in} | {pattern} | {:.3} | {step_s} | {:.3e} | {} | {:.2}% | {rows} | {equal}/{rows} | {max_rel:.2e} | {cpu_s_row:.3} | {:.1}{}",
                    rep.seconds,
                    rep.pairs_evaluated as f64 / rep.seconds.max(1e-12),
                    rep.swaps,
                    100.0 * rep.reduction,
                    cpu_s_row * d_out as f64 / rayon::current_num_threads() as f64,
                    if agree { "" } else { "  <-- DISAGREES" }
                ),
            );
        }
    }

    // Gram accumulation on cuBLAS from bf16 activations, checked on sampled entries.
    for d in [4096usize, 14336] {
        if args.quick && d > 1024 {
            continue;
        }
        let tokens = 4096;
        let mut rng = SplitMix::new(7);
        let bits: Vec<u16> = (0..tokens * d)
            .map(|_| {
                let b = (rng.normal() as f32).to_bits();
                ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
            })
            .collect();
        // Warm-up (cuBLAS picks its kernels on the first call), then the timed call.
        let _ = gram_of(&gpu, d, Activations::Bf16(&bits[..d * 64]));
        let t = Instant::now();
        let g = match gram_of(&gpu, d, Activations::Bf16(&bits)) {
            Ok(g) => g,
            Err(e) => {
                emit(&mut out, &format!("Gram {d}: FAILED: {e}"));
                all_agree = false;
                continue;
            }
        };
        let secs = t.elapsed().as_secs_f64();
        let x = |t: usize, i: usize| f32::from_bits((bits[t * d + i] as u32) << 16) as f64;
        let mut worst = 0.0f64;
        for s in 0..32 {
            let (i, j) = ((s * 7919) % d, (s * 104_729 + 13) % d);
            let want: f64 = (0..tokens).map(|t| x(t, i) * x(t, j)).sum();
            let scale: f64 = ((0..tokens).map(|t| x(t, i) * x(t, i)).sum::<f64>()
                * (0..tokens).map(|t| x(t, j) * x(t, j)).sum::<f64>())
            .sqrt();
            worst = worst.max((g[i * d + j] as f64 - want).abs() / scale);
        }
        emit(
            &mut out,
            &format!(
                "Gram {d}x{d} from {tokens} bf16 tokens (cuBLAS, f32 out): {secs:.3} s incl. upload and download, {:.1} GFLOP/s end to end, max sampled error {worst:.1e} (relative to sqrt(G_ii G_jj))",
                2.0 * (d * d * tokens) as f64 / secs / 1e9
            ),
        );
    }
    emit(
        &mut out,
        if all_agree {
            "CPU-GPU agreement: OK on every checked layer"
        } else {
            "CPU-GPU agreement: FAILED (see the lines marked above)"
        },
    );
    if !all_agree {
        std::process::exit(1);
    }
}
