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
//!
//! ## Layout
//!
//! `tiles` (the tiling and the GEMM of one tile), `accumulator` (batches, merging,
//! reading `G`), `io` (save and load), `error`. Every public item is re-exported here.

#![warn(missing_docs)]

mod accumulator;
mod error;
mod io;
mod tiles;

pub use accumulator::GramAccumulator;
pub use error::{GramError, Result};
pub use io::{GramDtype, FORMAT, TENSOR_NAME};
pub use tiles::{CHUNK_TOKENS, TILE};
