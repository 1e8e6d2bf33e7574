//! Dense f64 references for the reconstruction tests, written independently of the
//! crates under test: a correlated-channel problem, Gaussian elimination and the
//! quadratic form of a weight difference.

// Index loops keep the elimination and the quadratic form in textbook form.
#![allow(clippy::needless_range_loop)]

use crate::problems::Rng;

/// Weights `[d_out, d]` and `G = X Xᵀ` of `tokens` samples with uneven channel scales
/// and one shared factor of weight `factor` (correlated channels); `tokens < d` gives a
/// singular `G`. `seed` picks the case.
pub fn correlated_problem(
    d_out: usize,
    d: usize,
    tokens: usize,
    factor: f64,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng::new(seed ^ 0xABCD);
    let scale: Vec<f64> = (0..d).map(|_| (0.7 * rng.normal()).exp()).collect();
    let load: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
    let mut g = vec![0.0f64; d * d];
    let mut x = vec![0.0f64; d];
    for _ in 0..tokens {
        let f = rng.normal();
        for j in 0..d {
            x[j] = scale[j] * (rng.normal() + factor * f * load[j]);
        }
        for i in 0..d {
            for j in 0..d {
                g[i * d + j] += x[i] * x[j];
            }
        }
    }
    let w = (0..d_out * d).map(|_| rng.normal() as f32).collect();
    (w, g.into_iter().map(|v| v as f32).collect())
}

/// Solves `A x = b` by Gaussian elimination with partial pivoting (dense f64).
pub fn gauss(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Vec<f64> {
    let n = b.len();
    for c in 0..n {
        let p = (c..n)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap_or(c);
        a.swap(c, p);
        b.swap(c, p);
        for r in c + 1..n {
            let f = a[r][c] / a[c][c];
            for k in c..n {
                a[r][k] -= f * a[c][k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r][k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r][r];
    }
    x
}

/// `(w − v)ᵀ G (w − v)` in f64 (`G` is `d x d`, row-major).
pub fn residual(w: &[f32], v: &[f32], g: &[f32]) -> f64 {
    let d = w.len();
    let x: Vec<f64> = w
        .iter()
        .zip(v)
        .map(|(&a, &b)| a as f64 - b as f64)
        .collect();
    let mut t = 0.0;
    for i in 0..d {
        for j in 0..d {
            t += x[i] * g[i * d + j] as f64 * x[j];
        }
    }
    t
}
