//! The typed errors of this crate. Every message is one line naming the file, tensor or
//! key it is about.

// Names, keys and values in messages come from the files: `one_line` escapes their control
// characters so that every message stays one line.
use sparseswaps_tensor_io::one_line;
use std::path::PathBuf;
use thiserror::Error;

/// Errors of model loading, running, evaluation and writing.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The model path does not exist.
    #[error("{path}: no such file or directory")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed, or has a value of the wrong type.
    #[error("{path}: {}", one_line(.reason))]
    Json {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A required key is missing from a config file or GGUF metadata.
    #[error("{path}: missing key '{}'", one_line(.key))]
    MissingKey {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// The model uses something this crate does not implement (architecture, rope type,
    /// tokenizer kind, tensor type).
    #[error("{path}: unsupported {}", one_line(.what))]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported, with its value.
        what: String,
    },
    /// A Hugging Face directory has no `tokenizer.json`.
    #[error("{path}: missing tokenizer.json (a Hugging Face model directory needs one)")]
    MissingTokenizer {
        /// The directory.
        path: PathBuf,
    },
    /// The tokenizer could not be loaded, built or run.
    #[error("{path}: tokenizer: {}", one_line(.reason))]
    Tokenizer {
        /// The tokenizer file (or the GGUF file it was built from).
        path: PathBuf,
        /// What the tokenizer library said.
        reason: String,
    },
    /// A safetensors file is invalid (truncated, bad header).
    #[error("{path}: not a valid safetensors file ({})", one_line(.reason))]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// A GGUF file is invalid (wrong magic, truncated, bad metadata).
    #[error("{path}: invalid GGUF file: {}", one_line(.reason))]
    Gguf {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A tensor the model needs is absent.
    #[error("{path}: missing tensor '{}'", one_line(.name))]
    MissingTensor {
        /// The file or directory searched.
        path: PathBuf,
        /// The tensor name.
        name: String,
    },
    /// A tensor has a shape or dtype the model cannot use.
    #[error("tensor '{}': {}", one_line(.name), one_line(.reason))]
    BadTensor {
        /// The tensor name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A weight name passed to [`crate::Model::weight`] or
    /// [`crate::Model::set_weight`] is not a linear layer of the model.
    #[error("no linear layer named '{}' in this model", one_line(.name))]
    UnknownWeight {
        /// The name asked for.
        name: String,
    },
    /// A layer index is out of range.
    #[error("layer {index} out of range: the model has {count} layers")]
    LayerOutOfRange {
        /// The index asked for.
        index: usize,
        /// The number of layers.
        count: usize,
    },
    /// The evaluation text is shorter than one window.
    #[error("{path}: text has {tokens} tokens, fewer than one window of {seq_len}")]
    TextTooShort {
        /// The text file (or `<text>` for in-memory text).
        path: PathBuf,
        /// Tokens in the text.
        tokens: usize,
        /// The window length.
        seq_len: usize,
    },
    /// An output already exists and overwriting was not asked for.
    #[error("{path}: already exists (pass --force to replace it)")]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// An argument is out of range (empty input, zero window).
    #[error("{0}")]
    InvalidArgument(String),
    /// A tensor operation failed (shape mismatch inside the forward, out of memory).
    #[error("{}: {}", one_line(.context), one_line(&.source.to_string()))]
    Candle {
        /// What was being done.
        context: String,
        /// The tensor library's error.
        source: candle_core::Error,
    },
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

/// Adds a context line to tensor-library errors.
pub(crate) trait CandleContext<T> {
    /// Wraps the error with `ctx`.
    fn ctx(self, ctx: impl FnOnce() -> String) -> Result<T>;
}

impl<T> CandleContext<T> for std::result::Result<T, candle_core::Error> {
    fn ctx(self, ctx: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| ModelError::Candle {
            context: ctx(),
            source,
        })
    }
}

/// Maps an I/O error on `path`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ModelError {
    let path = path.into();
    move |source| ModelError::Io { path, source }
}

/// Lets callers use `?` on tensor operations (`model.weight(..)?.to_vec1()?`).
impl From<candle_core::Error> for ModelError {
    fn from(source: candle_core::Error) -> ModelError {
        ModelError::Candle {
            context: "tensor operation".into(),
            source,
        }
    }
}
