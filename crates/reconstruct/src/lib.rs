//! # sparseswaps-reconstruct
//!
//! Re-fits the kept weights of a pruned layer once its mask is final: for each row `w`
//! with kept set `K`, the exact least-squares weights `ŵ` supported on `K` that best
//! reproduce the dense row's output on the calibration data,
//!
//! ```text
//! minimise || (w − ŵ)ᵀ X ||²   ⇔   G[K,K] ŵ_K = (G w)_K
//! ```
//!
//! one symmetric positive (semi-)definite solve per row, by Cholesky (LLT) through
//! [faer](https://docs.rs/faer), rows in parallel on rayon. The pruned weights stay 0;
//! the mask is not changed.
//!
//! **Damping.** `G` is singular when the calibration data span fewer than `d_in`
//! directions, or when input channels are dead. Each row's system is solved with
//! `λ = ε · mean(diag G[K,K])` added to the diagonal (ridge regularisation, default
//! `ε = 1e-6`, [`ReconstructOptions::damping`]); if the factorisation still fails, `λ`
//! grows ×10 and the solve is retried, at most [`ReconstructOptions::retries`] times.
//! A damped solve is exact for the damped problem and within `O(λ)` of the undamped
//! one.
//!
//! **Guard.** Every row's error `(w − ŵ)ᵀ G (w − ŵ)` is computed exactly in f64, with
//! the re-fitted weights as they are stored (rounded to f32), before and after. A row
//! whose error the re-fit does not lower (rounding, or a solve that failed at every
//! damping) keeps its original kept weights. So reconstruction never raises a row's
//! error.
//!
//! **Determinism.** Each row's result depends only on that row; sums over rows are
//! taken in row order; faer runs sequentially inside each solve. Results are identical
//! for any number of threads.
//!
//! **Swaps of the re-fitted objective.** [`refit_swaps()`] goes one step further: from a
//! given mask (the ordinary swaps' result) it takes exact 1-swaps of the error *after*
//! the re-fit, `E*(K) = wᵀGw − b_Kᵀ G̃[K,K]⁻¹ b_K`, per row with incremental updates of
//! `G̃[K,K]⁻¹` (`O(k (d_in − k) + k²)` per step, `O(k d_in)` memory per row), then writes
//! the re-fitted weights of the final mask; never worse than swaps + re-fit. See
//! [`refit_swaps`](mod@refit_swaps) for the formulas, the costs and the tolerance rules.
//!
//! Why a crate of its own: faer is a large dependency (several minutes to build on two
//! cores), and `sparseswaps-core` is linked by every plugin and by the CUDA backend,
//! none of which needs a dense solver. Only the CLI and the pipeline depend on this
//! crate.
//!
//! ```
//! use sparseswaps_core::{LayerProblem, Mask};
//! use sparseswaps_reconstruct::{reconstruct, ReconstructOptions};
//! // Two correlated inputs: keeping only the first, its weight absorbs the second's.
//! let w = [1.0f32, 1.0];
//! let g = [2.0f32, 1.0, 1.0, 2.0];
//! let problem = LayerProblem::new(&w, 1, 2, &g).unwrap();
//! let mask = Mask::new(1, 2, vec![1, 0]).unwrap();
//! let r = reconstruct(&problem, &mask, &ReconstructOptions::default()).unwrap();
//! // G[0,0] ŵ_0 = (G w)_0  ⇒  ŵ_0 = 3 / 2.
//! assert!((r.weights[0] - 1.5).abs() < 1e-5 && r.weights[1] == 0.0);
//! assert!(r.reconstructed_error < r.mask_error); // 1.5 against 2.0
//! ```

#![warn(missing_docs)]

pub mod refit_swaps;

pub use refit_swaps::{refit_swaps, RefitRow, RefitSwapOptions, RefitSwapReport};

use faer::linalg::solvers::Solve;
use faer::{Mat, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sparseswaps_core::{LayerProblem, Mask};
use std::time::Instant;

/// Errors of the reconstruction.
#[derive(Debug, thiserror::Error)]
pub enum ReconstructError {
    /// The mask does not fit the problem, or an option is out of range.
    #[error("reconstruction: {0}")]
    Invalid(String),
}

/// Options of the re-fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReconstructOptions {
    /// `ε`: the damping `λ = ε · mean(diag G[K,K])` added to the diagonal of each row's
    /// system (default `1e-6`; `0` solves the undamped system, retrying with damping
    /// only if it is not positive definite).
    pub damping: f64,
    /// How many times `λ` may grow ×10 after a failed factorisation (default 8).
    pub retries: u32,
}

impl Default for ReconstructOptions {
    fn default() -> Self {
        ReconstructOptions {
            damping: 1e-6,
            retries: 8,
        }
    }
}

/// One row's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RowFit {
    /// Error of the mask with the original kept weights.
    pub mask_error: f64,
    /// Error with the weights written (the re-fitted ones, or the original ones when
    /// the re-fit did not lower the error).
    pub error: f64,
    /// Whether the re-fitted weights were kept.
    pub refit: bool,
    /// The damping `λ` of the solve that was used (0 when no solve succeeded or the
    /// row keeps nothing).
    pub lambda: f64,
}

/// A layer's reconstruction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconstruction {
    /// The new weights, row-major `[d_out, d_in]`: re-fitted on the kept set, 0 where
    /// pruned.
    pub weights: Vec<f32>,
    /// Layer error of the mask with the original weights (`Σ_rows`).
    pub mask_error: f64,
    /// Layer error with the new weights.
    pub reconstructed_error: f64,
    /// `||W X||²` (the dense layer's output energy).
    pub energy: f64,
    /// Rows whose re-fitted weights were kept.
    pub rows_refit: usize,
    /// Rows that kept their original weights (the re-fit did not lower their error).
    pub rows_unchanged: usize,
    /// Rows whose first factorisation failed and needed more damping.
    pub rows_redamped: usize,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Per-row outcomes, in row order.
    pub rows: Vec<RowFit>,
}

/// `xᵀ G x` in f64 over the non-zero entries of `x`.
fn quad_form(x: &[f64], gram: &[f32]) -> f64 {
    let d = x.len();
    let nz: Vec<usize> = (0..d).filter(|&j| x[j] != 0.0).collect();
    if 2 * nz.len() > d {
        // Mostly non-zero: contiguous rows of G vectorise better than gathers.
        return nz
            .iter()
            .map(|&i| x[i] * dot(&gram[i * d..(i + 1) * d], x))
            .sum();
    }
    let mut total = 0.0f64;
    for &i in &nz {
        let gi = &gram[i * d..(i + 1) * d];
        let s: f64 = nz.iter().map(|&j| gi[j] as f64 * x[j]).sum();
        total += x[i] * s;
    }
    total
}

/// `Σ_j g_j x_j` in f64 (four partial sums, so the loop vectorises).
fn dot(g: &[f32], x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (gc, xc) = (g.chunks_exact(4), x.chunks_exact(4));
    let (gr, xr) = (gc.remainder(), xc.remainder());
    for (a, b) in gc.zip(xc) {
        for l in 0..4 {
            acc[l] += a[l] as f64 * b[l];
        }
    }
    let tail: f64 = gr.iter().zip(xr).map(|(&a, &b)| a as f64 * b).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Solves `(G[K,K] + λ I) x = rhs` by Cholesky; `None` when it is not positive definite.
fn damped_solve(gkk: &Mat<f64>, rhs: &[f64], lambda: f64) -> Option<Vec<f64>> {
    let n = rhs.len();
    let a = Mat::from_fn(n, n, |i, j| gkk[(i, j)] + if i == j { lambda } else { 0.0 });
    let llt = a.llt(Side::Lower).ok()?;
    let mut x = Mat::from_fn(n, 1, |i, _| rhs[i]);
    llt.solve_in_place(x.as_mut());
    let out: Vec<f64> = (0..n).map(|i| x[(i, 0)]).collect();
    out.iter().all(|v| v.is_finite()).then_some(out)
}

/// Re-fits one row; returns its new weights (f32, 0 where pruned) and its outcome.
fn fit_row(
    w: &[f32],
    mask_row: &[u8],
    gram: &[f32],
    opts: &ReconstructOptions,
) -> (Vec<f32>, RowFit, bool) {
    let d = w.len();
    let kept: Vec<usize> = (0..d).filter(|&j| mask_row[j] == 1).collect();
    let masked: Vec<f32> = w
        .iter()
        .zip(mask_row)
        .map(|(&x, &m)| if m == 1 { x } else { 0.0 })
        .collect();
    let residual = |new: &[f32]| -> f64 {
        let x: Vec<f64> = w
            .iter()
            .zip(new)
            .map(|(&a, &b)| a as f64 - b as f64)
            .collect();
        quad_form(&x, gram)
    };
    let mask_error = residual(&masked);
    let unchanged = |lambda: f64, redamped: bool| {
        let fit = RowFit {
            mask_error,
            error: mask_error,
            refit: false,
            lambda,
        };
        (masked.clone(), fit, redamped)
    };
    if kept.is_empty() || mask_error <= 0.0 {
        return unchanged(0.0, false);
    }
    let n = kept.len();
    // G is symmetric: G[K,K] read row by row (faer stores columns), contiguous in `gram`.
    let gkk = Mat::from_fn(n, n, |i, j| gram[kept[j] * d + kept[i]] as f64);
    // (G w)_K: the dense row's correlation with each kept input.
    let w64: Vec<f64> = w.iter().map(|&x| x as f64).collect();
    let rhs: Vec<f64> = kept
        .iter()
        .map(|&i| dot(&gram[i * d..(i + 1) * d], &w64))
        .collect();
    let mean_diag = (0..n).map(|i| gkk[(i, i)]).sum::<f64>() / n as f64;
    if mean_diag <= 0.0 {
        // Every kept input is zero on the calibration data: nothing to fit.
        return unchanged(0.0, false);
    }
    let mut lambda = opts.damping * mean_diag;
    let mut solution = None;
    let mut redamped = false;
    for attempt in 0..=opts.retries {
        if let Some(x) = damped_solve(&gkk, &rhs, lambda) {
            solution = Some(x);
            break;
        }
        redamped = true;
        if attempt < opts.retries {
            // ε = 0 fails only on a singular system: start from the smallest damping
            // that the default would use.
            lambda = if lambda > 0.0 {
                lambda * 10.0
            } else {
                1e-12 * mean_diag
            };
        }
    }
    let Some(x) = solution else {
        return unchanged(0.0, redamped);
    };
    let mut new = vec![0.0f32; d];
    for (&j, &v) in kept.iter().zip(&x) {
        new[j] = v as f32;
    }
    if new.iter().any(|v| !v.is_finite()) {
        return unchanged(lambda, redamped);
    }
    let error = residual(&new);
    if error < mask_error {
        let fit = RowFit {
            mask_error,
            error,
            refit: true,
            lambda,
        };
        (new, fit, redamped)
    } else {
        unchanged(lambda, redamped)
    }
}

/// Re-fits the kept weights of every row of `problem` on `mask` (rows in parallel).
///
/// The mask may keep any number of weights per row (row, band or layer budgets, N:M).
pub fn reconstruct(
    problem: &LayerProblem<'_>,
    mask: &Mask,
    opts: &ReconstructOptions,
) -> Result<Reconstruction, ReconstructError> {
    let start = Instant::now();
    problem
        .check_mask(mask)
        .map_err(|e| ReconstructError::Invalid(e.to_string()))?;
    if !opts.damping.is_finite() || opts.damping < 0.0 {
        return Err(ReconstructError::Invalid(format!(
            "damping {} must be finite and >= 0",
            opts.damping
        )));
    }
    let (d_out, d) = (problem.d_out(), problem.d_in());
    let gram = problem.gram();
    let fits: Vec<(Vec<f32>, RowFit, bool, f64)> = (0..d_out)
        .into_par_iter()
        .map(|r| {
            let w = problem.row(r);
            let (new, fit, redamped) = fit_row(w, mask.row(r), gram, opts);
            let x: Vec<f64> = w.iter().map(|&v| v as f64).collect();
            (new, fit, redamped, quad_form(&x, gram))
        })
        .collect();
    let mut weights = Vec::with_capacity(d_out * d);
    let mut rows = Vec::with_capacity(d_out);
    let (mut mask_error, mut reconstructed_error, mut energy) = (0.0, 0.0, 0.0);
    let mut rows_redamped = 0;
    for (new, fit, redamped, e) in fits {
        weights.extend_from_slice(&new);
        mask_error += fit.mask_error;
        reconstructed_error += fit.error;
        energy += e;
        rows_redamped += redamped as usize;
        rows.push(fit);
    }
    let rows_refit = rows.iter().filter(|f| f.refit).count();
    Ok(Reconstruction {
        weights,
        mask_error,
        reconstructed_error,
        energy,
        rows_refit,
        rows_unchanged: d_out - rows_refit,
        rows_redamped,
        seconds: start.elapsed().as_secs_f64(),
        rows,
    })
}

impl Reconstruction {
    /// `mask_error / energy` (0 when the energy is 0).
    pub fn mask_relative(&self) -> f64 {
        if self.energy > 0.0 {
            self.mask_error / self.energy
        } else {
            0.0
        }
    }

    /// `reconstructed_error / energy` (0 when the energy is 0).
    pub fn reconstructed_relative(&self) -> f64 {
        if self.energy > 0.0 {
            self.reconstructed_error / self.energy
        } else {
            0.0
        }
    }
}
