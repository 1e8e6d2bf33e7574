//! The backend trait: where refinement runs (CPU here; CUDA in `sparseswaps-kernels`).

use crate::engine::refine;
use crate::error::Result;
use crate::mask::Mask;
use crate::objective::LayerProblem;
use crate::options::RefineOptions;
use crate::pattern::Pattern;
use crate::report::RefineReport;

/// A refinement engine. Implementations must follow the contract of the CPU engine:
/// the mask is refined in place and keeps its pattern, the error never increases, and
/// the report's errors are exact recomputes.
pub trait Backend: Send + Sync {
    /// Short name for reports ("cpu", "cuda").
    fn name(&self) -> &str;

    /// Refines `mask` in place; `progress` receives counts of rows finished.
    fn refine(
        &self,
        problem: &LayerProblem<'_>,
        pattern: &Pattern,
        mask: &mut Mask,
        opts: &RefineOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<RefineReport>;
}

/// The CPU engine (rows in parallel on the current rayon pool).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> &str {
        "cpu"
    }

    fn refine(
        &self,
        problem: &LayerProblem<'_>,
        pattern: &Pattern,
        mask: &mut Mask,
        opts: &RefineOptions,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<RefineReport> {
        refine(problem, pattern, mask, opts, progress)
    }
}
