//! Sparsity patterns: per-row unstructured (`k` kept per row) and N:M.

use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which weights of a row may be kept.
///
/// Both patterns keep the same number of weights in every row, which is what makes the
/// rows of a layer independent problems that share one Gram matrix.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pattern {
    /// Prune a fraction `sparsity` of every row; see [`Pattern::kept_per_row`] for rounding.
    Unstructured {
        /// Fraction of weights pruned in each row, in `[0, 1)`.
        sparsity: f64,
    },
    /// Keep exactly `n` of every `m` consecutive inputs (NVIDIA's convention: 2:4 keeps 2).
    NM {
        /// Weights kept per group.
        n: usize,
        /// Group size.
        m: usize,
    },
}

impl Pattern {
    /// A per-row unstructured pattern; `sparsity` must be finite and in `[0, 1)`.
    pub fn unstructured(sparsity: f64) -> Result<Self> {
        let p = Pattern::Unstructured { sparsity };
        p.validate()?;
        Ok(p)
    }

    /// An N:M pattern keeping `n` of every `m`; requires `0 < n < m`.
    pub fn n_m(n: usize, m: usize) -> Result<Self> {
        let p = Pattern::NM { n, m };
        p.validate()?;
        Ok(p)
    }

    /// Checks the pattern on its own (not against a layer width).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Pattern::Unstructured { sparsity } => {
                if !sparsity.is_finite() || !(0.0..1.0).contains(&sparsity) {
                    return Err(CoreError::InvalidPattern(format!(
                        "sparsity {sparsity} is outside [0, 1)"
                    )));
                }
            }
            Pattern::NM { n, m } => {
                if n == 0 || n >= m {
                    return Err(CoreError::InvalidPattern(format!(
                        "{n}:{m} needs 0 < N < M (N = kept per group of M)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks that the pattern applies to rows of width `d_in`.
    pub fn check_width(&self, d_in: usize) -> Result<()> {
        self.validate()?;
        if d_in == 0 {
            return Err(CoreError::PatternMismatch {
                pattern: self.to_string(),
                d_in,
                reason: "the layer has no inputs".into(),
            });
        }
        if let Pattern::NM { m, .. } = *self {
            if d_in % m != 0 {
                return Err(CoreError::PatternMismatch {
                    pattern: self.to_string(),
                    d_in,
                    reason: format!("M = {m} does not divide d_in"),
                });
            }
        }
        Ok(())
    }

    /// Number of weights kept in each row of width `d_in`.
    ///
    /// Rounding rule (unstructured): `k = d_in - round(sparsity * d_in)`, with `round`
    /// rounding halves away from zero, so the *pruned* count is the nearest integer to
    /// `sparsity * d_in`. For N:M, `k = d_in / M * N`.
    pub fn kept_per_row(&self, d_in: usize) -> usize {
        match *self {
            Pattern::Unstructured { sparsity } => {
                let pruned = (sparsity * d_in as f64).round() as usize;
                d_in - pruned.min(d_in)
            }
            Pattern::NM { n, m } => d_in / m * n,
        }
    }

    /// Group size for N:M patterns, `None` for unstructured.
    pub fn group(&self) -> Option<(usize, usize)> {
        match *self {
            Pattern::NM { n, m } => Some((n, m)),
            Pattern::Unstructured { .. } => None,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Unstructured { sparsity } => write!(f, "{sparsity}"),
            Pattern::NM { n, m } => write!(f, "{n}:{m}"),
        }
    }
}

impl FromStr for Pattern {
    type Err = CoreError;

    /// Parses `"0.5"` (unstructured sparsity), `"50%"` or `"2:4"` (N kept of M).
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        if let Some((a, b)) = t.split_once(':') {
            let parse = |x: &str| {
                x.trim().parse::<usize>().map_err(|_| {
                    CoreError::InvalidPattern(format!("'{s}' is not N:M with integers N and M"))
                })
            };
            return Pattern::n_m(parse(a)?, parse(b)?);
        }
        let (num, scale) = match t.strip_suffix('%') {
            Some(p) => (p.trim(), 0.01),
            None => (t, 1.0),
        };
        let v: f64 = num.parse().map_err(|_| {
            CoreError::InvalidPattern(format!(
                "'{s}' is neither a sparsity (0.5, 50%) nor N:M (2:4)"
            ))
        })?;
        Pattern::unstructured(v * scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_rule() {
        assert_eq!(Pattern::unstructured(0.5).unwrap().kept_per_row(576), 288);
        // 0.6 * 10 = 6 pruned, 4 kept.
        assert_eq!(Pattern::unstructured(0.6).unwrap().kept_per_row(10), 4);
        // 0.25 * 6 = 1.5 rounds away from zero to 2 pruned.
        assert_eq!(Pattern::unstructured(0.25).unwrap().kept_per_row(6), 4);
        assert_eq!(Pattern::unstructured(0.0).unwrap().kept_per_row(7), 7);
        assert_eq!(Pattern::n_m(2, 4).unwrap().kept_per_row(16), 8);
    }

    #[test]
    fn parse_and_reject() {
        assert_eq!(
            "2:4".parse::<Pattern>().unwrap(),
            Pattern::NM { n: 2, m: 4 }
        );
        assert_eq!(
            "50%".parse::<Pattern>().unwrap(),
            Pattern::Unstructured { sparsity: 0.5 }
        );
        for bad in ["1.0", "-0.1", "nan", "4:4", "0:4", "5:4", "a:b", "x", "inf"] {
            assert!(bad.parse::<Pattern>().is_err(), "{bad} should be rejected");
        }
        let err = Pattern::n_m(2, 4).unwrap().check_width(10).unwrap_err();
        assert!(err.to_string().contains("does not divide"), "{err}");
    }
}
