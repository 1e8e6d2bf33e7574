//! # sparseswaps-warmstart-wanda
//!
//! The Wanda warm start (Sun et al., 2023): score `|W_ij| · ||X_j||₂ = |W_ij| ·
//! sqrt(G[j,j])`, compared within each row; keep the top `k` per row, or the top `N` in
//! every group of `M` inputs. Ties keep the lower column.

#![warn(missing_docs)]

use sparseswaps_core::{
    check_finite, check_gram_diagonal, mask_from_scores, CoreError, Mask, Pattern, Result,
};

/// Name under which this warm start is known.
pub const NAME: &str = "wanda";

/// Wanda scores of row-major weights given the Gram diagonal `G[j,j] = ||X_j||²`.
pub fn scores(weights: &[f32], d_in: usize, gram_diag: &[f32]) -> Vec<f32> {
    let norms: Vec<f32> = gram_diag.iter().map(|g| g.max(0.0).sqrt()).collect();
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| w.abs() * norms[i % d_in])
        .collect()
}

/// Wanda mask of `weights` (`d_out x d_in`, row-major) under `pattern`. A negative
/// `gram_diag` entry is [`CoreError::NotGram`].
pub fn wanda_mask(
    weights: &[f32],
    d_out: usize,
    d_in: usize,
    gram_diag: &[f32],
    pattern: &Pattern,
) -> Result<Mask> {
    if gram_diag.len() != d_in {
        return Err(CoreError::Shape(format!(
            "Gram diagonal has {} values, expected d_in = {d_in}",
            gram_diag.len()
        )));
    }
    check_finite("weights", weights)?;
    check_finite("Gram diagonal", gram_diag)?;
    check_gram_diagonal(gram_diag)?;
    mask_from_scores(&scores(weights, d_in, gram_diag), d_out, d_in, pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_norms_change_the_choice() {
        let w = [1.0, 2.0, 3.0, 4.0];
        let p = Pattern::unstructured(0.5).unwrap();
        let m = wanda_mask(&w, 1, 4, &[100.0, 100.0, 1.0, 1.0], &p).unwrap();
        // scores 10, 20, 3, 4
        assert_eq!(m.as_slice(), &[1, 1, 0, 0]);
        assert!(wanda_mask(&w, 1, 4, &[1.0; 3], &p).is_err());
    }

    #[test]
    fn a_negative_diagonal_is_not_a_gram() {
        let p = Pattern::unstructured(0.5).unwrap();
        let e = wanda_mask(&[1.0; 4], 1, 4, &[1.0, 1.0, -2.5, 1.0], &p).unwrap_err();
        assert!(matches!(e, CoreError::NotGram { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "not a Gram matrix: negative diagonal entry G[2,2] = -2.5 \
             (a Gram matrix is positive semi-definite)"
        );
    }
}
