//! The layer-wise pruning objective through the Gram matrix.
//!
//! For a row `w` with mask `m`, the pruned part is `p = (1 - m) ⊙ w` and the row error is
//! `pᵀ G p`; the layer error is the sum over rows. All sums here are in f64.

use crate::error::{CoreError, Result};
use crate::mask::Mask;

/// One layer's refinement problem: weights `[d_out, d_in]` and Gram matrix `[d_in, d_in]`,
/// both row-major f32, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct LayerProblem<'a> {
    weights: &'a [f32],
    gram: &'a [f32],
    d_out: usize,
    d_in: usize,
}

/// Relative tolerance of the Gram symmetry check, against the largest diagonal entry.
const SYMMETRY_TOL: f32 = 1e-4;

/// The error for the negative diagonal entry `G[i,i] = value`: a Gram matrix `X Xᵀ` has
/// `G[i,i] = ||X_i||² ≥ 0`, so it is not positive semi-definite.
fn negative_diagonal(i: usize, value: f32) -> CoreError {
    CoreError::NotGram {
        reason: format!(
            "negative diagonal entry G[{i},{i}] = {value} (a Gram matrix is positive semi-definite)"
        ),
    }
}

impl<'a> LayerProblem<'a> {
    /// Checks shapes, finiteness, a non-negative diagonal and symmetry of `G`.
    pub fn new(weights: &'a [f32], d_out: usize, d_in: usize, gram: &'a [f32]) -> Result<Self> {
        if d_in == 0 || d_out == 0 {
            return Err(CoreError::Shape(format!(
                "weights must be non-empty, got [{d_out}, {d_in}]"
            )));
        }
        if weights.len() != d_out * d_in {
            return Err(CoreError::Shape(format!(
                "weights have {} values, expected [{d_out}, {d_in}]",
                weights.len()
            )));
        }
        if gram.len() != d_in * d_in {
            return Err(CoreError::Shape(format!(
                "Gram matrix has {} values, expected [{d_in}, {d_in}] to match the weights' d_in",
                gram.len()
            )));
        }
        check_finite("weights", weights)?;
        check_finite("Gram matrix", gram)?;
        let max_diag = (0..d_in).map(|i| gram[i * d_in + i]).fold(0.0f32, f32::max);
        for i in 0..d_in {
            let d = gram[i * d_in + i];
            if d < 0.0 {
                return Err(negative_diagonal(i, d));
            }
            for j in 0..i {
                let (a, b) = (gram[i * d_in + j], gram[j * d_in + i]);
                if (a - b).abs() > SYMMETRY_TOL * max_diag {
                    return Err(CoreError::NotGram {
                        reason: format!("not symmetric: G[{i},{j}] = {a}, G[{j},{i}] = {b}"),
                    });
                }
            }
        }
        Ok(LayerProblem {
            weights,
            gram,
            d_out,
            d_in,
        })
    }

    /// Output width (rows of `W`).
    pub fn d_out(&self) -> usize {
        self.d_out
    }

    /// Input width (columns of `W`, order of `G`).
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// All weights, row-major.
    pub fn weights(&self) -> &'a [f32] {
        self.weights
    }

    /// Row `r` of the weights.
    pub fn row(&self, r: usize) -> &'a [f32] {
        &self.weights[r * self.d_in..(r + 1) * self.d_in]
    }

    /// The Gram matrix, row-major.
    pub fn gram(&self) -> &'a [f32] {
        self.gram
    }

    /// Diagonal of the Gram matrix (`||X_j||²`).
    pub fn gram_diag(&self) -> Vec<f32> {
        (0..self.d_in)
            .map(|i| self.gram[i * self.d_in + i])
            .collect()
    }

    /// Checks that a mask has this problem's shape.
    pub fn check_mask(&self, mask: &Mask) -> Result<()> {
        if mask.rows() != self.d_out || mask.cols() != self.d_in {
            return Err(CoreError::Shape(format!(
                "mask is [{}, {}], weights are [{}, {}]",
                mask.rows(),
                mask.cols(),
                self.d_out,
                self.d_in
            )));
        }
        Ok(())
    }
}

/// Returns an error naming the first NaN or infinite value.
pub fn check_finite(what: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(CoreError::NonFinite {
            what: what.to_string(),
            index,
            value: values[index] as f64,
        }),
        None => Ok(()),
    }
}

/// Checks that a Gram diagonal (`G[i,i] = ||X_i||²`) has no negative entry: returns
/// [`CoreError::NotGram`] naming the first.
pub fn check_gram_diagonal(diag: &[f32]) -> Result<()> {
    match diag.iter().position(|&d| d < 0.0) {
        Some(i) => Err(negative_diagonal(i, diag[i])),
        None => Ok(()),
    }
}

/// `xᵀ G x` in f64 for a dense vector `x` (used for both errors and energies).
fn quad_form(x: &[f64], gram: &[f32]) -> f64 {
    let d = x.len();
    let nz: Vec<usize> = (0..d).filter(|&j| x[j] != 0.0).collect();
    let mut total = 0.0f64;
    for &i in &nz {
        let gi = &gram[i * d..(i + 1) * d];
        let mut s = 0.0f64;
        for &j in &nz {
            s += gi[j] as f64 * x[j];
        }
        total += x[i] * s;
    }
    total
}

/// Error of one row: `pᵀ G p` with `p = (1 - m) ⊙ w`.
pub fn row_error(w: &[f32], mask_row: &[u8], gram: &[f32]) -> f64 {
    let p: Vec<f64> = w
        .iter()
        .zip(mask_row)
        .map(|(&wi, &mi)| if mi == 0 { wi as f64 } else { 0.0 })
        .collect();
    quad_form(&p, gram)
}

/// Energy of one dense row: `wᵀ G w` (its share of `||W X||²`).
pub fn row_energy(w: &[f32], gram: &[f32]) -> f64 {
    let x: Vec<f64> = w.iter().map(|&v| v as f64).collect();
    quad_form(&x, gram)
}

/// Layer error, dense energy and their ratio.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerError {
    /// `E(M) = Σ_rows pᵀ G p`.
    pub error: f64,
    /// `||W X||² = Σ_rows wᵀ G w`.
    pub energy: f64,
    /// `error / energy` (0 when the energy is 0).
    pub relative: f64,
}

/// Computes the layer error of `mask` exactly (f64 sums), rows in parallel.
pub fn layer_error(problem: &LayerProblem<'_>, mask: &Mask) -> Result<LayerError> {
    use rayon::prelude::*;
    problem.check_mask(mask)?;
    let (error, energy) = (0..problem.d_out())
        .into_par_iter()
        .map(|r| {
            let w = problem.row(r);
            (
                row_error(w, mask.row(r), problem.gram()),
                row_energy(w, problem.gram()),
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0.0, 0.0), |(a, b), (e, n)| (a + e, b + n));
    Ok(LayerError {
        error,
        energy,
        relative: if energy > 0.0 { error / energy } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Gram that cannot be one is `NotGram`, naming the entry, not a shape error.
    #[test]
    fn negative_diagonal_and_asymmetry_are_not_gram() {
        let w = [1.0f32; 4];
        let e = LayerProblem::new(&w, 2, 2, &[1.0, 0.0, 0.0, -0.5]).unwrap_err();
        assert_eq!(
            e,
            CoreError::NotGram {
                reason: "negative diagonal entry G[1,1] = -0.5 \
                         (a Gram matrix is positive semi-definite)"
                    .into()
            }
        );
        let e = LayerProblem::new(&w, 2, 2, &[1.0, 0.5, 0.0, 1.0]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "not a Gram matrix: not symmetric: G[1,0] = 0, G[0,1] = 0.5"
        );
        assert!(check_gram_diagonal(&[0.0, 3.0]).is_ok());
    }
}
