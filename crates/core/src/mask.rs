//! The pruning mask: one byte per weight, 1 = kept, 0 = pruned.
//!
//! Why bytes and not bits: the engine reads the mask only when it (re)builds a row's
//! state, so packing saves no time; bytes are what the `u8` safetensors output and the
//! plugin ABI carry, so a byte mask crosses every boundary without conversion. Memory is
//! a quarter of the f32 weights it masks.

use crate::error::{CoreError, Result};
use crate::pattern::Pattern;

/// A row-major `rows x cols` 0/1 mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl Mask {
    /// Wraps `data` (row-major, `rows * cols` bytes); every value must be 0 or 1.
    pub fn new(rows: usize, cols: usize, data: Vec<u8>) -> Result<Self> {
        check_len(data.len(), rows, cols)?;
        if let Some(i) = data.iter().position(|&v| v > 1) {
            return Err(CoreError::InvalidMask(format!(
                "value {} at row {}, column {} (expected 0 or 1)",
                data[i],
                i / cols.max(1),
                i % cols.max(1)
            )));
        }
        Ok(Mask { rows, cols, data })
    }

    /// An all-pruned mask.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Mask {
            rows,
            cols,
            data: vec![0; rows * cols],
        }
    }

    /// Number of rows (`d_out`).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (`d_in`).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// Row `r`, mutable.
    pub fn row_mut(&mut self, r: usize) -> &mut [u8] {
        &mut self.data[r * self.cols..(r + 1) * self.cols]
    }

    /// All values, row-major.
    pub fn as_slice(&self) -> &[u8] {
        &self.data
    }

    /// All values, row-major, mutable (callers keep values 0/1).
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// `weights` (row-major, the mask's shape) with every pruned entry set to zero: the
    /// one place a mask is applied to weights.
    ///
    /// # Panics
    /// When `weights` does not have `rows * cols` entries (a caller's shape bug).
    pub fn apply(&self, weights: &[f32]) -> Vec<f32> {
        assert_eq!(
            weights.len(),
            self.data.len(),
            "Mask::apply: {} weights for a [{}, {}] mask",
            weights.len(),
            self.rows,
            self.cols
        );
        weights
            .iter()
            .zip(&self.data)
            .map(|(&x, &m)| if m == 1 { x } else { 0.0 })
            .collect()
    }

    /// Consumes the mask, returning its bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.data
    }

    /// Total number of kept weights.
    pub fn kept(&self) -> usize {
        self.data.iter().map(|&v| v as usize).sum()
    }

    /// Checks that the mask follows `pattern`: `k` kept per row, or `N` kept in every
    /// group of `M`. The error names the first row (and group) at fault.
    pub fn validate(&self, pattern: &Pattern) -> Result<()> {
        validate_mask(&self.data, self.rows, self.cols, pattern)
    }
}

/// Checks that a buffer of `len` values holds `rows x cols`. `rows` and `cols` may come
/// from outside (a plugin's request, a mask file), so the product is checked: one that
/// overflows matches no buffer.
fn check_len(len: usize, rows: usize, cols: usize) -> Result<()> {
    match rows.checked_mul(cols) {
        Some(n) if n == len => Ok(()),
        Some(n) => Err(CoreError::Shape(format!(
            "mask has {len} values, expected {rows} x {cols} = {n}"
        ))),
        None => Err(CoreError::Shape(format!(
            "mask has {len} values, expected {rows} x {cols} (overflows)"
        ))),
    }
}

/// Validates a raw row-major mask buffer against a pattern (used on buffers that come
/// from outside, such as plugin outputs, before they become a [`Mask`]).
pub fn validate_mask(data: &[u8], rows: usize, cols: usize, pattern: &Pattern) -> Result<()> {
    pattern.check_width(cols)?;
    check_len(data.len(), rows, cols)?;
    let k = pattern.kept_per_row(cols);
    for (r, row) in data.chunks_exact(cols).enumerate() {
        if let Some(c) = row.iter().position(|&v| v > 1) {
            return Err(CoreError::InvalidMask(format!(
                "value {} at row {r}, column {c} (expected 0 or 1)",
                row[c]
            )));
        }
        match pattern.group() {
            None => {
                let kept: usize = row.iter().map(|&v| v as usize).sum();
                if kept != k {
                    return Err(CoreError::InvalidMask(format!(
                        "row {r} keeps {kept} weights, pattern {pattern} requires {k}"
                    )));
                }
            }
            Some((n, m)) => {
                for (g, grp) in row.chunks_exact(m).enumerate() {
                    let kept: usize = grp.iter().map(|&v| v as usize).sum();
                    if kept != n {
                        return Err(CoreError::InvalidMask(format!(
                            "row {r}, group {g} (columns {}..{}) keeps {kept}, pattern {n}:{m} requires {n}",
                            g * m,
                            g * m + m
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_zeroes_exactly_the_pruned_entries() {
        let m = Mask::new(2, 3, vec![1, 0, 1, 0, 0, 1]).unwrap();
        assert_eq!(
            m.apply(&[1.0, 2.0, -3.0, 4.0, 5.0, -6.0]),
            vec![1.0, 0.0, -3.0, 0.0, 0.0, -6.0]
        );
    }

    #[test]
    fn validation_names_the_row() {
        let p = Pattern::unstructured(0.5).unwrap();
        let m = Mask::new(2, 4, vec![1, 1, 0, 0, 1, 0, 0, 0]).unwrap();
        let e = m.validate(&p).unwrap_err().to_string();
        assert!(e.contains("row 1 keeps 1"), "{e}");
        let nm = Pattern::n_m(2, 4).unwrap();
        let m = Mask::new(1, 8, vec![1, 1, 0, 0, 1, 1, 1, 0]).unwrap();
        let e = m.validate(&nm).unwrap_err().to_string();
        assert!(e.contains("group 1"), "{e}");
        assert!(Mask::new(1, 2, vec![2, 0]).is_err());
        assert!(Mask::new(1, 3, vec![1, 0]).is_err());
    }
}
