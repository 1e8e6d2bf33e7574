//! One step of the re-fitted objective (`refine.objective = "refit"`) next to one step
//! of the mask objective, per row, on synthetic LLM-like rows of SmolLM2-135M and
//! Llama-3.1-8B input widths at 50%: the search over every admissible pair (both
//! objectives evaluate `k (d_in − k)` pairs), the refit state's incremental swap, and the
//! memory each objective keeps per row.
//!
//! `cargo bench -p sparseswaps-benches --bench refit_step`
//!
//! The refit objective's exact recomputation (Cholesky of `G̃[K,K]`, its inverse and
//! `V = P G[K,Q]`, `O(k³ + k² (d_in − k))`) runs every `recompute_every` swaps; it is
//! timed once per shape and printed (seconds per call), not sampled: at
//! `d_in = 14336` one call takes tens of seconds on two cores.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparseswaps_benches::{llm_like_layer, wanda_mask_of};
use sparseswaps_core::{best_swaps_unstructured, Mask, Pattern, RowState};
use sparseswaps_reconstruct::refit_swaps::{best_pair, RefitRowState};
use sparseswaps_reconstruct::ReconstructOptions;
use std::time::{Duration, Instant};

/// `(label, d_in)`: SmolLM2-135M's two input widths (q/k/v/o/gate/up read 576, down
/// reads 1536) and Llama-3.1-8B's (4096, and 14336 for down_proj).
const SHAPES: [(&str, usize); 4] = [
    ("smollm2_576", 576),
    ("smollm2_down_1536", 1536),
    ("llama8b_4096", 4096),
    ("llama8b_down_14336", 14336),
];

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn refit_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("refit_step");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    for (label, d) in SHAPES {
        let layer = llm_like_layer(1, d, 64, 17);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let mask: Mask = wanda_mask_of(&layer, &pattern);
        let k = mask.row(0).iter().filter(|&&m| m == 1).count();
        let pairs = (k * (d - k)) as u64;
        group.throughput(Throughput::Elements(pairs));

        // The mask objective: the row's state is `c = G (m ⊙ w)` and a few scalars.
        let states = [RowState::new(&layer.weights, mask.row(0), &layer.gram)];
        group.bench_function(format!("mask_search_{label}"), |b| {
            b.iter(|| best_swaps_unstructured(&layer.gram, &states, &mask))
        });

        // The refit objective, with the re-fit's own damping on the starting kept set.
        let kept_diag: f64 = (0..d)
            .filter(|&j| mask.row(0)[j] == 1)
            .map(|j| layer.gram[j * d + j] as f64)
            .sum::<f64>()
            / k as f64;
        let lambda = ReconstructOptions::default().damping * kept_diag;
        let t = Instant::now();
        let mut state = RefitRowState::new(&layer.weights, mask.row(0), &layer.gram, lambda)
            .expect("the synthetic Gram is positive definite");
        let build = t.elapsed().as_secs_f64();
        let t = Instant::now();
        assert!(
            state.refresh(),
            "exact recomputation of a positive definite block"
        );
        let refresh = t.elapsed().as_secs_f64();
        println!(
            "{label}: d_in {d}, k {k}, {pairs} pairs; memory per row: mask objective {:.3} MiB \
             (c, f64), refit objective {:.1} MiB (P, V and vectors) + {:.1} MiB during a \
             recomputation; exact recomputation {refresh:.3} s (first build {build:.3} s)",
            mib(8 * d),
            mib(state.bytes()),
            mib(state.refresh_bytes()),
        );
        group.bench_function(format!("refit_search_{label}"), |b| {
            b.iter(|| best_pair(&state, None))
        });
        // One incremental swap and its inverse per iteration (the state comes back to
        // where it was, so every sample times the same work): two O(k (d_in − k) + k²)
        // updates.
        let (u, q) = {
            let kept: Vec<usize> = (0..d).filter(|&j| mask.row(0)[j] == 1).collect();
            let pruned: Vec<usize> = (0..d).filter(|&j| mask.row(0)[j] == 0).collect();
            (kept[k / 2], pruned[(d - k) / 2])
        };
        group.throughput(Throughput::Elements(2));
        group.bench_function(format!("refit_swap_and_back_{label}"), |b| {
            b.iter(|| {
                state.apply(u, q).expect("admissible swap");
                state.apply(q, u).expect("admissible swap back");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, refit_step);
criterion_main!(benches);
