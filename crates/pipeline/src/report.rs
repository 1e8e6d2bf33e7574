//! The run report (`report.json`).

use crate::config::PipelineConfig;
use serde::{Deserialize, Serialize};

/// One pruned layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    /// Layer name (`model.layers.3.mlp.down_proj`).
    pub name: String,
    /// Decoder block index.
    pub block: usize,
    /// `[d_out, d_in]`.
    pub shape: [usize; 2],
    /// The pattern (`0.5` or `2:4`).
    pub pattern: String,
    /// Warm start used.
    pub warm_start: String,
    /// Backend used.
    pub backend: String,
    /// Layer error of the warm-start mask.
    pub warm_error: f64,
    /// Layer error of the final mask with the original weights (under
    /// `refine.objective = "refit"`: after the refit swaps too).
    pub refined_error: f64,
    /// `||W X||²` on the calibration data.
    pub energy: f64,
    /// `warm_error / energy`.
    pub warm_relative: f64,
    /// `refined_error / energy`.
    pub refined_relative: f64,
    /// `1 - refined / warm`.
    pub reduction: f64,
    /// Swaps taken.
    pub swaps: u64,
    /// Rows that ended 1-swap optimal.
    pub rows_optimal: usize,
    /// Rows stopped by the cap.
    pub rows_capped: usize,
    /// Pairs evaluated.
    pub pairs_evaluated: u64,
    /// Fraction of weights pruned, as measured on the mask.
    pub sparsity: f64,
    /// Seconds of warm start and refinement.
    pub seconds: f64,
    /// Budget mode, cross-row moves, kept-count distribution, reconstruction.
    #[serde(flatten)]
    pub budget: crate::refit::BudgetFigures,
}

/// Perplexity figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PplReport {
    /// Perplexity.
    pub ppl: f64,
    /// Mean NLL per scored token.
    pub mean_nll: f64,
    /// Tokens scored.
    pub tokens: usize,
    /// Windows.
    pub windows: usize,
    /// Seconds.
    pub seconds: f64,
}

/// A checksummed input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputChecksum {
    /// Path as given.
    pub path: String,
    /// sha256 (of the file, or of the sorted files of a directory).
    pub sha256: String,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// sparseswaps version.
    pub version: String,
    /// The config as run.
    pub config: PipelineConfig,
    /// Calibration seed.
    pub seed: u64,
    /// Calibration tokens (samples · seq_len).
    pub calibration_tokens: usize,
    /// Checksums of the model, calibration and evaluation inputs.
    pub inputs: Vec<InputChecksum>,
    /// Per-layer figures, in pruning order.
    pub layers: Vec<LayerReport>,
    /// Dense perplexity (when evaluated).
    pub dense_ppl: Option<PplReport>,
    /// Pruned perplexity (when evaluated).
    pub pruned_ppl: Option<PplReport>,
    /// Mean per-layer error reduction of refinement over the warm start.
    pub mean_reduction: f64,
    /// Median per-layer error reduction.
    pub median_reduction: f64,
    /// Mean per-layer reduction of the re-fitted error by the swaps of the re-fitted
    /// objective (`refit_reduction`; `refine.objective = "refit"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_refit_reduction: Option<f64>,
    /// Fraction of target weights pruned, measured.
    pub sparsity: f64,
    /// Wall-clock seconds of the whole run.
    pub total_seconds: f64,
    /// Peak resident memory in bytes (Linux `VmHWM`), when known: the largest of the
    /// phases' peaks (`memory.measured`).
    pub peak_memory_bytes: Option<u64>,
    /// The memory plan (estimated peak per phase, disk to write) and the peak measured
    /// in each phase this process ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<crate::memory::MemoryReport>,
    /// Backend used, and why CUDA was not, when `auto` fell back.
    pub backend: String,
    /// Why `auto` fell back to the CPU, if it did.
    pub backend_note: Option<String>,
}

/// Mean and median of a list (0 for an empty list).
pub fn mean_median(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    };
    (mean, median)
}

/// Peak resident set size of this process (Linux `VmHWM`), in bytes: since the process
/// started, or since the last reset of the high-water mark (see [`crate::memory`]).
pub fn peak_memory_bytes() -> Option<u64> {
    crate::memory::vm_hwm()
}
