//! Peak resident memory per phase of a run, measured: Linux's `VmHWM` read at the end of
//! each phase, reset at its start by writing `5` to `/proc/self/clear_refs`.

use serde::{Deserialize, Serialize};

/// The measured peak of one phase, beside its estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhasePeak {
    /// The phase.
    pub phase: String,
    /// Peak resident bytes (`VmHWM`), when known.
    pub peak_bytes: Option<u64>,
    /// The plan's estimate of it.
    pub estimate_bytes: Option<u64>,
}

/// `report.json`'s `memory`: the plan and the measured peaks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// The plan printed at the start.
    pub plan: super::MemoryPlan,
    /// The phases this process ran (a resumed run lacks those done before it).
    pub measured: Vec<PhasePeak>,
    /// How the peaks were measured when they are not per phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Peak resident set size of this process so far (Linux `VmHWM`), in bytes.
pub fn vm_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets `VmHWM` to the current resident size (Linux ≥ 4.0); false when it cannot.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

/// Hands the memory the allocator keeps after frees back to the system (glibc's
/// `malloc_trim`), so that what one phase freed (the tokenizer's buffers, the dense
/// evaluation's hidden states) is not resident, and not counted, in the next.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free pages of the heap; no live allocation is
    // touched, and it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Measures each phase's peak.
#[derive(Debug, Default)]
pub struct Meter {
    measured: Vec<PhasePeak>,
    reset_failed: bool,
    current: Option<String>,
}

impl Meter {
    /// Starts a phase (ending the current one, if any).
    pub fn start(&mut self, phase: &str, plan: &super::MemoryPlan) {
        self.end(plan);
        if self.measured.is_empty() {
            // Everything before the first phase: loading, checksumming, tokenising.
            self.measured.push(PhasePeak {
                phase: "loading".into(),
                peak_bytes: vm_hwm(),
                estimate_bytes: None,
            });
        }
        return_freed_memory();
        if !reset_hwm() {
            self.reset_failed = true;
        }
        self.current = Some(phase.to_string());
    }

    /// Ends the current phase, recording its peak.
    pub fn end(&mut self, plan: &super::MemoryPlan) {
        if let Some(phase) = self.current.take() {
            let estimate_bytes = plan
                .phases
                .iter()
                .find(|p| p.phase == phase)
                .map(|p| p.bytes);
            self.measured.push(PhasePeak {
                phase,
                peak_bytes: vm_hwm(),
                estimate_bytes,
            });
        }
    }

    /// The report, the current phase ended.
    pub fn report(mut self, plan: &super::MemoryPlan) -> MemoryReport {
        self.end(plan);
        MemoryReport {
            plan: plan.clone(),
            measured: self.measured,
            note: self.reset_failed.then(|| {
                "/proc/self/clear_refs could not be written: each phase's peak is the running high-water mark of the process".into()
            }),
        }
    }
}
