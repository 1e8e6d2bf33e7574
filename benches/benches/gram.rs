//! Gram accumulation throughput: one batch of activations `[tokens, d_in]` added into a
//! running `G += Xᵀ X` (f32 GEMM on the lower-triangle tiles, f64 accumulator).
//!
//! Convention: criterion's "elements" are flops of the *full* product, `2 · tokens ·
//! d_in²`, so `Gelem/s` reads as effective GFLOP/s; the accumulator computes only the
//! triangle (about half of that), so the arithmetic it actually does runs at roughly half
//! the figure shown.
//!
//! `cargo bench -p sparseswaps-benches --bench gram`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sparseswaps_benches::SplitMix;
use sparseswaps_gram::GramAccumulator;

fn gram(c: &mut Criterion) {
    let mut group = c.benchmark_group("gram_accumulate");
    group.sample_size(10);
    let tokens = 2048usize;
    for d in [576usize, 1536, 4096] {
        let mut rng = SplitMix::new(d as u64);
        // LLM-like: every 97th channel a 100x outlier.
        let x: Vec<f32> = (0..tokens * d)
            .map(|i| {
                let v = rng.normal() as f32;
                if i % d % 97 == 13 {
                    100.0 * v
                } else {
                    v
                }
            })
            .collect();
        let mut acc = GramAccumulator::new(d);
        group.throughput(Throughput::Elements(2 * tokens as u64 * (d * d) as u64));
        group.bench_function(format!("d{d}_tokens{tokens}"), |b| {
            b.iter(|| acc.add_batch(&x, tokens).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, gram);
criterion_main!(benches);
