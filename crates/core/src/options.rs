//! Options of a refinement run: the cap, the tolerances, the search and the budget.
//!
//! A leaf of the engine: the searches, the driver and the budget engine read these
//! types; this module reads none of them.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Options of one refinement run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RefineOptions {
    /// Most swaps per row; `None` means no cap (stop only at 1-swap optimality).
    pub max_swaps: Option<u32>,
    /// Recompute `c` and `E` exactly after this many accepted swaps of a row (0: only at
    /// the end of the row).
    pub recompute_every: u32,
    /// A swap is accepted only when `Δ < -rel_tol · E_row`.
    pub rel_tol: f64,
    /// How the best pair is found (unstructured patterns; N:M rows compare the few
    /// pairs inside each group directly).
    pub search: Search,
    /// How the kept budget is spread over the rows (default [`Budget::Row`]: `k` per
    /// row, the paper's setting). Other budgets apply to unstructured patterns only and
    /// add exact cross-row moves; see [`crate::budget`].
    #[serde(default)]
    pub budget: Budget,
}

/// How each step finds the best admissible pair. Both give the same pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Search {
    /// Every admissible pair, as in the paper (vectorised f32 pass over tiles of `G`,
    /// then the near-best candidates re-evaluated exactly in f64).
    Exhaustive,
    /// Pairs visited in increasing order of a separable lower bound (see
    /// [`crate::column_correlation_bound`]), stopping once the bound exceeds the best
    /// `Δ` found.
    #[default]
    Bounded,
}

impl std::str::FromStr for Search {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "exhaustive" => Ok(Search::Exhaustive),
            "bounded" => Ok(Search::Bounded),
            other => Err(format!("search '{other}': expected exhaustive or bounded")),
        }
    }
}

impl Default for RefineOptions {
    fn default() -> Self {
        RefineOptions {
            max_swaps: Some(100),
            recompute_every: 128,
            rel_tol: 1e-9,
            search: Search::Bounded,
            budget: Budget::Row,
        }
    }
}

/// How the kept weights of an unstructured layer may be spread over its rows.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Budget {
    /// Every row keeps exactly `k` (the paper; rows are independent).
    #[default]
    Row,
    /// The layer total is fixed and every row keeps between `k·(1−δ)` and `k·(1+δ)`.
    Band {
        /// `δ ≥ 0`: the largest relative deviation of a row's kept count from `k`.
        max_row_imbalance: f64,
    },
    /// Only the layer total is fixed; every row keeps at least one weight.
    Layer,
}

impl Budget {
    /// Builds a budget from its name (`row`, `band`, `layer`) and, for `band`, the
    /// imbalance `δ` (ignored by the other modes).
    pub fn parse(mode: &str, max_row_imbalance: f64) -> Result<Budget> {
        let b = match mode.trim() {
            "row" => Budget::Row,
            "band" => Budget::Band { max_row_imbalance },
            "layer" => Budget::Layer,
            other => {
                return Err(CoreError::InvalidOptions(format!(
                    "budget '{other}': expected row, band or layer"
                )))
            }
        };
        b.validate()?;
        Ok(b)
    }

    /// Checks `δ` (finite and `≥ 0`).
    pub fn validate(&self) -> Result<()> {
        if let Budget::Band { max_row_imbalance } = *self {
            if !max_row_imbalance.is_finite() || max_row_imbalance < 0.0 {
                return Err(CoreError::InvalidOptions(format!(
                    "max_row_imbalance {max_row_imbalance} must be finite and >= 0"
                )));
            }
        }
        Ok(())
    }

    /// The mode's name: `row`, `band` or `layer`.
    pub fn name(&self) -> &'static str {
        match self {
            Budget::Row => "row",
            Budget::Band { .. } => "band",
            Budget::Layer => "layer",
        }
    }

    /// The kept counts a row may have, `(lo, hi)` inclusive, for `k` kept per row on
    /// average and rows of width `d_in`.
    pub fn row_bounds(&self, k: usize, d_in: usize) -> (usize, usize) {
        // Every row keeps at least one weight when the layer keeps any.
        let floor = k.min(1);
        match *self {
            Budget::Row => (k, k),
            Budget::Layer => (floor, d_in),
            Budget::Band {
                max_row_imbalance: delta,
            } => {
                // Rounded inward (with slack for the binary value of δ), so the bounds
                // hold literally: 288 · 0.75 = 216 stays 216.
                let lo = (k as f64 * (1.0 - delta) - 1e-9).ceil().max(0.0) as usize;
                let hi = (k as f64 * (1.0 + delta) + 1e-9).floor() as usize;
                (lo.max(floor).min(k), hi.min(d_in).max(k))
            }
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Band { max_row_imbalance } => write!(f, "band ±{max_row_imbalance}"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_round_inward() {
        let band = Budget::Band {
            max_row_imbalance: 0.25,
        };
        assert_eq!(band.row_bounds(288, 576), (216, 360));
        assert_eq!(band.row_bounds(10, 12), (8, 12));
        assert_eq!(band.row_bounds(3, 6), (3, 3)); // 2.25 -> 3, 3.75 -> 3
        assert_eq!(
            Budget::Band {
                max_row_imbalance: 2.0
            }
            .row_bounds(4, 8),
            (1, 8)
        );
        assert_eq!(Budget::Layer.row_bounds(4, 8), (1, 8));
        assert_eq!(Budget::Layer.row_bounds(0, 8), (0, 8));
        assert_eq!(Budget::Row.row_bounds(4, 8), (4, 4));
        assert!(Budget::parse("band", -0.1).is_err());
        assert!(Budget::parse("band", f64::NAN).is_err());
        let e = Budget::parse("rows", 0.25).unwrap_err().to_string();
        assert!(
            e.contains("'rows'") && e.contains("row, band or layer"),
            "{e}"
        );
        assert_eq!(Budget::parse("layer", 0.25).unwrap(), Budget::Layer);
    }
}
