//! The search of N:M rows: a swap stays inside one group of `M`, so each step compares
//! the few pairs of every group exactly, with no tiles and no bound.

use crate::options::RefineOptions;
use crate::row::RowJob;

/// Refines one N:M row: each step compares the pairs inside every group of `m` directly
/// in f64 (`O(d_in)` per step); ties go to the first pair found (lower `u`, then `q`).
pub(crate) fn refine_row_nm(job: &mut RowJob<'_>, m: usize, opts: &RefineOptions) {
    job.check_cap(opts);
    let d = job.mask.len();
    let gram = job.state.gram;
    while !job.done {
        let mut best: Option<(usize, usize)> = None;
        let mut best_delta = f64::INFINITY;
        let mut pairs = 0u64;
        for g0 in (0..d).step_by(m) {
            for u in g0..g0 + m {
                if job.mask[u] == 0 {
                    continue;
                }
                let a = job.state.a(u);
                let wu = job.state.w[u] as f64;
                for q in g0..g0 + m {
                    if job.mask[q] == 1 {
                        continue;
                    }
                    pairs += 1;
                    let delta = a + job.state.b(q)
                        - 2.0 * wu * job.state.w[q] as f64 * gram[u * d + q] as f64;
                    if delta < best_delta {
                        best_delta = delta;
                        best = Some((u, q));
                    }
                }
            }
        }
        job.decide(best, pairs, opts);
    }
}
