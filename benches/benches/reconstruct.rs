//! Reconstruction of the kept weights (one Cholesky solve per row, rows in parallel) on
//! synthetic LLM-like layers with SmolLM2-135M shapes, at 50% with a Wanda mask.
//!
//! `cargo bench -p sparseswaps-benches --bench reconstruct`

use criterion::{criterion_group, criterion_main, Criterion};
use sparseswaps_benches::{llm_like_layer, wanda_mask_of};
use sparseswaps_core::{LayerProblem, Pattern};
use sparseswaps_reconstruct::{reconstruct, ReconstructOptions};
use std::time::Duration;

fn reconstruct_layers(c: &mut Criterion) {
    let mut group = c.benchmark_group("reconstruct");
    // A whole layer per iteration takes ~0.1–3 s: few samples, short measurement.
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.warm_up_time(Duration::from_secs(1));
    // SmolLM2-135M: q/o 576x576, k/v 192x576, gate/up 1536x576, down 576x1536.
    for (name, d_out, d_in) in [
        ("q_o", 576usize, 576usize),
        ("k_v", 192, 576),
        ("gate_up", 1536, 576),
        ("down", 576, 1536),
    ] {
        let layer = llm_like_layer(d_out, d_in, 256, 11);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let mask = wanda_mask_of(&layer, &pattern);
        let problem = LayerProblem::new(&layer.weights, d_out, d_in, &layer.gram).unwrap();
        let opts = ReconstructOptions::default();
        let r = reconstruct(&problem, &mask, &opts).unwrap();
        println!(
            "{name} {d_out}x{d_in}: relative error {:.4} -> {:.4} ({} of {d_out} rows re-fitted)",
            r.mask_relative(),
            r.reconstructed_relative(),
            r.rows_refit
        );
        group.bench_function(format!("{name}_{d_out}x{d_in}_50pct"), |b| {
            b.iter(|| reconstruct(&problem, &mask, &opts).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, reconstruct_layers);
criterion_main!(benches);
