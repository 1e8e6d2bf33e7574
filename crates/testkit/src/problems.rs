//! Random small problems with heavy-tailed column scales: the engine's property tests
//! (core) and the reconstruction tests draw from these.

use crate::synthetic::SplitMix;

/// The tests' seeded generator: [`SplitMix`] with the seed scrambled first, so that
/// small seeds (0, 1, 2...) start far apart. The streams are part of the tests' cases:
/// changing this changes which problems the property tests see.
#[derive(Debug, Clone)]
pub struct Rng(SplitMix);

impl Rng {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        Rng(SplitMix::new(seed ^ 0xD1B5_4A32_D192_ED03))
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.0.uniform()
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        self.0.normal()
    }
    /// Uniform in `0..n` (modulo bias is irrelevant at test sizes); `n > 0`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Weights `[d_out, d_in]` and `G = X Xᵀ` of `tokens` samples whose channels have
/// heavy-tailed scales (Student-t-like: normal / sqrt(uniform)) and a shared factor.
pub fn problem(d_out: usize, d_in: usize, tokens: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed);
    let scale: Vec<f64> = (0..d_in)
        .map(|_| (rng.normal().abs() / rng.uniform().max(0.02).sqrt()).max(0.05))
        .collect();
    let load: Vec<f64> = (0..d_in).map(|_| rng.normal()).collect();
    let mut g = vec![0.0f64; d_in * d_in];
    let mut x = vec![0.0f64; d_in];
    for _ in 0..tokens {
        let f = rng.normal();
        for j in 0..d_in {
            x[j] = scale[j] * (rng.normal() + 0.7 * f * load[j]);
        }
        for i in 0..d_in {
            for j in 0..d_in {
                g[i * d_in + j] += x[i] * x[j];
            }
        }
    }
    let w = (0..d_out * d_in).map(|_| rng.normal() as f32).collect();
    (w, g.into_iter().map(|v| v as f32).collect())
}

/// A random mask following the pattern (`k` per row, or `n` per group of `m`).
pub fn random_mask(
    rows: usize,
    cols: usize,
    group: Option<(usize, usize)>,
    k: usize,
    rng: &mut Rng,
) -> Vec<u8> {
    let mut out = vec![0u8; rows * cols];
    let pick = |len: usize, take: usize, rng: &mut Rng, dst: &mut [u8]| {
        let mut idx: Vec<usize> = (0..len).collect();
        for i in 0..take {
            let j = i + rng.below(len - i);
            idx.swap(i, j);
            dst[idx[i]] = 1;
        }
    };
    for r in 0..rows {
        let row = &mut out[r * cols..(r + 1) * cols];
        match group {
            None => pick(cols, k, rng, row),
            Some((n, m)) => {
                for g in row.chunks_mut(m) {
                    pick(m, n, rng, g);
                }
            }
        }
    }
    out
}
