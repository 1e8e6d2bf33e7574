//! Typed errors of the core crate.

use thiserror::Error;

/// Everything that can go wrong inside `sparseswaps-core`.
///
/// Messages are one line and name the value at fault, so a binary can print them as is.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    /// A sparsity pattern that cannot exist (sparsity outside `[0, 1)`, `N >= M`, ...).
    #[error("invalid sparsity pattern: {0}")]
    InvalidPattern(String),
    /// A pattern that is valid in itself but does not fit a layer's width.
    #[error("pattern {pattern} does not fit d_in = {d_in}: {reason}")]
    PatternMismatch {
        /// The pattern as the user wrote it.
        pattern: String,
        /// The layer's input width.
        d_in: usize,
        /// Why it does not fit.
        reason: String,
    },
    /// Shapes of weights, Gram matrix and mask disagree.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A matrix given as a Gram matrix `X Xᵀ` that cannot be one: a negative diagonal
    /// entry (so it is not positive semi-definite) or entries that are not symmetric.
    #[error("not a Gram matrix: {reason}")]
    NotGram {
        /// What is wrong, with the entries' indices and values.
        reason: String,
    },
    /// A NaN or infinite value in an input.
    #[error("non-finite value in {what} at index {index} (value {value})")]
    NonFinite {
        /// Which input (weights, Gram matrix, ...).
        what: String,
        /// Flat index of the first bad value.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// Refinement options that cannot apply (a budget other than `row` with an N:M
    /// pattern, a negative imbalance, an unknown budget name).
    #[error("invalid refinement options: {0}")]
    InvalidOptions(String),
    /// A mask that breaks its pattern (wrong count in a row, broken N:M group, value not 0/1).
    #[error("invalid mask: {0}")]
    InvalidMask(String),
    /// The backend itself failed (a device error, out of device memory): the inputs may
    /// be fine, and another backend may succeed.
    #[error("{backend} backend failed: {message}")]
    Backend {
        /// The backend's name ([`crate::Backend::name`]).
        backend: String,
        /// What failed, as the backend words it.
        message: String,
    },
}

/// Result type of the core crate.
pub type Result<T> = std::result::Result<T, CoreError>;
