//! One swap step (the search for the best admissible pair of every row), exhaustive and
//! bounded, on synthetic LLM-like layers at 50% sparsity; throughput in admissible
//! pairs per second (the bounded search covers the same pairs by its bound).
//!
//! `cargo bench -p sparseswaps-benches --bench swap_step`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparseswaps_benches::{llm_like_layer, wanda_mask_of};
use sparseswaps_core::{
    best_swaps_bounded, best_swaps_unstructured, column_correlation_bound, Pattern, RowState,
};

fn swap_step(c: &mut Criterion) {
    let mut group = c.benchmark_group("swap_step");
    group.sample_size(10);
    // (d_in, rows benchmarked): all rows of a 1024x1024 layer; 256 rows of a 4096x4096
    // layer (rows are independent, so pairs/s does not depend on how many are timed).
    for (d, rows) in [(1024usize, 1024usize), (4096, 256)] {
        let layer = llm_like_layer(rows, d, 64, 7);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let mask = wanda_mask_of(&layer, &pattern);
        let states: Vec<RowState<'_>> = (0..rows)
            .map(|r| RowState::new(&layer.weights[r * d..(r + 1) * d], mask.row(r), &layer.gram))
            .collect();
        let k = pattern.kept_per_row(d) as u64;
        group.throughput(Throughput::Elements(rows as u64 * k * (d as u64 - k)));
        group.bench_function(format!("exhaustive_{d}x{d}_rows{rows}_50pct"), |b| {
            b.iter(|| best_swaps_unstructured(&layer.gram, &states, &mask))
        });
        // The bounded search finds the same pairs; its throughput is still counted in
        // admissible pairs, so the two figures compare directly.
        let rho = column_correlation_bound(&layer.gram, d);
        let evaluated: u64 = best_swaps_bounded(&layer.gram, &rho, &states, &mask)
            .iter()
            .map(|x| x.1)
            .sum();
        println!(
            "{d}x{d}: bounded search evaluates {evaluated} of {} admissible pairs",
            rows as u64 * k * (d as u64 - k)
        );
        group.bench_function(format!("bounded_{d}x{d}_rows{rows}_50pct"), |b| {
            b.iter(|| best_swaps_bounded(&layer.gram, &rho, &states, &mask))
        });
    }
    group.finish();
}

criterion_group!(benches, swap_step);
criterion_main!(benches);
