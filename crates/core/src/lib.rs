//! # sparseswaps-core
//!
//! The mathematical core of sparseswaps: sparsity patterns, masks, the layer-wise pruning
//! objective `E(M) = || W X - (M ⊙ W) X ||²` expressed through the Gram matrix
//! `G = X Xᵀ`, and the exact 1-swap refinement engine of SparseSwaps (Zimmer et al.,
//! arXiv 2512.10922) on CPU.
//!
//! What it is for: refining any warm-start mask of one linear layer, given its weights
//! and Gram matrix, from any Rust program. What it is not for: reading files, models or
//! configs, or printing (those live in the crates above it).
//!
//! ```
//! use sparseswaps_core::{refine, LayerProblem, Mask, Pattern, RefineOptions};
//! // 1 row, 4 inputs, identity Gram: the error is the squared norm of the pruned weights.
//! let w = [1.0f32, -3.0, 0.5, 2.0];
//! let g = [1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
//! let problem = LayerProblem::new(&w, 1, 4, &g).unwrap();
//! let pattern = Pattern::unstructured(0.5).unwrap();
//! let mut mask = Mask::new(1, 4, vec![1, 0, 1, 0]).unwrap(); // a poor warm start
//! let report = refine(&problem, &pattern, &mut mask, &RefineOptions::default(), &|_| {}).unwrap();
//! assert_eq!(mask.as_slice(), &[0, 1, 0, 1]); // keeps the two largest weights
//! assert!(report.final_error < report.warm_error);
//! ```

#![warn(missing_docs)]

pub mod backend;
mod bounded;
pub mod budget;
pub mod engine;
pub mod error;
mod exhaustive;
pub mod mask;
mod nm;
pub mod objective;
pub mod options;
pub mod pattern;
pub mod report;
mod row;
mod row_walk;
pub mod select;
mod simd;

pub use backend::{Backend, CpuBackend};
pub use bounded::{best_swaps_bounded, column_correlation_bound};
pub use budget::{refine_budget, validate_budget, CrossMove, MoveObserver};
pub use engine::refine;
pub use error::{CoreError, Result};
pub use exhaustive::best_swaps_unstructured;
pub use mask::{validate_mask, Mask};
pub use objective::{
    check_finite, check_gram_diagonal, layer_error, row_energy, row_error, LayerError, LayerProblem,
};
pub use options::{Budget, RefineOptions, Search};
pub use pattern::Pattern;
pub use report::KeptStats;
pub use report::{RefineReport, RowReport, StopReason};
pub use row::RowState;
pub use select::mask_from_scores;
pub use simd::has_avx2;
