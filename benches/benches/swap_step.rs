//! One exhaustive swap step (the search over all admissible pairs of every row) on
//! synthetic LLM-like layers at 50% sparsity; throughput in admissible pairs per second.
//!
//! `cargo bench -p sparseswaps-benches --bench swap_step`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparseswaps_benches::llm_like_layer;
use sparseswaps_core::{best_swaps_unstructured, Pattern, RowState};

fn swap_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("exhaustive_step");
    group.sample_size(10);
    // (d_in, rows benchmarked): all rows of a 1024x1024 layer; 256 rows of a 4096x4096
    // layer (rows are independent, so pairs/s does not depend on how many are timed).
    for (d, rows) in [(1024usize, 1024usize), (4096, 256)] {
        let layer = llm_like_layer(rows, d, 64, 7);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let diag: Vec<f32> = (0..d).map(|i| layer.gram[i * d + i]).collect();
        let mask =
            sparseswaps_warmstart_wanda::wanda_mask(&layer.weights, rows, d, &diag, &pattern)
                .unwrap();
        let states: Vec<RowState<'_>> = (0..rows)
            .map(|r| RowState::new(&layer.weights[r * d..(r + 1) * d], mask.row(r), &layer.gram))
            .collect();
        let k = pattern.kept_per_row(d) as u64;
        group.throughput(Throughput::Elements(rows as u64 * k * (d as u64 - k)));
        group.bench_function(format!("{d}x{d}_rows{rows}_50pct"), |b| {
            b.iter(|| best_swaps_unstructured(&layer.gram, &states, &mask))
        });
    }
    group.finish();
}

criterion_group!(benches, swap_step);
criterion_main!(benches);
