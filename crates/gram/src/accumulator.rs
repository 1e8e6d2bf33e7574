//! The accumulator: adding batches, merging, reading `G` back.

use crate::error::{GramError, Result};
use crate::tiles::{add_tile_product, spans_for, TileSpan, CHUNK_TOKENS, TILE};
use rayon::prelude::*;

/// A running Gram matrix `G = Σ_batches Xᵀ X` with its token count.
///
/// Storage is the lower triangle of `G` in [`TILE`]-sized tiles, in f64. Cloning and
/// merging are cheap relative to accumulation; memory is about `d_in² · 4` bytes for the
/// tiles plus a per-thread f32 scratch tile.
#[derive(Debug, Clone, PartialEq)]
pub struct GramAccumulator {
    d_in: usize,
    tokens: u64,
    pub(crate) batches: u64,
    spans: Vec<TileSpan>,
    tiles: Vec<Vec<f64>>,
}

impl GramAccumulator {
    /// An empty accumulator for inputs of width `d_in` (no tokens yet, `G = 0`).
    pub fn new(d_in: usize) -> Self {
        let spans = spans_for(d_in);
        let tiles = spans
            .iter()
            .map(|s| vec![0.0; (s.r1 - s.r0) * (s.c1 - s.c0)])
            .collect();
        GramAccumulator {
            d_in,
            tokens: 0,
            batches: 0,
            spans,
            tiles,
        }
    }

    /// Builds an accumulator from a full symmetric `G` (row-major `d_in x d_in`, only the
    /// lower triangle is read) and its token count: the inverse of [`Self::to_f64`].
    pub fn from_full(d_in: usize, gram: &[f64], tokens: u64) -> Result<Self> {
        if gram.len() != d_in * d_in {
            return Err(GramError::FullShape {
                len: gram.len(),
                expected: d_in * d_in,
                d_in,
            });
        }
        let mut acc = GramAccumulator::new(d_in);
        for (s, t) in acc.spans.iter().zip(acc.tiles.iter_mut()) {
            let w = s.c1 - s.c0;
            for i in s.r0..s.r1 {
                t[(i - s.r0) * w..(i - s.r0 + 1) * w]
                    .copy_from_slice(&gram[i * d_in + s.c0..i * d_in + s.c1]);
            }
        }
        acc.tokens = tokens;
        Ok(acc)
    }

    /// Input width (`G` is `d_in x d_in`).
    pub fn d_in(&self) -> usize {
        self.d_in
    }

    /// Tokens accumulated so far (rows of all batches, merged ones included).
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Batches added to this accumulator (merged ones included); the next batch's index
    /// in error messages.
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Adds `Xᵀ X` for a batch `x` of `tokens` rows (`[tokens, d_in]`, row-major).
    ///
    /// The whole batch is checked first: on error (wrong length, a NaN or infinite value)
    /// the accumulator is unchanged.
    pub fn add_batch(&mut self, x: &[f32], tokens: usize) -> Result<()> {
        let d = self.d_in;
        if x.len() != tokens * d || (d == 0 && tokens != 0) {
            return Err(GramError::BatchShape {
                batch: self.batches,
                len: x.len(),
                tokens,
                d_in: d,
            });
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(GramError::NonFinite {
                batch: self.batches,
                row: i / d,
                col: i % d,
                value: x[i],
            });
        }
        if tokens > 0 {
            self.tiles
                .par_iter_mut()
                .zip(self.spans.par_iter())
                .for_each_init(Vec::new, |scratch, (tile, span)| {
                    for chunk in x.chunks(CHUNK_TOKENS * d) {
                        add_tile_product(chunk, d, span, scratch, tile);
                    }
                });
        }
        self.tokens += tokens as u64;
        self.batches += 1;
        Ok(())
    }

    /// Adds another accumulator's `G` and token count (partials from other threads,
    /// processes or machines): the result equals one pass over all their batches, up to
    /// f64 rounding of the order of additions.
    pub fn merge(&mut self, other: &GramAccumulator) -> Result<()> {
        if other.d_in != self.d_in {
            return Err(GramError::WidthMismatch {
                ours: self.d_in,
                theirs: other.d_in,
            });
        }
        self.tiles
            .par_iter_mut()
            .zip(other.tiles.par_iter())
            .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(x, y)| *x += y));
        self.tokens += other.tokens;
        self.batches += other.batches;
        Ok(())
    }

    /// `G[i, j]` (either triangle).
    pub fn get(&self, i: usize, j: usize) -> f64 {
        let (i, j) = if i >= j { (i, j) } else { (j, i) };
        let (bi, bj) = (i / TILE, j / TILE);
        let s = &self.spans[bi * (bi + 1) / 2 + bj];
        self.tiles[bi * (bi + 1) / 2 + bj][(i - s.r0) * (s.c1 - s.c0) + (j - s.c0)]
    }

    /// The diagonal `G[j, j] = ||X_j||²`.
    pub fn diag(&self) -> Vec<f64> {
        (0..self.d_in).map(|j| self.get(j, j)).collect()
    }

    /// The full symmetric `G`, row-major `d_in x d_in`, f64.
    pub fn to_f64(&self) -> Vec<f64> {
        self.full(|v| v)
    }

    /// The full symmetric `G`, row-major `d_in x d_in`, narrowed to f32: what
    /// `sparseswaps_core::LayerProblem` takes.
    pub fn to_f32(&self) -> Vec<f32> {
        // Straight from the tiles: going through `to_f64` would hold a full d × d f64
        // copy beside the tiles and the result (13 GB for a 70B model's down_proj input).
        self.full(|v| v as f32)
    }

    /// The full symmetric matrix from the lower-triangle tiles, each entry through `f`.
    fn full<T: Copy + Default>(&self, f: impl Fn(f64) -> T) -> Vec<T> {
        let d = self.d_in;
        let mut g = vec![T::default(); d * d];
        for (s, t) in self.spans.iter().zip(&self.tiles) {
            let w = s.c1 - s.c0;
            for i in s.r0..s.r1 {
                let row = &t[(i - s.r0) * w..(i - s.r0 + 1) * w];
                for (j, &v) in (s.c0..s.c1).zip(row) {
                    if j <= i {
                        g[i * d + j] = f(v);
                        g[j * d + i] = f(v);
                    }
                }
            }
        }
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_named_and_leaves_accumulator_unchanged() {
        let mut acc = GramAccumulator::new(3);
        acc.add_batch(&[1.0; 6], 2).unwrap();
        let before = acc.clone();
        let mut x = vec![0.5f32; 9];
        x[7] = f32::NAN;
        let e = acc.add_batch(&x, 3).unwrap_err().to_string();
        assert_eq!(
            e,
            "activation batch 1: non-finite value NaN at row 2 (token), column 1 (channel)"
        );
        x[7] = f32::NEG_INFINITY;
        let e = acc.add_batch(&x, 3).unwrap_err().to_string();
        assert!(e.contains("-inf at row 2"), "{e}");
        let e = acc.add_batch(&x[..8], 3).unwrap_err().to_string();
        assert!(e.contains("8 values is not 3 tokens x d_in 3"), "{e}");
        assert_eq!(acc, before);
    }
}
