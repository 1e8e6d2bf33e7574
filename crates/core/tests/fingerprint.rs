//! A golden fingerprint of the engine's results: masks, swap/step/pair counts, stop
//! reasons, error bits, cross-row moves and error messages of seeded problems
//! (unstructured, N:M, band and layer budgets, both searches, rows wider than one Gram
//! tile). Refactors must leave it unchanged; a change of behaviour must update it on
//! purpose.
//!
//! The generator is self-contained (not the shared test helpers) so that the golden
//! value cannot move when those change. The engine is bit-identical across thread
//! counts and SIMD paths (see `simd.rs`), so the value holds on every machine.

use sparseswaps_core::{
    refine, Budget, LayerProblem, Mask, Pattern, RefineOptions, RefineReport, Search,
};

/// FNV-1a, 64 bit.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in (-1, 1).
    fn sym(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// Weights, Gram (`X Xᵀ` of `tokens` samples with uneven channel scales) and rows
/// scaled unevenly, so budget modes move weights between rows.
fn problem(d_out: usize, d: usize, tokens: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng(seed);
    let scale: Vec<f64> = (0..d)
        .map(|_| 0.1 + 3.0 * rng.sym().abs().powi(3))
        .collect();
    let mut x = vec![0.0f64; tokens * d];
    for t in 0..tokens {
        let f = rng.sym();
        for j in 0..d {
            x[t * d + j] = scale[j] * (rng.sym() + 0.5 * f);
        }
    }
    let mut g = vec![0.0f32; d * d];
    for i in 0..d {
        for j in 0..=i {
            let v: f64 = (0..tokens).map(|t| x[t * d + i] * x[t * d + j]).sum();
            g[i * d + j] = v as f32;
            g[j * d + i] = v as f32;
        }
    }
    let w = (0..d_out * d)
        .map(|i| (rng.sym() * [0.2, 1.0, 3.0][(i / d) % 3]) as f32)
        .collect();
    (w, g)
}

/// A warm start following the pattern: `k` random columns per row, or `n` per group.
fn warm(d_out: usize, d: usize, pattern: &Pattern, seed: u64) -> Mask {
    let mut rng = Rng(seed ^ 0xABCD);
    let mut data = vec![0u8; d_out * d];
    let (len, take) = match pattern.group() {
        Some((n, m)) => (m, n),
        None => (d, pattern.kept_per_row(d)),
    };
    for chunk in data.chunks_mut(len) {
        let mut idx: Vec<usize> = (0..len).collect();
        for i in 0..take {
            let j = i + (rng.next() % (len - i) as u64) as usize;
            idx.swap(i, j);
            chunk[idx[i]] = 1;
        }
    }
    Mask::new(d_out, d, data).unwrap()
}

fn hash_report(h: &mut Fnv, mask: &Mask, rep: &RefineReport) {
    h.bytes(mask.as_slice());
    for r in &rep.rows {
        h.u64(r.swaps as u64);
        h.u64(r.steps as u64);
        h.u64(r.pairs);
        h.u64(r.warm_error.to_bits());
        h.u64(r.final_error.to_bits());
        h.u64(r.energy.to_bits());
        h.bytes(format!("{:?}", r.stop).as_bytes());
    }
    h.u64(rep.final_error.to_bits());
    h.u64(rep.cross_moves);
    h.u64(rep.cross_rounds as u64);
    h.u64(rep.row_phase_error.map_or(0, f64::to_bits));
    h.bytes(rep.kept.summary().as_bytes());
}

struct Case {
    d_out: usize,
    d: usize,
    pattern: Pattern,
    cap: Option<u32>,
    budget: Budget,
    seed: u64,
}

fn cases() -> Vec<Case> {
    let un = |s| Pattern::unstructured(s).unwrap();
    let band = Budget::Band {
        max_row_imbalance: 0.25,
    };
    let c = |d_out, d, pattern, cap, budget, seed| Case {
        d_out,
        d,
        pattern,
        cap,
        budget,
        seed,
    };
    vec![
        c(20, 37, un(0.5), None, Budget::Row, 1),
        c(9, 50, un(0.7), Some(5), Budget::Row, 2),
        c(17, 23, un(0.3), None, Budget::Row, 3),
        c(12, 48, Pattern::n_m(2, 4).unwrap(), None, Budget::Row, 4),
        c(7, 40, Pattern::n_m(1, 4).unwrap(), Some(3), Budget::Row, 5),
        c(11, 33, un(0.5), None, band, 6),
        c(10, 41, un(0.6), Some(9), Budget::Layer, 7),
        c(8, 30, un(0.5), None, Budget::Layer, 8),
        c(3, 1030, un(0.5), Some(25), Budget::Row, 9),
        c(4, 1030, un(0.5), Some(12), Budget::Layer, 10),
    ]
}

fn fingerprint() -> u64 {
    let mut h = Fnv::new();
    for case in cases() {
        let (w, g) = problem(case.d_out, case.d, 48, case.seed);
        let p = LayerProblem::new(&w, case.d_out, case.d, &g).unwrap();
        for search in [Search::Bounded, Search::Exhaustive] {
            let mut mask = warm(case.d_out, case.d, &case.pattern, case.seed);
            let opts = RefineOptions {
                max_swaps: case.cap,
                search,
                budget: case.budget,
                ..RefineOptions::default()
            };
            let rep = refine(&p, &case.pattern, &mut mask, &opts, &|_| {}).unwrap();
            hash_report(&mut h, &mask, &rep);
        }
    }
    // Error messages of bad input.
    let (w, g) = problem(2, 8, 8, 11);
    let p = LayerProblem::new(&w, 2, 8, &g).unwrap();
    let nm = Pattern::n_m(2, 4).unwrap();
    let mut m = warm(2, 8, &nm, 1);
    let layer = RefineOptions {
        budget: Budget::Layer,
        ..RefineOptions::default()
    };
    let errors = [
        refine(&p, &nm, &mut m, &layer, &|_| {}).unwrap_err(),
        refine(
            &p,
            &Pattern::unstructured(0.5).unwrap(),
            &mut Mask::new(2, 8, vec![1; 16]).unwrap(),
            &RefineOptions::default(),
            &|_| {},
        )
        .unwrap_err(),
        refine(
            &p,
            &Pattern::unstructured(0.5).unwrap(),
            &mut Mask::zeros(2, 8),
            &RefineOptions {
                budget: Budget::Band {
                    max_row_imbalance: -1.0,
                },
                ..RefineOptions::default()
            },
            &|_| {},
        )
        .unwrap_err(),
        Budget::parse("rows", 0.1).unwrap_err(),
    ];
    for e in errors {
        println!("error: {e}");
        h.bytes(e.to_string().as_bytes());
    }
    h.0
}

/// Recorded before the engine was split into modules (issue 14).
const GOLDEN: u64 = 0x1146_9d94_9087_ca7e;

#[test]
fn engine_results_are_unchanged() {
    let got = fingerprint();
    println!("fingerprint {got:#018x}");
    assert_eq!(
        got, GOLDEN,
        "engine results changed: fingerprint {got:#018x}"
    );
}
