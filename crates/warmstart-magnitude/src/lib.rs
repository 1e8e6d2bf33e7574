//! # sparseswaps-warmstart-magnitude
//!
//! The magnitude warm start: score `|W_ij|`, compared within each row; keep the top `k`
//! per row, or the top `N` in every group of `M` inputs. Ties keep the lower column.

#![warn(missing_docs)]

use sparseswaps_core::{check_finite, mask_from_scores, Mask, Pattern, Result};

/// Name under which this warm start is known.
pub const NAME: &str = "magnitude";

/// The magnitude scores `|W_ij|` of row-major weights.
pub fn scores(weights: &[f32]) -> Vec<f32> {
    weights.iter().map(|w| w.abs()).collect()
}

/// Magnitude mask of `weights` (`d_out x d_in`, row-major) under `pattern`.
pub fn magnitude_mask(
    weights: &[f32],
    d_out: usize,
    d_in: usize,
    pattern: &Pattern,
) -> Result<Mask> {
    check_finite("weights", weights)?;
    mask_from_scores(&scores(weights), d_out, d_in, pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_largest_per_row() {
        let w = [0.1, -5.0, 2.0, 0.3, 1.0, 1.0, -1.0, 0.0];
        let p = Pattern::unstructured(0.5).unwrap();
        let m = magnitude_mask(&w, 2, 4, &p).unwrap();
        assert_eq!(m.as_slice(), &[0, 1, 1, 0, 1, 1, 0, 0]);
        let nm = Pattern::n_m(1, 2).unwrap();
        let m = magnitude_mask(&w, 2, 4, &nm).unwrap();
        assert_eq!(m.as_slice(), &[0, 1, 1, 0, 1, 0, 1, 0]);
        assert!(magnitude_mask(&[f32::NAN, 1.0], 1, 2, &p).is_err());
    }
}
