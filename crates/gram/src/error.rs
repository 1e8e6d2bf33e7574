//! The crate's error type.

use sparseswaps_tensor_io::TensorIoError;
use std::path::PathBuf;
use thiserror::Error;

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
