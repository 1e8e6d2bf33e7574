//! Exact row states of several rows in one walk of the Gram matrix.
//!
//! Building `c = G p` (and the dense energy) for one row reads every row of `G` that the
//! row's weights touch: `d_in²` values per row, so a layer of `d_out` rows is bound by
//! memory bandwidth (a Llama-3.1-70B `down_proj` streams 27 TB). Walking `G` in column
//! tiles and applying each tile to a batch of rows serves the batch from cache: the
//! same `axpy` on the same values in the same order per element, so the states are
//! bit-identical to building each row alone, and several times faster.

use crate::simd;

/// Rows that share one walk of `G` (their `c` and energy tiles stay in L2); each thread
/// holds the states of this many rows at once.
pub const ROWS_PER_WALK: usize = 8;

/// Columns of `G` per tile: 8 KiB of f64 accumulator per row and vector.
const TILE: usize = 1024;

/// One row of a walk: its weights and mask, the `c = G p` to fill, and, when the energy
/// is wanted, the `G k` of its kept part (`k = w - p`).
pub(crate) struct WalkRow<'s> {
    pub(crate) w: &'s [f32],
    pub(crate) mask: &'s [u8],
    pub(crate) c: &'s mut [f64],
    pub(crate) kept: Option<&'s mut [f64]>,
}

/// Fills every row's `c` (and `kept`) from zero: for each `j` in increasing order,
/// `w_j G[j,:]` is added to `c` when `j` is pruned and to `kept` when it is kept.
pub(crate) fn walk(gram: &[f32], d: usize, rows: &mut [WalkRow<'_>], avx2: bool) {
    for r in rows.iter_mut() {
        r.c.iter_mut().for_each(|v| *v = 0.0);
        if let Some(k) = r.kept.as_deref_mut() {
            k.iter_mut().for_each(|v| *v = 0.0);
        }
    }
    // One row gains nothing from tiles; its whole `G` row streams once either way.
    let tile = if rows.len() == 1 { d.max(1) } else { TILE };
    for i0 in (0..d).step_by(tile) {
        let i1 = (i0 + tile).min(d);
        for j in 0..d {
            let g = &gram[j * d + i0..j * d + i1];
            for r in rows.iter_mut() {
                let wj = r.w[j] as f64;
                if wj == 0.0 {
                    continue;
                }
                if r.mask[j] == 0 {
                    simd::axpy(avx2, &mut r.c[i0..i1], wj, g);
                } else if let Some(k) = r.kept.as_deref_mut() {
                    simd::axpy(avx2, &mut k[i0..i1], wj, g);
                }
            }
        }
    }
}
