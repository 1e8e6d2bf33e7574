//! Synthetic inputs shaped like LLM layers, shared by the benchmarks (which re-export
//! them) and the kernels' tests and timing example.
//!
//! Activations have heavy-tailed per-channel scales (a few channels ~100x the rest, as
//! in real LLM hidden states) and correlated channels (a low-rank shared component), so
//! the Gram matrix has the structure the engine meets on real layers.

/// A small deterministic generator (SplitMix64): benches and tests need reproducible
/// data, not cryptographic randomness.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// Seeds the generator.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// A synthetic layer: weights `[d_out, d_in]` and the Gram matrix of `tokens` activations.
#[derive(Debug, Clone)]
pub struct SyntheticLayer {
    /// Output width.
    pub d_out: usize,
    /// Input width.
    pub d_in: usize,
    /// Weights, row-major.
    pub weights: Vec<f32>,
    /// Gram matrix `X Xᵀ`, row-major `[d_in, d_in]`.
    pub gram: Vec<f32>,
}

/// Builds an LLM-like layer: per-channel scales drawn log-normal with a few 100x
/// outlier channels; `G = S (F Fᵀ + N Nᵀ / t + I) S` with `rank` shared factors `F`
/// (correlated channels) and `t = tokens` Gaussian samples `N` (sample noise), which is
/// positive definite by construction; Gaussian weights.
pub fn llm_like_layer(d_out: usize, d_in: usize, tokens: usize, seed: u64) -> SyntheticLayer {
    let mut rng = SplitMix::new(seed);
    let rank = 8.min(d_in);
    let t = tokens.max(1);
    let scale: Vec<f64> = (0..d_in)
        .map(|j| {
            let base = (0.5 * rng.normal()).exp();
            if j % 97 == 13 {
                100.0 * base
            } else {
                base
            }
        })
        .collect();
    // Column j of the factors: rank shared loadings, then t sample values / sqrt(t).
    let cols: Vec<Vec<f64>> = (0..d_in)
        .map(|_| {
            let mut col: Vec<f64> = (0..rank).map(|_| 0.5 * rng.normal()).collect();
            col.extend((0..t).map(|_| rng.normal() / (t as f64).sqrt()));
            col
        })
        .collect();
    let mut g = vec![0.0f32; d_in * d_in];
    for i in 0..d_in {
        for j in i..d_in {
            let dot: f64 = cols[i].iter().zip(&cols[j]).map(|(a, b)| a * b).sum();
            let v = scale[i] * scale[j] * (dot + if i == j { 1.0 } else { 0.0 });
            g[i * d_in + j] = v as f32;
            g[j * d_in + i] = v as f32;
        }
    }
    let weights = (0..d_out * d_in)
        .map(|_| (rng.normal() * 0.02) as f32)
        .collect();
    SyntheticLayer {
        d_out,
        d_in,
        weights,
        gram: g,
    }
}
