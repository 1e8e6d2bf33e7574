//! Building the exact row states (`c = G p`, `E` and the dense energy) of a layer's rows:
//! one row at a time (each streams the whole `d_in × d_in` Gram matrix from memory) next
//! to [`RowState::new_batch`] over 8 rows (one tiled walk of `G` serves all 8 from
//! cache). Single-threaded, so the figure is per core; the results are bit-identical
//! (tested in `crates/core/tests/engine_props.rs`).
//!
//! `cargo bench -p sparseswaps-benches --bench row_states`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparseswaps_benches::{llm_like_layer, wanda_mask_of};
use sparseswaps_core::{Pattern, RowState};

fn row_states(c: &mut Criterion) {
    let mut group = c.benchmark_group("row_states");
    group.sample_size(10);
    // 8 rows at the input widths of Llama-3.1-8B's attention and MLP-down (4096) and of
    // Llama-3.2-1B's MLP-down (8192).
    for d in [4096usize, 8192] {
        let rows = 8;
        let layer = llm_like_layer(rows, d, 64, 7);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let mask = wanda_mask_of(&layer, &pattern);
        let ws: Vec<(&[f32], &[u8])> = (0..rows)
            .map(|r| (&layer.weights[r * d..(r + 1) * d], mask.row(r)))
            .collect();
        // Throughput in Gram entries read per row.
        group.throughput(Throughput::Elements((rows * d * d) as u64));
        group.bench_function(format!("one_row_at_a_time_d{d}_rows{rows}"), |b| {
            b.iter(|| {
                ws.iter()
                    .map(|&(w, m)| RowState::new(w, m, &layer.gram).error())
                    .sum::<f64>()
            })
        });
        group.bench_function(format!("one_walk_d{d}_rows{rows}"), |b| {
            b.iter(|| {
                RowState::new_batch(&ws, &layer.gram)
                    .iter()
                    .map(|s| s.error())
                    .sum::<f64>()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, row_states);
criterion_main!(benches);
