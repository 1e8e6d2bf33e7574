//! Typed errors of the pipeline; every message is one line naming what is at fault.

use std::path::{Path, PathBuf};
use thiserror::Error;

/// Everything that can stop a pipeline run.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The config is invalid (unknown key, bad value). Values quoted from the file have
    /// their control characters escaped, so the message stays one line.
    #[error("{path}: {}", sparseswaps_tensor_io::one_line(.reason))]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The output directory exists and the run was not forced.
    #[error("output directory {0} exists; use --force to replace it")]
    OutputExists(PathBuf),
    /// Inputs that do not fit the request (text too short, glob matching nothing...).
    #[error("{0}")]
    Input(String),
    /// The model layer failed.
    #[error(transparent)]
    Model(#[from] sparseswaps_model::ModelError),
    /// The engine failed.
    #[error("{layer}: {error}")]
    Core {
        /// The layer being pruned.
        layer: String,
        /// The engine's error.
        error: sparseswaps_core::CoreError,
    },
    /// Gram accumulation failed.
    #[error("{layer}: {error}")]
    Gram {
        /// The layer (or capture point) being accumulated.
        layer: String,
        /// The error.
        error: sparseswaps_gram::GramError,
    },
    /// Writing a tensor file failed.
    #[error(transparent)]
    TensorIo(#[from] sparseswaps_tensor_io::TensorIoError),
    /// The warm start failed or could not be found.
    #[error("warm start '{name}': {reason}")]
    WarmStart {
        /// The warm start's name.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A warm-start plugin could not be found or loaded (the message names the plugin
    /// and, when it is not found, where it was searched).
    #[error(transparent)]
    Plugin(#[from] sparseswaps_plugin_host::PluginError),
    /// The requested backend is unavailable.
    #[error("backend: {0}")]
    Backend(String),
    /// A checkpoint file is unreadable or inconsistent.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `--resume` cannot continue: no checkpoint, or one of another config, input or
    /// version (the message names what differs).
    #[error("resume refused: {0}")]
    Resume(String),
    /// A staging directory of an unfinished run is in the way (without `--resume` or
    /// `--force`), or still being written by a live process.
    #[error("{0}")]
    Unfinished(String),
    /// The run failed after checkpointing some blocks: the cause, and where the
    /// checkpoint that `--resume` continues from is.
    #[error("{error} ({note})")]
    Checkpointed {
        /// What stopped the run.
        error: Box<PipelineError>,
        /// Which blocks are checkpointed, and where.
        note: String,
    },
}

/// Result type of the pipeline.
pub type Result<T> = std::result::Result<T, PipelineError>;

/// Maps an I/O error on `path` to [`PipelineError::Io`] (for `map_err`).
pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> PipelineError + '_ {
    move |error| PipelineError::Io {
        path: path.into(),
        error,
    }
}
