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

/// A wide problem, built in `O(d_in² · r)`: `G = D (I + F Fᵀ / (4r)) D` with `r = 6`
/// Gaussian factors `F` (correlations mostly below 0.3, so the bounded search's bound
/// prunes) and heavy-tailed channel scales `D`; weights standard normal.
pub fn wide_problem(d_out: usize, d_in: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    const R: usize = 6;
    let mut rng = Rng::new(seed);
    let scale: Vec<f64> = (0..d_in)
        .map(|_| (rng.normal().abs() / rng.uniform().max(0.02).sqrt()).max(0.05))
        .collect();
    let f: Vec<f64> = (0..d_in * R).map(|_| rng.normal()).collect();
    let mut g = vec![0.0f32; d_in * d_in];
    for i in 0..d_in {
        for j in 0..=i {
            let dot: f64 = (0..R).map(|t| f[i * R + t] * f[j * R + t]).sum();
            let v = scale[i] * scale[j] * (if i == j { 1.0 } else { 0.0 } + dot / (4 * R) as f64);
            g[i * d_in + j] = v as f32;
            g[j * d_in + i] = v as f32;
        }
    }
    let w = (0..d_out * d_in).map(|_| rng.normal() as f32).collect();
    (w, g)
}

/// The unit roundoff of f64.
pub const UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;

/// Magnitudes that bound the rounding of the engine's f64 quantities for one row.
///
/// `c_j = Σ_{i pruned} w_i G[j,i]` is built and updated by f64 additions of exact
/// products (an f32 times an f32 is exact in f64), and every partial sum is a sum over
/// a subset, so its magnitude stays below `M_j = Σ_i |w_i G[j,i]|`: after `n` additions
/// since it was last computed from scratch, `|ĉ_j − c_j| ≤ n · u · M_j`. Then
/// `a_u = σ_u² + 2 w_u c_u` is off by at most `(n + 3) · u · A_u` with
/// `A_u = σ_u² + 2 |w_u| M_u` (likewise `b_q`), and `Δ(u,q) = a_u + b_q − 2 w_u w_q G[u,q]`
/// by at most `(n + 5) · u · (A_u + A_q + 2 |w_u w_q G[u,q]|)`.
pub struct RoundingScale {
    /// `M_j = Σ_i |w_i G[j,i]|`.
    pub m: Vec<f64>,
    /// `A_j = σ_j² + 2 |w_j| M_j`.
    pub a: Vec<f64>,
}

impl RoundingScale {
    /// The scale of the row with weights `w` under the Gram matrix `g` (`d x d`).
    pub fn new(w: &[f32], g: &[f32]) -> Self {
        let d = w.len();
        let m: Vec<f64> = (0..d)
            .map(|j| {
                (0..d)
                    .map(|i| (w[i] as f64 * g[j * d + i] as f64).abs())
                    .sum()
            })
            .collect();
        let a = (0..d)
            .map(|j| {
                let wj = w[j] as f64;
                wj * wj * g[j * d + j] as f64 + 2.0 * wj.abs() * m[j]
            })
            .collect();
        RoundingScale { m, a }
    }

    /// `A_u + A_q + 2 |w_u w_q G[u,q]|`: the scale of the rounding of `Δ(u,q)`.
    pub fn pair(&self, w: &[f32], g: &[f32], u: usize, q: usize) -> f64 {
        let d = w.len();
        self.a[u] + self.a[q] + 2.0 * (w[u] as f64 * w[q] as f64 * g[u * d + q] as f64).abs()
    }
}

/// The most additions behind one entry of `c` when the engine decides a step: `d_in`
/// from the last exact recompute, then two per swap (one per cross-row move half) for
/// at most `recompute_every` changes.
pub fn additions_since_recompute(d_in: usize, recompute_every: u32) -> f64 {
    (d_in + 2 * recompute_every as usize) as f64
}

/// The certificate margin for a pair at the stop: the engine's `Δ` (running state, at
/// most `additions_since_recompute` additions) and the checker's (fresh state, `d_in`
/// additions) each err by at most `(n + 5) · u · scale`.
pub fn certificate_margin(d_in: usize, recompute_every: u32, scale: f64) -> f64 {
    (additions_since_recompute(d_in, recompute_every) + d_in as f64 + 10.0) * UNIT_ROUNDOFF * scale
}
