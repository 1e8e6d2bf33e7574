//! Typed errors of the CUDA backend.
//!
//! The first four variants are the run-time availability checks, in the order the
//! backend makes them (kernels built, driver library present, a device present, enough
//! memory); each carries the reason in words, so `auto` backend selection can report why
//! it fell back to the CPU and `cuda` can fail with a message a user can act on.

use sparseswaps_core::CoreError;
use thiserror::Error;

/// Everything that can go wrong in `sparseswaps-kernels`.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum KernelsError {
    /// This build holds no PTX: nvcc was missing or failed when the crate was built.
    #[error("CUDA backend unavailable: this build has no GPU kernels ({reason}); rebuild with nvcc installed (set NVCC or CUDA_HOME)")]
    KernelsNotBuilt {
        /// Why build.rs could not build them.
        reason: String,
    },
    /// The NVIDIA driver library (libcuda) cannot be loaded.
    #[error("CUDA backend unavailable: no NVIDIA driver (could not load {tried}: {detail})")]
    NoDriver {
        /// Library names tried.
        tried: String,
        /// The loader's last message.
        detail: String,
    },
    /// The driver loads but reports no usable device (or the ordinal does not exist).
    #[error("CUDA backend unavailable: no CUDA device ({detail})")]
    NoDevice {
        /// What the driver said.
        detail: String,
    },
    /// The device has too little free memory even for the smallest chunk of rows.
    #[error("CUDA backend: out of GPU memory ({detail})")]
    OutOfMemory {
        /// Sizes needed and free.
        detail: String,
    },
    /// cuBLAS (needed for the Gram accumulation only) cannot be loaded.
    #[error("cuBLAS unavailable: could not load {tried}: {detail}")]
    NoCublas {
        /// Library names tried.
        tried: String,
        /// The loader's last message.
        detail: String,
    },
    /// Any other CUDA driver failure.
    #[error("CUDA driver error during {context}: {message}")]
    Driver {
        /// What the backend was doing.
        context: String,
        /// The driver's error name and text.
        message: String,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS error during {context}: {message}")]
    Cublas {
        /// What the backend was doing.
        context: String,
        /// The status cuBLAS returned.
        message: String,
    },
    /// Invalid input (shapes, patterns, masks), as checked by the core crate.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A backend name other than `cpu`, `cuda` or `auto`.
    #[error("unknown backend '{0}': expected cpu, cuda or auto")]
    UnknownBackend(String),
}

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, KernelsError>;

impl KernelsError {
    /// Whether this error means "no usable CUDA here" (as opposed to a failure while
    /// running): these are the reasons for which `auto` falls back to the CPU.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            KernelsError::KernelsNotBuilt { .. }
                | KernelsError::NoDriver { .. }
                | KernelsError::NoDevice { .. }
                | KernelsError::OutOfMemory { .. }
        )
    }

    /// Converts to the core error type that [`sparseswaps_core::Backend::refine`] must
    /// return: input errors pass through unchanged, device failures become
    /// [`CoreError::Backend`].
    pub fn into_core(self) -> CoreError {
        match self {
            KernelsError::Core(e) => e,
            other => CoreError::Backend {
                backend: "cuda".into(),
                message: other.to_string(),
            },
        }
    }
}

/// Maps a cudarc driver error, recognising out-of-memory and no-device codes.
pub(crate) fn driver_err(context: &str, e: cudarc::driver::DriverError) -> KernelsError {
    use cudarc::driver::sys::CUresult;
    let message = format!("{e}");
    match e.0 {
        CUresult::CUDA_ERROR_OUT_OF_MEMORY => KernelsError::OutOfMemory {
            detail: format!("{context}: {message}"),
        },
        CUresult::CUDA_ERROR_NO_DEVICE | CUresult::CUDA_ERROR_INVALID_DEVICE => {
            KernelsError::NoDevice {
                detail: format!("{context}: {message}"),
            }
        }
        _ => KernelsError::Driver {
            context: context.to_string(),
            message,
        },
    }
}

/// Maps a cuBLAS status.
pub(crate) fn cublas_err(context: &str, e: cudarc::cublas::result::CublasError) -> KernelsError {
    KernelsError::Cublas {
        context: context.to_string(),
        message: format!("{e:?}"),
    }
}
