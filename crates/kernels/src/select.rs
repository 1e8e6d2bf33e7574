//! Backend selection: `cpu`, `cuda` or `auto`.

use std::fmt;
use std::str::FromStr;

use sparseswaps_core::{Backend, CpuBackend};

use crate::backend::CudaBackend;
use crate::error::{KernelsError, Result};

/// Which backend to run refinement on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// The CPU engine of `sparseswaps-core`.
    Cpu,
    /// The CUDA backend; fails when it cannot run here.
    Cuda,
    /// CUDA when it can run here, else the CPU (with the reason).
    #[default]
    Auto,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
            BackendKind::Auto => "auto",
        })
    }
}

impl FromStr for BackendKind {
    type Err = KernelsError;

    /// Parses `cpu`, `cuda` or `auto` (case-insensitive).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(BackendKind::Cpu),
            "cuda" | "gpu" => Ok(BackendKind::Cuda),
            "auto" => Ok(BackendKind::Auto),
            _ => Err(KernelsError::UnknownBackend(s.to_string())),
        }
    }
}

/// Picks a backend on device 0; see [`select_backend_on`].
pub fn select_backend(kind: BackendKind) -> Result<(Box<dyn Backend>, Option<String>)> {
    select_backend_on(kind, 0)
}

/// Picks a backend.
///
/// - `Cpu`: the CPU engine, no reason.
/// - `Cuda`: the CUDA backend on device `ordinal`, or the first failed availability check
///   as an error (kernels not built, no driver, no device, ...).
/// - `Auto`: the CUDA backend when it can run, else the CPU engine together with the
///   reason CUDA was not used, returned once so the caller can show it once.
pub fn select_backend_on(
    kind: BackendKind,
    ordinal: usize,
) -> Result<(Box<dyn Backend>, Option<String>)> {
    match kind {
        BackendKind::Cpu => Ok((Box::new(CpuBackend), None)),
        BackendKind::Cuda => Ok((Box::new(CudaBackend::new(ordinal)?), None)),
        BackendKind::Auto => match CudaBackend::new(ordinal) {
            Ok(b) => Ok((Box::new(b), None)),
            // Any failure to open CUDA is a reason to fall back, not to fail: `auto`
            // promises a working backend.
            Err(e) => Ok((
                Box::new(CpuBackend),
                Some(format!("using the CPU backend: {e}")),
            )),
        },
    }
}

/// Why the CUDA backend cannot run here, or `None` when it can (opens and drops it).
pub fn cuda_unavailable_reason() -> Option<String> {
    CudaBackend::new(0).err().map(|e| e.to_string())
}
