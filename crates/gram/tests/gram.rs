//! Gram accumulation against an f64 reference, merging, and safetensors round trips.

use sparseswaps_gram::{GramAccumulator, GramDtype, GramError, CHUNK_TOKENS, TILE};
use sparseswaps_tensor_io::TensorSpec;

/// SplitMix64 + Box–Muller: reproducible test data.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.uniform()).cos()
    }
}

/// LLM-like activations: log-normal channel scales, every 37th channel a 100x outlier
/// with a large non-zero mean (as the massive activations of real hidden states), and a
/// shared low-rank component so channels correlate.
fn activations(tokens: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    let scale: Vec<f64> = (0..d).map(|_| (0.5 * rng.normal()).exp()).collect();
    let outlier = |j: usize| j % 37 == 5;
    let mut x = Vec::with_capacity(tokens * d);
    for _ in 0..tokens {
        let f = [rng.normal(), rng.normal()];
        for (j, &sc) in scale.iter().enumerate() {
            let shared = 0.7 * f[j % 2];
            let v = sc * (rng.normal() + shared);
            x.push(if outlier(j) {
                (100.0 * (v + 3.0)) as f32
            } else {
                v as f32
            });
        }
    }
    x
}

/// `Σ_t x_t x_tᵀ` in f64, naive loops (the reference).
fn reference(batches: &[(Vec<f32>, usize)], d: usize) -> Vec<f64> {
    let mut g = vec![0.0f64; d * d];
    for (x, t) in batches {
        for r in 0..*t {
            let row = &x[r * d..(r + 1) * d];
            for i in 0..d {
                let xi = row[i] as f64;
                for j in 0..=i {
                    g[i * d + j] += xi * row[j] as f64;
                }
            }
        }
    }
    for i in 0..d {
        for j in 0..i {
            g[j * d + i] = g[i * d + j];
        }
    }
    g
}

/// Largest error relative to the Cauchy–Schwarz scale `sqrt(G_ii G_jj)` of each entry.
fn normalized_err(got: &[f64], want: &[f64], d: usize) -> f64 {
    let mut worst = 0.0f64;
    for i in 0..d {
        for j in 0..d {
            let scale = (want[i * d + i] * want[j * d + j]).sqrt();
            worst = worst.max((got[i * d + j] - want[i * d + j]).abs() / scale);
        }
    }
    worst
}

#[test]
fn precision_against_f64_reference_with_outlier_channels() {
    // Two tile rows (one ragged), several batches, one batch longer than a GEMM chunk.
    let d = TILE + 44;
    let sizes = [700usize, 1, 333, CHUNK_TOKENS + 517, 900, 64];
    let batches: Vec<(Vec<f32>, usize)> = sizes
        .iter()
        .enumerate()
        .map(|(b, &t)| (activations(t, d, 100 + b as u64), t))
        .collect();
    let want = reference(&batches, d);
    let mut acc = GramAccumulator::new(d);
    for (x, t) in &batches {
        acc.add_batch(x, *t).unwrap();
    }
    assert_eq!(acc.tokens(), sizes.iter().sum::<usize>() as u64);
    assert_eq!(acc.batches(), sizes.len() as u64);
    let got = acc.to_f64();
    let err = normalized_err(&got, &want, d);
    // A plain f32 running sum over the same tokens, for comparison.
    let mut f32_sum = vec![0.0f32; d * d];
    for (x, t) in &batches {
        for r in 0..*t {
            let row = &x[r * d..(r + 1) * d];
            for i in 0..d {
                for j in 0..d {
                    f32_sum[i * d + j] += row[i] * row[j];
                }
            }
        }
    }
    let f32_sum: Vec<f64> = f32_sum.into_iter().map(f64::from).collect();
    let f32_err = normalized_err(&f32_sum, &want, d);
    eprintln!(
        "normalized max error: f32 GEMM + f64 accumulator {err:.3e}, plain f32 sum {f32_err:.3e}"
    );
    assert!(err < 2e-6, "normalized error {err:e}");
    assert!(err < f32_err, "{err:e} vs plain f32 {f32_err:e}");
    // Exactly symmetric, and the outlier channels really dominate the scale.
    for i in 0..d {
        for j in 0..i {
            assert_eq!(got[i * d + j], got[j * d + i]);
        }
    }
    assert!(want[5 * d + 5] > 1e3 * want[d + 1]);
    let g32 = acc.to_f32();
    assert_eq!(g32.len(), d * d);
    // Built from the tiles directly: every entry is the f64 Gram's, narrowed.
    let narrowed: Vec<f32> = got.iter().map(|&v| v as f32).collect();
    assert_eq!(g32, narrowed);
    assert_eq!(acc.diag()[9], got[9 * d + 9]);
}

#[test]
fn merge_of_partials_equals_one_pass() {
    let d = TILE + 3;
    let batches: Vec<(Vec<f32>, usize)> = (0..6)
        .map(|b| (activations(50 + 13 * b, d, b as u64), 50 + 13 * b))
        .collect();
    let mut one = GramAccumulator::new(d);
    for (x, t) in &batches {
        one.add_batch(x, *t).unwrap();
    }
    let mut parts: Vec<GramAccumulator> = batches
        .chunks(2)
        .map(|c| {
            let mut p = GramAccumulator::new(d);
            for (x, t) in c {
                p.add_batch(x, *t).unwrap();
            }
            p
        })
        .collect();
    let mut merged = parts.remove(0);
    for p in &parts {
        merged.merge(p).unwrap();
    }
    assert_eq!(merged.tokens(), one.tokens());
    assert_eq!(merged.batches(), one.batches());
    let (a, b) = (merged.to_f64(), one.to_f64());
    let err = normalized_err(&a, &b, d);
    assert!(err < 1e-13, "merge differs from one pass by {err:e}");
    let e = merged.merge(&GramAccumulator::new(d + 1)).unwrap_err();
    assert!(matches!(e, GramError::WidthMismatch { .. }));
    assert_eq!(
        e.to_string(),
        format!("cannot merge a Gram of d_in {} into one of d_in {d}", d + 1)
    );
}

#[test]
fn save_and_load_keep_tokens_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = 40;
    let mut acc = GramAccumulator::new(d);
    acc.add_batch(&activations(123, d, 9), 123).unwrap();
    acc.add_batch(&activations(5, d, 10), 5).unwrap();
    for (dtype, name) in [(GramDtype::F64, "g64"), (GramDtype::F32, "g32")] {
        let p = dir.path().join(format!("{name}.safetensors"));
        acc.save(&p, dtype).unwrap();
        let back = GramAccumulator::load(&TensorSpec::parse(p.to_str().unwrap())).unwrap();
        assert_eq!(back.tokens(), 128);
        assert_eq!(back.batches(), 2);
        match dtype {
            GramDtype::F64 => assert_eq!(back, acc),
            GramDtype::F32 => assert_eq!(back.to_f32(), acc.to_f32()),
        }
        // The metadata says what the file holds.
        let bytes = std::fs::read(&p).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["tokens"], "128");
        assert_eq!(
            meta["dtype"],
            if dtype == GramDtype::F64 {
                "f64"
            } else {
                "f32"
            }
        );
        assert_eq!(meta["format"], "sparseswaps-gram");
        // The engine's loader reads it too.
        let g = sparseswaps_tensor_io::read_tensor_f32(&TensorSpec::parse(p.to_str().unwrap()), 2)
            .unwrap();
        assert_eq!(g.shape, vec![d, d]);
    }
    // A file without the token count is refused, naming the file.
    let p = dir.path().join("plain.safetensors");
    sparseswaps_tensor_io::write_safetensors_atomic(
        &p,
        &[(
            "gram".into(),
            sparseswaps_tensor_io::OwnedTensor::f32(vec![2, 2], &[1.0, 0.0, 0.0, 1.0]),
        )],
        None,
    )
    .unwrap();
    let e = GramAccumulator::load(&TensorSpec::parse(p.to_str().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("plain.safetensors") && e.contains("'tokens'"),
        "{e}"
    );
    let e = GramAccumulator::load(&TensorSpec::parse(&format!(
        "{}:nope",
        dir.path().join("g64.safetensors").display()
    )))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("no tensor named 'nope'") && e.contains("gram"),
        "{e}"
    );
}

#[test]
fn empty_and_tiny_batches() {
    let mut acc = GramAccumulator::new(2);
    acc.add_batch(&[], 0).unwrap();
    assert_eq!(acc.tokens(), 0);
    assert_eq!(acc.to_f64(), vec![0.0; 4]);
    acc.add_batch(&[3.0, -1.0], 1).unwrap();
    assert_eq!(acc.to_f64(), vec![9.0, -3.0, -3.0, 1.0]);
    assert_eq!(acc.get(0, 1), -3.0);
    let back = GramAccumulator::from_full(2, &acc.to_f64(), acc.tokens()).unwrap();
    assert_eq!(back.to_f64(), acc.to_f64());
    assert!(GramAccumulator::from_full(2, &[1.0; 3], 0).is_err());
}
