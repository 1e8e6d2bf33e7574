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

/// The plugin export (ABI v1): what the host loads from this crate's cdylib.
mod plugin {
    use sparseswaps_core::Pattern;
    use sparseswaps_plugin_abi::{
        export_plugin, Pattern as AbiPattern, PluginError, Request, SUPPORTS_NM,
        SUPPORTS_UNSTRUCTURED,
    };

    /// The core pattern of a request; `None` when nothing is kept (k = 0).
    fn core_pattern(req: &Request<'_>) -> Result<Option<Pattern>, PluginError> {
        let p = match req.pattern {
            AbiPattern::Unstructured { k: 0 } => return Ok(None),
            AbiPattern::Unstructured { k } => {
                Pattern::unstructured((req.cols - k) as f64 / req.cols as f64)
            }
            AbiPattern::NM { n, m } => Pattern::n_m(n, m),
        }
        .map_err(|e| PluginError::failed(e.to_string()))?;
        if p.kept_per_row(req.cols) != req.pattern_k() {
            return Err(PluginError::failed(format!(
                "cannot express k = {} of {} as a per-row sparsity",
                req.pattern_k(),
                req.cols
            )));
        }
        Ok(Some(p))
    }

    fn compute(req: &Request<'_>, out: &mut [u8]) -> Result<(), PluginError> {
        let Some(pattern) = core_pattern(req)? else {
            out.fill(0);
            return Ok(());
        };
        let mask = super::magnitude_mask(req.weights, req.rows, req.cols, &pattern)
            .map_err(|e| PluginError::failed(e.to_string()))?;
        out.copy_from_slice(mask.as_slice());
        Ok(())
    }

    export_plugin! {
        name: super::NAME,
        version: env!("CARGO_PKG_VERSION"),
        patterns: SUPPORTS_UNSTRUCTURED | SUPPORTS_NM,
        compute: compute,
    }
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
