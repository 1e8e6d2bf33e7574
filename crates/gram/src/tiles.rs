//! The tiling of `G`'s lower triangle and the f32 GEMM of one tile (see the crate docs
//! for why these choices).

/// Side of the square tiles of `G` computed as independent GEMMs.
pub const TILE: usize = 256;

/// Most tokens multiplied in one f32 GEMM before the product is added in f64.
pub const CHUNK_TOKENS: usize = 4096;

/// One tile of the lower triangle: rows `r0..r1`, columns `c0..c1` of `G` (`c1 <= r1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TileSpan {
    pub(crate) r0: usize,
    pub(crate) r1: usize,
    pub(crate) c0: usize,
    pub(crate) c1: usize,
}

/// The tiles of the lower triangle of a `d_in x d_in` matrix, row of tiles by row of
/// tiles (tile `(bi, bj)` is at index `bi (bi + 1) / 2 + bj`).
pub(crate) fn spans_for(d_in: usize) -> Vec<TileSpan> {
    let nb = d_in.div_ceil(TILE);
    let mut v = Vec::with_capacity(nb * (nb + 1) / 2);
    for bi in 0..nb {
        for bj in 0..=bi {
            v.push(TileSpan {
                r0: bi * TILE,
                r1: ((bi + 1) * TILE).min(d_in),
                c0: bj * TILE,
                c1: ((bj + 1) * TILE).min(d_in),
            });
        }
    }
    v
}

/// `tile += (X[:, r0..r1])ᵀ X[:, c0..c1]` for one chunk of tokens: an f32 GEMM into
/// `scratch`, added into the f64 tile.
pub(crate) fn add_tile_product(
    chunk: &[f32],
    d: usize,
    s: &TileSpan,
    scratch: &mut Vec<f32>,
    tile: &mut [f64],
) {
    let t = chunk.len() / d;
    let (m, n) = (s.r1 - s.r0, s.c1 - s.c0);
    scratch.clear();
    scratch.resize(m * n, 0.0);
    // SAFETY: A(i, k) = chunk[k * d + r0 + i] and B(k, j) = chunk[k * d + c0 + j] stay
    // inside `chunk` (r0 + i < d, c0 + j < d, k < t, chunk.len() = t * d); C is the
    // m x n scratch, row-major; the three regions do not alias mutably.
    unsafe {
        matrixmultiply::sgemm(
            m,
            t,
            n,
            1.0,
            chunk.as_ptr().add(s.r0),
            1,
            d as isize,
            chunk.as_ptr().add(s.c0),
            d as isize,
            1,
            0.0,
            scratch.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    tile.iter_mut()
        .zip(scratch.iter())
        .for_each(|(a, &b)| *a += b as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_lower_triangle() {
        let d = 2 * TILE + 3;
        let spans = spans_for(d);
        assert_eq!(spans.len(), 6);
        let mut seen = vec![0u8; d * d];
        for s in &spans {
            for i in s.r0..s.r1 {
                for j in s.c0..s.c1 {
                    if j <= i {
                        seen[i * d + j] += 1;
                    }
                }
            }
        }
        for i in 0..d {
            for j in 0..=i {
                assert_eq!(seen[i * d + j], 1, "({i}, {j})");
            }
        }
    }
}
