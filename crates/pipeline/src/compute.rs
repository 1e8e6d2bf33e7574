//! Where a layer is computed: the refinement backend that
//! `sparseswaps_kernels::select_backend` chooses (`cpu`, `cuda` or `auto`), the search it
//! runs when none is asked for, and the Gram accumulation that goes with it — cuBLAS
//! ([`CudaGram`]) when the backend is CUDA, the CPU [`GramAccumulator`] otherwise.

use crate::error::{PipelineError, Result};
use sparseswaps_core::{Backend, Search};
use sparseswaps_gram::{GramAccumulator, GramError};
use sparseswaps_kernels::{Activations, BackendKind, CudaBackend, CudaGram, KernelsError};

/// The chosen backend, and the device its Gram matrices are accumulated on.
pub struct Compute {
    backend: Box<dyn Backend>,
    /// The CUDA device for [`CudaGram`] when the backend is CUDA (`select_backend` hands
    /// the backend over as a trait object, so the Gram opens device 0 for itself).
    cuda: Option<CudaBackend>,
    note: Option<String>,
}

impl Compute {
    /// Selects the backend of `kind` (see `sparseswaps_kernels::select_backend`).
    pub fn select(kind: BackendKind) -> Result<Compute> {
        let (backend, note) = sparseswaps_kernels::select_backend(kind)
            .map_err(|e| PipelineError::Backend(e.to_string()))?;
        let cuda = if backend.name() == "cuda" {
            Some(CudaBackend::new(0).map_err(|e| PipelineError::Backend(e.to_string()))?)
        } else {
            None
        };
        Ok(Compute {
            backend,
            cuda,
            note,
        })
    }

    /// The CPU backend (no selection, no note).
    pub fn cpu() -> Compute {
        Compute {
            backend: Box::new(sparseswaps_core::CpuBackend),
            cuda: None,
            note: None,
        }
    }

    /// The refinement backend.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// Why `auto` chose the CPU, when it did.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The search run when the user asks for none: `bounded` on the CPU, where it is the
    /// faster; `exhaustive` on CUDA, which runs no bounded search.
    pub fn default_search(&self) -> Search {
        if self.backend.name() == "cuda" {
            Search::Exhaustive
        } else {
            Search::Bounded
        }
    }

    /// A zero Gram matrix of order `d_in` on this backend's device.
    pub fn gram(&self, d_in: usize) -> std::result::Result<GramBuilder<'_>, GramFault> {
        Ok(match &self.cuda {
            Some(cuda) => GramBuilder::Cuda {
                gram: CudaGram::new(cuda, d_in).map_err(GramFault::Device)?,
                d_in,
                batches: 0,
            },
            None => GramBuilder::Cpu(GramAccumulator::new(d_in)),
        })
    }
}

/// The name of a search, as the config and `--search` spell it.
pub fn search_name(search: Search) -> &'static str {
    match search {
        Search::Exhaustive => "exhaustive",
        Search::Bounded => "bounded",
    }
}

/// A Gram matrix being accumulated, on the CPU or on the CUDA device.
pub enum GramBuilder<'a> {
    /// The CPU accumulator (f64 tiles).
    Cpu(GramAccumulator),
    /// cuBLAS (f32 accumulation).
    Cuda {
        /// The device accumulator.
        gram: CudaGram<'a>,
        /// Its order.
        d_in: usize,
        /// Batches added, for error messages.
        batches: u64,
    },
}

/// Why a batch could not be added.
#[derive(Debug, thiserror::Error)]
pub enum GramFault {
    /// The batch itself (shape, a NaN or infinite value).
    #[error(transparent)]
    Data(#[from] GramError),
    /// The CUDA device.
    #[error(transparent)]
    Device(KernelsError),
}

impl GramFault {
    /// As a pipeline error about `layer`.
    pub fn at(self, layer: String) -> PipelineError {
        match self {
            GramFault::Data(error) => PipelineError::Gram { layer, error },
            GramFault::Device(e) => PipelineError::Backend(format!("{layer}: {e}")),
        }
    }
}

impl GramBuilder<'_> {
    /// Adds `Xᵀ X` for `tokens` rows `x` (`[tokens, d_in]`, row-major). A batch of the
    /// wrong length or with a NaN or infinite value is refused on either device, with
    /// the same error.
    pub fn add(&mut self, x: &[f32], tokens: usize) -> std::result::Result<(), GramFault> {
        match self {
            GramBuilder::Cpu(acc) => Ok(acc.add_batch(x, tokens)?),
            GramBuilder::Cuda {
                gram,
                d_in,
                batches,
            } => {
                let d = *d_in;
                if x.len() != tokens * d {
                    return Err(GramError::BatchShape {
                        batch: *batches,
                        len: x.len(),
                        tokens,
                        d_in: d,
                    }
                    .into());
                }
                if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                    return Err(GramError::NonFinite {
                        batch: *batches,
                        row: i / d,
                        col: i % d,
                        value: x[i],
                    }
                    .into());
                }
                gram.add(Activations::F32(x)).map_err(GramFault::Device)?;
                *batches += 1;
                Ok(())
            }
        }
    }

    /// Tokens accumulated.
    pub fn tokens(&self) -> u64 {
        match self {
            GramBuilder::Cpu(acc) => acc.tokens(),
            GramBuilder::Cuda { gram, .. } => gram.tokens(),
        }
    }

    /// The full symmetric matrix, row-major f32 (what `LayerProblem` takes).
    pub fn finish(self) -> std::result::Result<Vec<f32>, GramFault> {
        match self {
            GramBuilder::Cpu(acc) => Ok(acc.to_f32()),
            GramBuilder::Cuda { gram, .. } => gram.finish().map_err(GramFault::Device),
        }
    }
}
