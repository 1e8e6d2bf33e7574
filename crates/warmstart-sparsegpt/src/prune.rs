//! The blocked OBS sweep over the columns of a chunk of rows.

use crate::hessian::InverseFactor;
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// What the sweep must prune in every row.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Plan {
    /// Prune `total` weights of the row, spread over the blocks (see [`pruned_through`]).
    Unstructured {
        /// Weights pruned per row.
        total: usize,
    },
    /// Keep `n` of every `m` consecutive inputs.
    NM {
        /// Kept per group.
        n: usize,
        /// Group size.
        m: usize,
    },
}

/// The block size actually used: N:M blocks are a multiple of `M` (at least `M`) so
/// that every group is decided on weights that have received all earlier updates,
/// exactly as in the unblocked procedure.
pub(crate) fn effective_blocksize(blocksize: usize, plan: Plan) -> usize {
    match plan {
        Plan::Unstructured { .. } => blocksize,
        Plan::NM { m, .. } => (blocksize / m).max(1) * m,
    }
}

/// Weights a row has pruned once the sweep has passed column `c`: `round(total · c /
/// d)`, halves rounded up. It is `total` at `c = d`, so every row prunes exactly
/// `total`; a block `[i1, i2)` prunes `pruned_through(i2) − pruned_through(i1)`.
pub fn pruned_through(total: usize, c: usize, d: usize) -> usize {
    ((2 * total as u128 * c as u128 + d as u128) / (2 * d as u128)) as usize
}

/// The state of one chunk of rows during the sweep.
struct Chunk<'a> {
    /// Rows in the chunk.
    nr: usize,
    /// The factor of the inverse Hessian.
    f: &'a InverseFactor,
    /// Current weights, column-major `nr × d`: the sweep walks columns, and each update
    /// touches whole columns.
    w: Vec<f64>,
    /// Pruned flags, column-major like `w`.
    pruned: Vec<bool>,
    /// Scratch for the selection.
    idx: Vec<usize>,
}

impl Chunk<'_> {
    /// Marks as pruned, in row `r`, the `count` columns of `cols` with the smallest
    /// saliency `w² / U[j,j]²`. Ties: the higher column is pruned first (the lower one
    /// kept, as in every warm start of the project).
    fn prune_smallest(&mut self, r: usize, cols: std::ops::Range<usize>, count: usize) {
        if count == 0 {
            return;
        }
        let (w, nr, f) = (&self.w, self.nr, self.f);
        let sal = |j: usize| {
            let (v, u) = (w[j * nr + r], f.diag(j));
            v * v / (u * u)
        };
        self.idx.clear();
        self.idx.extend(cols);
        if count < self.idx.len() {
            self.idx.select_nth_unstable_by(count - 1, |&a, &b| {
                sal(a).total_cmp(&sal(b)).then(b.cmp(&a))
            });
        }
        for &j in &self.idx[..count] {
            self.pruned[j * nr + r] = true;
        }
    }
}

/// Runs SparseGPT on `nr` rows (`w_in`, row-major `nr × d`): writes the mask (1 = kept)
/// and the OBS-updated weights, both row-major.
pub(crate) fn prune_rows(
    w_in: &[f32],
    nr: usize,
    f: &InverseFactor,
    plan: Plan,
    blocksize: usize,
    mask_out: &mut [u8],
    w_out: &mut [f32],
) {
    let d = f.d;
    let mut ch = Chunk {
        nr,
        f,
        w: vec![0.0f64; nr * d],
        pruned: vec![false; nr * d],
        idx: Vec::new(),
    };
    for r in 0..nr {
        for c in (0..d).filter(|&c| !f.dead[c]) {
            ch.w[c * nr + r] = w_in[r * d + c] as f64;
        }
    }
    let mut err = vec![0.0f64; nr * blocksize.min(d)];
    for i1 in (0..d).step_by(blocksize) {
        let i2 = (i1 + blocksize).min(d);
        if let Plan::Unstructured { total } = plan {
            let count = pruned_through(total, i2, d) - pruned_through(total, i1, d);
            for r in 0..nr {
                ch.prune_smallest(r, i1..i2, count);
            }
        }
        for j in i1..i2 {
            if let Plan::NM { n, m } = plan {
                if j % m == 0 {
                    for r in 0..nr {
                        ch.prune_smallest(r, j..j + m, m - n);
                    }
                }
            }
            let (dj, urow) = (f.diag(j), f.row_from(j));
            let (head, tail) = ch.w.split_at_mut((j + 1) * nr);
            let wj = &mut head[j * nr..];
            let e = &mut err[(j - i1) * nr..(j - i1 + 1) * nr];
            for r in 0..nr {
                let q = if ch.pruned[j * nr + r] { 0.0 } else { wj[r] };
                e[r] = (wj[r] - q) / dj;
                wj[r] = q;
            }
            // Immediate updates inside the block; the rest of the row waits (lazy).
            for (c, col) in (j + 1..i2).zip(tail.chunks_exact_mut(nr)) {
                let ujc = urow[c - j];
                for (x, &er) in col.iter_mut().zip(e.iter()) {
                    *x -= er * ujc;
                }
            }
        }
        if i2 < d {
            let width = i2 - i1;
            let wm = MatMut::from_column_major_slice_mut(&mut ch.w, nr, d);
            let em = MatRef::from_column_major_slice(&err[..nr * width], nr, width);
            let um = MatRef::from_row_major_slice(&f.u, d, d).submatrix(i1, i2, width, d - i2);
            // The block's errors reach the later columns in one GEMM: W[:, i2..] -= E U.
            matmul(
                wm.submatrix_mut(0, i2, nr, d - i2),
                Accum::Add,
                em,
                um,
                -1.0,
                Par::Seq,
            );
        }
    }
    for r in 0..nr {
        for c in 0..d {
            mask_out[r * d + c] = u8::from(!ch.pruned[c * nr + r]);
            w_out[r * d + c] = ch.w[c * nr + r] as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pruned_through_ends_exactly_and_never_exceeds_a_block() {
        for d in [1usize, 7, 50, 129, 576] {
            for total in 0..=d {
                assert_eq!(pruned_through(total, 0, d), 0);
                assert_eq!(pruned_through(total, d, d), total);
                for bs in [1usize, 3, 16, 128] {
                    let mut c = 0;
                    while c < d {
                        let c2 = (c + bs).min(d);
                        let n = pruned_through(total, c2, d) - pruned_through(total, c, d);
                        assert!(n <= c2 - c, "d {d} total {total} block {c}..{c2}");
                        c = c2;
                    }
                }
            }
        }
    }

    #[test]
    fn nm_blocks_hold_whole_groups() {
        let p = |m| Plan::NM { n: 1, m };
        assert_eq!(effective_blocksize(128, p(4)), 128);
        assert_eq!(effective_blocksize(10, p(4)), 8);
        assert_eq!(effective_blocksize(3, p(8)), 8);
        assert_eq!(effective_blocksize(5, Plan::Unstructured { total: 1 }), 5);
    }
}
