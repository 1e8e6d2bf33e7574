//! # sparseswaps-warmstart-sparsegpt
//!
//! The SparseGPT warm start (Frantar & Alistarh, 2023, "SparseGPT: Massive Language
//! Models Can Be Accurately Pruned in One-Shot"), following its reference code
//! (`sparsegpt.py`, `fasterprune`), adapted to the project's exact patterns.
//!
//! **Procedure.** From the full Gram matrix `G = X Xᵀ` (`d_in × d_in`; its scale does
//! not matter, so it stands for the reference's `2/n · X Xᵀ`):
//!
//! 1. Inputs with `G[j,j] = 0` are *dead*: `H[j,j] = 1` and `W[:, j] = 0`.
//! 2. Damping: `H = G + λ · mean(diag H) · I` (`λ` = [`Options::damping`], reference
//!    `percdamp = 0.01`).
//! 3. `H⁻¹` through the Cholesky factor of `H`, then the upper Cholesky factor `U` of
//!    `H⁻¹` (`Uᵀ U = H⁻¹`), both with faer. Row `j` of `U` is the OBS update for
//!    column `j` given that columns `< j` are fixed, and `U[j,j]²` is the matching
//!    diagonal of the inverse Hessian.
//! 4. The columns are swept left to right in blocks of [`Options::blocksize`] (128).
//!    At column `j` every row sets `q = 0` if `j` is pruned (else `q = w_j`),
//!    `e = (w_j − q) / U[j,j]`, and subtracts `e · U[j, c]` from every later column
//!    `c`: immediately inside the block, lazily (one GEMM `W[:, i2..] −= E · U[block,
//!    i2..]`) for the columns after it. Saliency is `w_j² / U[j,j]²`, on the weights as
//!    updated so far. All arithmetic is f64.
//!
//! **Exact patterns.** The reference prunes, per block, the weights under one
//! threshold shared by all rows, so rows end with different counts. Here every row
//! keeps exactly `k`:
//!
//! * *Unstructured*: a row prunes `P = d_in − k` weights, spread over the blocks in
//!   proportion to their width. After the sweep has passed column `c` the row has
//!   pruned `round(P · c / d_in)` (halves up; [`pruned_through`]), so a block `[i1,
//!   i2)` prunes `round(P·i2/d_in) − round(P·i1/d_in)` — never more than its width,
//!   and `P` in total. At the start of each block every row prunes that many of the
//!   block's columns with the smallest saliency (computed, as in the reference, from
//!   the weights updated by all earlier blocks). Why this rule: it keeps the
//!   reference's adaptivity (each block is chosen after the earlier blocks' updates),
//!   gives every block the sparsity of the whole row as the reference's per-block
//!   threshold does on average, and never leaves a remainder to be forced into the
//!   last block.
//! * *N:M* (keep `N` of every `M`): when the sweep reaches the first column of a group,
//!   every row prunes the `M − N` columns of the group with the smallest saliency, on
//!   the weights updated up to that column (the reference's `prunen`/`prunem` path).
//!   The block size is rounded down to a multiple of `M` (at least `M`) so that no
//!   group straddles two blocks.
//!
//! Ties in saliency prune the higher column (the lower one is kept). The mask is
//! validated against the pattern before it is returned.
//!
//! **Cost.** Two `d_in³/3` factorisations and an inverse, then `O(d_out · d_in²)` for
//! the sweep. Memory: `H`, `H⁻¹` and `U` in f64 (`8 d_in²` bytes each, at most two at
//! once), plus `8 · 32 · d_in` bytes per chunk of 32 rows in flight. Chunks of rows
//! run in parallel on rayon; every row's result depends only on that row and the fixed
//! chunking, so results do not depend on the number of threads.

#![warn(missing_docs)]

mod hessian;
mod options;
mod prune;

pub use options::Options;
pub use prune::pruned_through;

use prune::{effective_blocksize, prune_rows, Plan};
use rayon::prelude::*;
use sparseswaps_core::{check_finite, CoreError, Mask, Pattern};

/// Name under which this warm start is known.
pub const NAME: &str = "sparsegpt";

/// Rows per unit of parallel work. Fixed (not derived from the thread count) so that the
/// GEMM shapes, hence the rounding, never change between runs.
const ROW_CHUNK: usize = 32;

/// Errors of the SparseGPT warm start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SparseGptError {
    /// A bad option string or value.
    #[error("sparsegpt options: {0}")]
    Options(String),
    /// Shapes, pattern or values of the inputs (from the core crate).
    #[error("sparsegpt: {0}")]
    Core(#[from] CoreError),
    /// A Cholesky factorisation failed.
    #[error(
        "sparsegpt: the {what} is not positive definite (pivot {index}) with damping = {damping}; \
         raise damping"
    )]
    NotPositiveDefinite {
        /// Which matrix.
        what: &'static str,
        /// The failing pivot.
        index: usize,
        /// The relative damping used.
        damping: f64,
    },
}

/// The result of SparseGPT on one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Pruned {
    /// The mask (1 = kept), following the pattern exactly.
    pub mask: Mask,
    /// SparseGPT's own weights: the kept ones after the OBS updates, pruned ones 0
    /// (row-major `d_out × d_in`). A warm start uses only the mask.
    pub weights: Vec<f32>,
}

/// Runs SparseGPT on `weights` (`d_out × d_in`, row-major) with the full Gram matrix
/// `gram` (`d_in × d_in`, row-major; its lower triangle is read).
pub fn sparsegpt(
    weights: &[f32],
    d_out: usize,
    d_in: usize,
    gram: &[f32],
    pattern: &Pattern,
    options: &Options,
) -> Result<Pruned, SparseGptError> {
    options.validate()?;
    pattern.check_width(d_in)?;
    if Some(weights.len()) != d_out.checked_mul(d_in) {
        return Err(CoreError::Shape(format!(
            "weights have {} values, expected {d_out} x {d_in}",
            weights.len()
        ))
        .into());
    }
    if Some(gram.len()) != d_in.checked_mul(d_in) {
        return Err(CoreError::Shape(format!(
            "Gram matrix has {} values, expected {d_in} x {d_in} (sparsegpt needs the full Gram)",
            gram.len()
        ))
        .into());
    }
    check_finite("weights", weights)?;
    check_finite("Gram matrix", gram)?;
    let plan = match pattern.group() {
        Some((n, m)) => Plan::NM { n, m },
        None => Plan::Unstructured {
            total: d_in - pattern.kept_per_row(d_in),
        },
    };
    let blocksize = effective_blocksize(options.blocksize, plan);
    let factor = hessian::inverse_factor(gram, d_in, options.damping)?;
    let mut mask = Mask::zeros(d_out, d_in);
    let mut out = vec![0.0f32; weights.len()];
    let chunk = ROW_CHUNK * d_in;
    mask.as_mut_slice()
        .par_chunks_mut(chunk)
        .zip(out.par_chunks_mut(chunk))
        .zip(weights.par_chunks(chunk))
        .for_each(|((m, o), w)| prune_rows(w, w.len() / d_in, &factor, plan, blocksize, m, o));
    mask.validate(pattern)?;
    Ok(Pruned { mask, weights: out })
}

/// The SparseGPT mask of `weights` (see [`sparsegpt`]).
pub fn sparsegpt_mask(
    weights: &[f32],
    d_out: usize,
    d_in: usize,
    gram: &[f32],
    pattern: &Pattern,
    options: &Options,
) -> Result<Mask, SparseGptError> {
    sparsegpt(weights, d_out, d_in, gram, pattern, options).map(|p| p.mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagonal_hessian_is_magnitude_times_activation_norm() {
        // With a diagonal G and no damping there are no updates, U[j,j] = 1/sqrt(G_jj):
        // saliency w² G_jj, Wanda's score squared.
        let w = [1.0, 2.0, 3.0, 4.0];
        let g = [
            100.0, 0.0, 0.0, 0.0, //
            0.0, 100.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 0.0, //
            0.0, 0.0, 0.0, 1.0,
        ];
        let o = Options {
            damping: 0.0,
            ..Options::default()
        };
        let p = Pattern::unstructured(0.5).unwrap();
        let r = sparsegpt(&w, 1, 4, &g, &p, &o).unwrap();
        assert_eq!(r.mask.as_slice(), &[1, 1, 0, 0]);
        assert_eq!(r.weights, vec![1.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn shape_errors_name_the_input() {
        let p = Pattern::unstructured(0.5).unwrap();
        let o = Options::default();
        let e = sparsegpt(&[1.0; 4], 1, 4, &[1.0; 4], &p, &o).unwrap_err();
        assert!(e.to_string().contains("needs the full Gram"), "{e}");
        let e = sparsegpt(&[1.0; 3], 1, 4, &[1.0; 16], &p, &o).unwrap_err();
        assert!(e.to_string().contains("weights have 3 values"), "{e}");
        let bad = Options { blocksize: 0, ..o };
        assert!(matches!(
            sparsegpt(&[1.0; 4], 1, 4, &[1.0; 16], &p, &bad),
            Err(SparseGptError::Options(_))
        ));
    }
}
