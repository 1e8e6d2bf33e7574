//! The crate's error type, and the one-line rendering of names read from files.

use std::borrow::Cow;
use std::path::PathBuf;
use thiserror::Error;

/// `s` with its control characters (newline, carriage return, tab, escape...) written as
/// Rust escapes (`\n`), so that a name or value read from a file cannot spread an error
/// message over several lines or move the terminal's cursor.
pub fn one_line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Errors of tensor reading and writing.
#[derive(Debug, Error)]
pub enum TensorIoError {
    /// The file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The file is not a valid safetensors file.
    #[error("{path}: not a valid safetensors file ({})", one_line(.reason))]
    NotSafetensors {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The named tensor is absent, or no name was given and the choice is ambiguous.
    #[error("{path}: {}; tensors present: {}", one_line(.reason), one_line(.present))]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// What was asked.
        reason: String,
        /// Names present, comma-separated (with shapes).
        present: String,
    },
    /// The tensor has a dtype or rank that is not accepted here.
    #[error("{path}: tensor '{}' {}", one_line(.name), one_line(.reason))]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The output's directory does not exist.
    #[error("{path}: output directory {dir} does not exist")]
    NoOutputDir {
        /// The output file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, TensorIoError>;
