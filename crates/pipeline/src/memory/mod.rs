//! Memory: the plan of a run's peak (estimated before any weight is read, printed, and
//! checked against `--max-memory` / `run.max_memory`) and the peaks it measures per
//! phase for `report.json`.
//!
//! `plan` computes the estimate from the configs; `meter` reads Linux's high-water mark
//! per phase; this file checks the limit.

mod meter;
mod plan;

pub use meter::{vm_hwm, MemoryReport, Meter, PhasePeak};
pub use plan::{gb, plan, MemoryPlan, Part, PhaseEstimate, PlanInputs, Residency};

use crate::error::{PipelineError, Result};

/// Refuses a plan whose peak exceeds `limit` bytes: one line with the estimate and its
/// breakdown.
pub fn check_limit(plan: &MemoryPlan, limit: Option<u64>) -> Result<()> {
    match limit {
        Some(max) if plan.peak_bytes > max => Err(PipelineError::Input(format!(
            "the run does not fit the memory limit of {}: {}",
            gb(max),
            plan.summary()
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
