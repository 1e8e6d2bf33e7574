//! The damped Hessian and the upper Cholesky factor of its inverse, as SparseGPT uses
//! them.

use crate::SparseGptError;
use faer::linalg::solvers::DenseSolveCore;
use faer::{Mat, Side};

/// `U`, upper triangular with `Uᵀ U = H⁻¹`, and the dead inputs.
///
/// Row `j` of `U` is what the OBS update of column `j` needs: eliminating column `j`
/// with error `e = (w_j − q_j) / U[j,j]` changes every later column `c` by
/// `−e · U[j,c]`, and `U[j,j]²` is `[H_F⁻¹]_jj` of the columns `F = j..` still free.
pub(crate) struct InverseFactor {
    /// `U`, row-major `d × d`; only `c ≥ j` of row `j` is meaningful.
    pub u: Vec<f64>,
    /// Width `d`.
    pub d: usize,
    /// Inputs with `G[j,j] = 0` (never active on the calibration data).
    pub dead: Vec<bool>,
}

impl InverseFactor {
    /// `U[j, j]`.
    pub fn diag(&self, j: usize) -> f64 {
        self.u[j * self.d + j]
    }

    /// Row `j` of `U` from column `j` on.
    pub fn row_from(&self, j: usize) -> &[f64] {
        &self.u[j * self.d + j..(j + 1) * self.d]
    }
}

/// Factor of the inverse of `H = G' + damping · mean(diag G') · I`, where `G'` is the
/// Gram matrix (`d × d`, row-major; only its lower triangle is read) with every zero
/// diagonal entry set to 1, as in the reference code (a dead input then has an
/// uncoupled unit row in `H`, and its weights are zeroed by the caller).
pub(crate) fn inverse_factor(
    gram: &[f32],
    d: usize,
    damping: f64,
) -> Result<InverseFactor, SparseGptError> {
    let dead: Vec<bool> = (0..d).map(|j| gram[j * d + j] == 0.0).collect();
    let mut h = Mat::<f64>::from_fn(d, d, |i, j| {
        if i == j && dead[j] {
            1.0
        } else {
            gram[i * d + j] as f64
        }
    });
    let mean_diag = (0..d).map(|j| h[(j, j)]).sum::<f64>() / d as f64;
    let damp = damping * mean_diag;
    for j in 0..d {
        h[(j, j)] += damp;
    }
    let not_pd = |what: &'static str, e: faer::linalg::cholesky::llt::factor::LltError| {
        let faer::linalg::cholesky::llt::factor::LltError::NonPositivePivot { index } = e;
        SparseGptError::NotPositiveDefinite {
            what,
            index,
            damping,
        }
    };
    let hinv = h
        .llt(Side::Lower)
        .map_err(|e| not_pd("damped Hessian", e))?
        .inverse();
    drop(h);
    let llt = hinv
        .llt(Side::Lower)
        .map_err(|e| not_pd("inverse of the damped Hessian", e))?;
    drop(hinv);
    // U = Lᵀ for the lower factor L of H⁻¹: row j of U is column j of L.
    let l = llt.L();
    let mut u = vec![0.0f64; d * d];
    for j in 0..d {
        for c in j..d {
            u[j * d + c] = l[(c, j)];
        }
    }
    if let Some(i) = u.iter().position(|v| !v.is_finite()) {
        return Err(SparseGptError::NotPositiveDefinite {
            what: "inverse of the damped Hessian (non-finite factor)",
            index: i / d,
            damping,
        });
    }
    Ok(InverseFactor { u, d, dead })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_of_a_diagonal_hessian() {
        // G = diag(4, 0, 9), no damping: H = diag(4, 1, 9), U = diag(1/2, 1, 1/3).
        let g = [4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 9.0];
        let f = inverse_factor(&g, 3, 0.0).unwrap();
        assert_eq!(f.dead, vec![false, true, false]);
        for (j, want) in [0.5, 1.0, 1.0 / 3.0].into_iter().enumerate() {
            assert!((f.diag(j) - want).abs() < 1e-15);
        }
        assert_eq!(f.row_from(0), &[0.5, 0.0, 0.0]);
    }

    #[test]
    fn indefinite_gram_is_an_error_naming_damping() {
        let g = [1.0, 2.0, 2.0, 1.0];
        let e = inverse_factor(&g, 2, 0.0).err().unwrap().to_string();
        assert!(
            e.contains("not positive definite") && e.contains("damping"),
            "{e}"
        );
    }
}
