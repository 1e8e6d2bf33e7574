//! # sparseswaps-gram
//!
//! Streaming Gram accumulation for SparseSwaps: `G += Xᵀ X` over batches of layer inputs
//! `X` (`[tokens, d_in]`, row-major f32, one row per calibration token), so that the
//! refinement engine sees only the `d_in x d_in` matrix `G`, never the activations.
//!
//! What it is for: building `G` batch by batch while a model runs (memory stays
//! `d_in²` whatever the token count), merging partial Grams built on different threads,
//! processes or machines, and saving/loading them with their token count. What it is not
//! for: capturing activations (that is the model crate's job) or anything on a GPU (the
//! CUDA backend computes Grams on cuBLAS).
//!
//! ```
//! use sparseswaps_gram::GramAccumulator;
//! let mut acc = GramAccumulator::new(3);
//! // two tokens, three channels
//! acc.add_batch(&[1.0, 2.0, 0.0, 0.0, 1.0, 3.0], 2).unwrap();
//! assert_eq!(acc.tokens(), 2);
//! assert_eq!(acc.to_f64(), vec![1.0, 2.0, 0.0, 2.0, 5.0, 3.0, 0.0, 3.0, 9.0]);
//! let g: Vec<f32> = acc.to_f32(); // what the engine takes
//! assert_eq!(g[4], 5.0);
//! ```
//!
//! ## How it computes
//!
//! - **GEMM library: [`matrixmultiply`].** It is the lightest real GEMM in the Rust
//!   ecosystem (one tiny dependency, a few seconds to compile on a 2-core machine against
//!   minutes for `faer` or `gemm`), dispatches to AVX/FMA kernels at run time, and takes
//!   arbitrary row and column strides, so `Xᵀ` is read in place without a transposed copy.
//!   Its kernels are single-threaded; parallelism comes from the tiling below, on rayon.
//! - **One triangle, block-wise, then mirrored.** `G` is cut into tiles of
//!   [`TILE`]` x `[`TILE`] and only the tiles on and below the diagonal are computed, each
//!   one an independent GEMM `X[:, I]ᵀ X[:, J]` run in parallel; the full symmetric matrix
//!   is assembled by mirroring when it is read ([`GramAccumulator::to_f64`],
//!   [`GramAccumulator::to_f32`]). That is about half the flops of a full `Xᵀ X`, and the
//!   result is exactly symmetric.
//! - **Precision: f32 GEMM per chunk, f64 accumulator.** Each batch is cut into chunks of
//!   at most [`CHUNK_TOKENS`] tokens; the product of one chunk is computed in f32 (a dot
//!   product of at most `CHUNK_TOKENS` terms, relative error ~`sqrt(CHUNK_TOKENS)·2⁻²⁴` of
//!   the Cauchy–Schwarz scale `sqrt(G[i,i] G[j,j])`) and added into an f64 accumulator.
//!   So the error does not grow with the number of batches: a plain f32 running sum
//!   rounds every addition at the size of the whole sum, which after millions of tokens —
//!   and with LLM outlier channels 100x the rest, whose entries dominate `G` — costs
//!   digits on the small entries. A full f64 GEMM would buy nothing measurable over this
//!   at about twice the time and twice the memory traffic. The test
//!   `precision_against_f64_reference_with_outlier_channels` checks the bound on
//!   activations with outlier channels.
//! - **Non-finite activations are an error** naming the batch, the row (token) and the
//!   column (channel): one NaN would silently poison a whole row and column of `G`.

#![warn(missing_docs)]

use rayon::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors};
use sparseswaps_tensor_io::{write_safetensors_atomic, OwnedTensor, TensorIoError, TensorSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Side of the square tiles of `G` computed as independent GEMMs.
pub const TILE: usize = 256;

/// Most tokens multiplied in one f32 GEMM before the product is added in f64.
pub const CHUNK_TOKENS: usize = 4096;

/// Value of the `format` metadata key of a saved Gram.
pub const FORMAT: &str = "sparseswaps-gram";

/// Default tensor name of a saved Gram.
pub const TENSOR_NAME: &str = "gram";

/// Errors of Gram accumulation, merging, saving and loading.
#[derive(Debug, Error)]
pub enum GramError {
    /// A batch whose length is not `tokens x d_in`.
    #[error("activation batch {batch}: {len} values is not {tokens} tokens x d_in {d_in}")]
    BatchShape {
        /// Index of the batch in this accumulator (0-based).
        batch: u64,
        /// Values given.
        len: usize,
        /// Tokens announced.
        tokens: usize,
        /// Width of the accumulator.
        d_in: usize,
    },
    /// A NaN or infinite activation.
    #[error(
        "activation batch {batch}: non-finite value {value} at row {row} (token), column {col} (channel)"
    )]
    NonFinite {
        /// Index of the batch in this accumulator (0-based).
        batch: u64,
        /// Row of the batch (token).
        row: usize,
        /// Column (input channel).
        col: usize,
        /// The value.
        value: f32,
    },
    /// A full Gram of the wrong length.
    #[error("a Gram of d_in {d_in} has {expected} values, got {len}")]
    FullShape {
        /// Values given.
        len: usize,
        /// Values expected (`d_in²`).
        expected: usize,
        /// The width.
        d_in: usize,
    },
    /// Merging accumulators of different widths.
    #[error("cannot merge a Gram of d_in {theirs} into one of d_in {ours}")]
    WidthMismatch {
        /// This accumulator's width.
        ours: usize,
        /// The other one's.
        theirs: usize,
    },
    /// A saved Gram that is not usable (wrong shape, dtype, metadata, symmetry).
    #[error("{path}: {reason}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Reading or writing the file failed.
    #[error(transparent)]
    Io(#[from] TensorIoError),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, GramError>;

/// Element type of a saved Gram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GramDtype {
    /// Full precision of the accumulator (default; `d_in² · 8` bytes).
    F64,
    /// Half the size; what the engine computes with anyway.
    F32,
}

impl GramDtype {
    fn as_str(self) -> &'static str {
        match self {
            GramDtype::F64 => "f64",
            GramDtype::F32 => "f32",
        }
    }
}

/// One tile of the lower triangle: rows `r0..r1`, columns `c0..c1` of `G` (`c1 <= r1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TileSpan {
    r0: usize,
    r1: usize,
    c0: usize,
    c1: usize,
}

/// A running Gram matrix `G = Σ_batches Xᵀ X` with its token count.
///
/// Storage is the lower triangle of `G` in [`TILE`]-sized tiles, in f64. Cloning and
/// merging are cheap relative to accumulation; memory is about `d_in² · 4` bytes for the
/// tiles plus a per-thread f32 scratch tile.
#[derive(Debug, Clone, PartialEq)]
pub struct GramAccumulator {
    d_in: usize,
    tokens: u64,
    batches: u64,
    spans: Vec<TileSpan>,
    tiles: Vec<Vec<f64>>,
}

fn spans_for(d_in: usize) -> Vec<TileSpan> {
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
        let d = self.d_in;
        let mut g = vec![0.0f64; d * d];
        for (s, t) in self.spans.iter().zip(&self.tiles) {
            let w = s.c1 - s.c0;
            for i in s.r0..s.r1 {
                let row = &t[(i - s.r0) * w..(i - s.r0 + 1) * w];
                for (j, &v) in (s.c0..s.c1).zip(row) {
                    if j <= i {
                        g[i * d + j] = v;
                        g[j * d + i] = v;
                    }
                }
            }
        }
        g
    }

    /// The full symmetric `G`, row-major `d_in x d_in`, narrowed to f32: what
    /// `sparseswaps_core::LayerProblem` takes.
    pub fn to_f32(&self) -> Vec<f32> {
        self.to_f64().into_iter().map(|v| v as f32).collect()
    }

    /// Saves `G` (full symmetric, tensor [`TENSOR_NAME`]) as safetensors, written
    /// atomically, with metadata `format` = [`FORMAT`], `tokens`, `batches`, `dtype`
    /// and `d_in`.
    pub fn save(&self, path: &Path, dtype: GramDtype) -> Result<()> {
        let d = self.d_in;
        let g = self.to_f64();
        let tensor = match dtype {
            GramDtype::F64 => OwnedTensor::f64(vec![d, d], &g),
            GramDtype::F32 => {
                let g32: Vec<f32> = g.iter().map(|&v| v as f32).collect();
                OwnedTensor::f32(vec![d, d], &g32)
            }
        };
        let meta = HashMap::from([
            ("format".to_string(), FORMAT.to_string()),
            ("tokens".to_string(), self.tokens.to_string()),
            ("batches".to_string(), self.batches.to_string()),
            ("dtype".to_string(), dtype.as_str().to_string()),
            ("d_in".to_string(), d.to_string()),
        ]);
        write_safetensors_atomic(path, &[(TENSOR_NAME.to_string(), tensor)], Some(meta))?;
        Ok(())
    }

    /// Loads a Gram saved by [`Self::save`] (`FILE[:TENSOR]`; the tensor defaults to
    /// [`TENSOR_NAME`]). The token count comes from the `tokens` metadata, which must be
    /// present; the matrix must be square, f32 or f64, finite and symmetric.
    pub fn load(spec: &TensorSpec) -> Result<Self> {
        let path = &spec.path;
        let bad = |reason: String| GramError::BadFile {
            path: path.clone(),
            reason,
        };
        let bytes = sparseswaps_tensor_io::read_file(path)?;
        let st = sparseswaps_tensor_io::parse(path, &bytes)?;
        let (_, meta) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        let tokens: u64 = meta
            .get("tokens")
            .ok_or_else(
                || bad("no 'tokens' metadata: not a Gram saved by sparseswaps-gram".into()),
            )?
            .parse()
            .map_err(|_| {
                bad(format!(
                    "metadata tokens = '{}' is not a count",
                    meta["tokens"]
                ))
            })?;
        let batches: u64 = meta
            .get("batches")
            .and_then(|b| b.parse().ok())
            .unwrap_or(0);
        let name = spec.name.as_deref().unwrap_or(TENSOR_NAME);
        let view = st.tensor(name).map_err(|_| {
            let mut present: Vec<String> = st.names().into_iter().map(String::from).collect();
            present.sort();
            bad(format!(
                "no tensor named '{name}'; tensors present: {}",
                present.join(", ")
            ))
        })?;
        let shape = view.shape().to_vec();
        if shape.len() != 2 || shape[0] != shape[1] {
            return Err(bad(format!(
                "tensor '{name}' has shape {shape:?}, a Gram matrix is square"
            )));
        }
        let d = shape[0];
        let data: Vec<f64> = match view.dtype() {
            Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect(),
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                .collect(),
            other => {
                return Err(bad(format!(
                    "tensor '{name}' has dtype {other:?}; expected f64 or f32"
                )))
            }
        };
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "tensor '{name}' has a non-finite value {} at [{}, {}]",
                data[i],
                i / d,
                i % d
            )));
        }
        for i in 0..d {
            for j in 0..i {
                let (a, b) = (data[i * d + j], data[j * d + i]);
                if a != b && (a - b).abs() > 1e-6 * (data[i * d + i] * data[j * d + j]).sqrt() {
                    return Err(bad(format!(
                        "tensor '{name}' is not symmetric: [{i}, {j}] = {a}, [{j}, {i}] = {b}"
                    )));
                }
            }
        }
        let mut acc = GramAccumulator::from_full(d, &data, tokens)?;
        acc.batches = batches;
        Ok(acc)
    }
}

/// `tile += (X[:, r0..r1])ᵀ X[:, c0..c1]` for one chunk of tokens: an f32 GEMM into
/// `scratch`, added into the f64 tile.
fn add_tile_product(
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
