//! The exact 1-swap refinement engine on CPU.
//!
//! Per row (rows in parallel with rayon), starting from a warm-start mask:
//! find the admissible swap (kept `u` → pruned, pruned `q` → kept) with the smallest
//! change of error `Δ(u, q) = a_u + b_q - 2 w_u w_q G[u,q]`, take it if it lowers the
//! error by more than the tolerance, and repeat until no swap does ("1-swap optimal") or
//! the row has taken `max_swaps` swaps.
//!
//! Numerics:
//! - The running state `c = G p` and the row error `E = pᵀ c` are kept in f64.
//! - The exhaustive search over pairs runs in f32 (twice the SIMD width of f64); the
//!   winning pair's `Δ` is then recomputed in f64 from `c`, and that value decides.
//! - A swap is accepted only when `Δ < -tol`, with `tol = rel_tol · E_row` (default
//!   `rel_tol = 1e-9`), so rounding noise can never be taken for an improvement.
//! - Every `recompute_every` accepted swaps of a row (default 32), `c` and `E` are
//!   recomputed exactly from the mask, and once more when the row stops, so the reported
//!   errors carry no drift.
//!
//! Ties: the smallest `Δ` wins; between equal values the lower `u`, then the lower `q`.
//!
//! Unstructured rows are processed in batches that walk the Gram matrix in tiles, so one
//! tile of `G` loaded into cache serves every row of the batch (one full pass over `G`
//! per row and step would be bound by memory bandwidth). N:M rows only compare pairs
//! inside each group of `M`: `O(d_in)` per step, done in f64 directly.
//!
//! Every row's result depends only on that row's inputs, and sums over rows are taken in
//! row order, so results are identical for any number of threads.

use crate::error::Result;
use crate::mask::Mask;
use crate::objective::LayerProblem;
use crate::pattern::Pattern;
use crate::report::{RefineReport, RowReport, StopReason};
use crate::simd;
use rayon::prelude::*;
use std::time::Instant;

/// Options of one refinement run.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RefineOptions {
    /// Most swaps per row; `None` means no cap (stop only at 1-swap optimality).
    pub max_swaps: Option<u32>,
    /// Recompute `c` and `E` exactly after this many accepted swaps of a row (0: only at
    /// the end of the row).
    pub recompute_every: u32,
    /// A swap is accepted only when `Δ < -rel_tol · E_row`.
    pub rel_tol: f64,
}

impl Default for RefineOptions {
    fn default() -> Self {
        RefineOptions {
            max_swaps: Some(100),
            recompute_every: 32,
            rel_tol: 1e-9,
        }
    }
}

/// Running state of one row: `c = G p` and `E = pᵀ G p` in f64.
///
/// Exposed so that tests and other backends can check the update formulas.
#[derive(Debug, Clone)]
pub struct RowState<'a> {
    w: &'a [f32],
    gram: &'a [f32],
    c: Vec<f64>,
    error: f64,
    energy: f64,
    avx2: bool,
}

impl<'a> RowState<'a> {
    /// Builds `c` and `E` exactly from the mask row; also the dense energy `wᵀ G w`.
    pub fn new(w: &'a [f32], mask_row: &[u8], gram: &'a [f32]) -> Self {
        let mut s = RowState {
            w,
            gram,
            c: vec![0.0; w.len()],
            error: 0.0,
            energy: 0.0,
            avx2: simd::has_avx2(),
        };
        s.recompute_with_energy(mask_row, true);
        s
    }

    fn recompute_with_energy(&mut self, mask_row: &[u8], energy: bool) {
        let d = self.w.len();
        self.c.iter_mut().for_each(|v| *v = 0.0);
        let mut y = if energy { vec![0.0f64; d] } else { Vec::new() };
        for (j, &m) in mask_row.iter().enumerate() {
            let wj = self.w[j] as f64;
            if wj == 0.0 {
                continue;
            }
            let gj = &self.gram[j * d..(j + 1) * d];
            if m == 0 {
                simd::axpy(self.avx2, &mut self.c, wj, gj);
            } else if energy {
                simd::axpy(self.avx2, &mut y, wj, gj);
            }
        }
        self.error = (0..d)
            .filter(|&j| mask_row[j] == 0)
            .map(|j| self.w[j] as f64 * self.c[j])
            .sum();
        if energy {
            self.energy = (0..d).map(|j| self.w[j] as f64 * (y[j] + self.c[j])).sum();
        }
    }

    /// Recomputes `c` and `E` exactly from the mask row (drift removal).
    pub fn recompute(&mut self, mask_row: &[u8]) {
        self.recompute_with_energy(mask_row, false);
    }

    /// The running row error `E`.
    pub fn error(&self) -> f64 {
        self.error
    }

    /// The dense row energy `wᵀ G w`.
    pub fn energy(&self) -> f64 {
        self.energy
    }

    /// The running `c = G p`.
    pub fn c(&self) -> &[f64] {
        &self.c
    }

    /// Cost of pruning kept `u`: `a_u = w_u² G[u,u] + 2 w_u c_u`.
    pub fn a(&self, u: usize) -> f64 {
        let d = self.w.len();
        let wu = self.w[u] as f64;
        wu * wu * self.gram[u * d + u] as f64 + 2.0 * wu * self.c[u]
    }

    /// Gain of restoring pruned `q`: `b_q = w_q² G[q,q] - 2 w_q c_q`.
    pub fn b(&self, q: usize) -> f64 {
        let d = self.w.len();
        let wq = self.w[q] as f64;
        wq * wq * self.gram[q * d + q] as f64 - 2.0 * wq * self.c[q]
    }

    /// Exact change of error for swapping kept `u` out and pruned `q` in.
    pub fn delta(&self, u: usize, q: usize) -> f64 {
        let d = self.w.len();
        self.a(u) + self.b(q)
            - 2.0 * self.w[u] as f64 * self.w[q] as f64 * self.gram[u * d + q] as f64
    }

    /// Applies the swap (kept `u` → pruned, pruned `q` → kept) to the mask row and the
    /// state; returns the `Δ` that was added to `E`.
    pub fn apply(&mut self, mask_row: &mut [u8], u: usize, q: usize) -> f64 {
        debug_assert!(mask_row[u] == 1 && mask_row[q] == 0);
        let d = self.w.len();
        let delta = self.delta(u, q);
        simd::axpy(
            self.avx2,
            &mut self.c,
            self.w[u] as f64,
            &self.gram[u * d..(u + 1) * d],
        );
        simd::axpy(
            self.avx2,
            &mut self.c,
            -(self.w[q] as f64),
            &self.gram[q * d..(q + 1) * d],
        );
        self.error += delta;
        mask_row[u] = 0;
        mask_row[q] = 1;
        delta
    }
}

/// Rows refined together over one walk of the Gram tiles.
const BATCH_ROWS: usize = 16;
/// Gram tile: `TILE_U` rows of `G` by `TILE_Q` columns (128 KiB at f32: fits L2).
const TILE_U: usize = 32;
const TILE_Q: usize = 1024;

/// Per-row scratch of the batched unstructured search.
struct RowSearch {
    /// `-2 w_q` for pruned `q`, 0 for kept.
    h: Vec<f32>,
    /// `b_q` for pruned `q`, `+inf` for kept.
    b: Vec<f32>,
    /// Kept indices, ascending.
    kept: Vec<u32>,
    /// `w_u` for each kept index.
    s: Vec<f32>,
    /// Running minimum over `q` for each kept index.
    minv: Vec<f32>,
}

impl RowSearch {
    fn new(d: usize) -> Self {
        RowSearch {
            h: vec![0.0; d],
            b: vec![0.0; d],
            kept: Vec::with_capacity(d),
            s: Vec::with_capacity(d),
            minv: Vec::with_capacity(d),
        }
    }

    fn prepare(&mut self, st: &RowState<'_>, mask_row: &[u8]) {
        self.kept.clear();
        self.s.clear();
        for (q, &m) in mask_row.iter().enumerate() {
            if m == 1 {
                self.kept.push(q as u32);
                self.s.push(st.w[q]);
                self.h[q] = 0.0;
                self.b[q] = f32::INFINITY;
            } else {
                self.h[q] = -2.0 * st.w[q];
                self.b[q] = st.b(q) as f32;
            }
        }
        self.minv.clear();
        self.minv.resize(self.kept.len(), f32::INFINITY);
    }
}

/// One row being refined.
struct RowJob<'a> {
    state: RowState<'a>,
    search: RowSearch,
    mask: &'a mut [u8],
    report: RowReport,
    since_recompute: u32,
    done: bool,
}

/// Refines `mask` in place for `problem` under `pattern`; the mask must already follow
/// the pattern (it is validated first).
pub fn refine(
    problem: &LayerProblem<'_>,
    pattern: &Pattern,
    mask: &mut Mask,
    opts: &RefineOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<RefineReport> {
    let start = Instant::now();
    problem.check_mask(mask)?;
    mask.validate(pattern)?;
    let d = problem.d_in();
    let avx2 = simd::has_avx2();
    let rows: Vec<RowReport> = match pattern.group() {
        None => mask
            .as_mut_slice()
            .par_chunks_mut(d * BATCH_ROWS)
            .enumerate()
            .flat_map_iter(|(bi, chunk)| {
                let r0 = bi * BATCH_ROWS;
                let jobs = chunk
                    .chunks_mut(d)
                    .enumerate()
                    .map(|(i, m)| {
                        RowJob::new(RowState::new(problem.row(r0 + i), m, problem.gram()), m)
                    })
                    .collect();
                let out = refine_batch_unstructured(problem.gram(), d, jobs, opts, avx2);
                progress(out.len());
                out
            })
            .collect(),
        Some((_, m)) => mask
            .as_mut_slice()
            .par_chunks_mut(d)
            .enumerate()
            .map(|(r, mrow)| {
                let st = RowState::new(problem.row(r), mrow, problem.gram());
                let rep = refine_row_nm(RowJob::new(st, mrow), m, opts);
                progress(1);
                rep
            })
            .collect(),
    };
    let k = pattern.kept_per_row(d);
    let pairs_per_step = match pattern.group() {
        None => (k * (d - k)) as u64,
        Some((n, m)) => (d / m * n * (m - n)) as u64,
    };
    Ok(RefineReport::from_rows(
        rows,
        problem.d_out(),
        d,
        *pattern,
        k,
        opts.max_swaps,
        pairs_per_step,
        start.elapsed().as_secs_f64(),
        "cpu",
    ))
}

impl<'a> RowJob<'a> {
    fn new(state: RowState<'a>, mask: &'a mut [u8]) -> Self {
        let report = RowReport {
            warm_error: state.error(),
            final_error: state.error(),
            energy: state.energy(),
            swaps: 0,
            steps: 0,
            stop: StopReason::Optimal,
        };
        RowJob {
            state,
            search: RowSearch::new(0),
            mask,
            report,
            since_recompute: 0,
            done: false,
        }
    }

    fn tol(&self, opts: &RefineOptions) -> f64 {
        opts.rel_tol * self.state.error().max(0.0)
    }

    /// Accepts or rejects the best candidate `(u, q)`; marks the row done when it stops.
    fn decide(&mut self, best: Option<(usize, usize)>, opts: &RefineOptions) {
        self.report.steps += 1;
        let Some((u, q)) = best else {
            self.finish(StopReason::NothingToSwap);
            return;
        };
        let delta = self.state.delta(u, q);
        if delta >= -self.tol(opts) {
            self.finish(StopReason::Optimal);
            return;
        }
        self.state.apply(self.mask, u, q);
        self.report.swaps += 1;
        self.since_recompute += 1;
        if opts.recompute_every > 0 && self.since_recompute >= opts.recompute_every {
            self.state.recompute(self.mask);
            self.since_recompute = 0;
        }
        if opts.max_swaps.is_some_and(|cap| self.report.swaps >= cap) {
            self.finish(StopReason::MaxSwaps);
        }
    }

    /// Checks the cap before any search (a cap of 0 means: report only).
    fn check_cap(&mut self, opts: &RefineOptions) {
        if opts.max_swaps == Some(0) {
            self.finish(StopReason::MaxSwaps);
        }
    }

    fn finish(&mut self, stop: StopReason) {
        self.state.recompute(self.mask);
        self.report.final_error = self.state.error();
        self.report.stop = stop;
        self.done = true;
    }
}

fn refine_row_nm(mut job: RowJob<'_>, m: usize, opts: &RefineOptions) -> RowReport {
    job.check_cap(opts);
    let d = job.mask.len();
    let gram = job.state.gram;
    while !job.done {
        let mut best: Option<(usize, usize)> = None;
        let mut best_delta = f64::INFINITY;
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
                    let delta = a + job.state.b(q)
                        - 2.0 * wu * job.state.w[q] as f64 * gram[u * d + q] as f64;
                    if delta < best_delta {
                        best_delta = delta;
                        best = Some((u, q));
                    }
                }
            }
        }
        job.decide(best, opts);
    }
    job.report
}

fn refine_batch_unstructured(
    gram: &[f32],
    d: usize,
    mut jobs: Vec<RowJob<'_>>,
    opts: &RefineOptions,
    avx2: bool,
) -> Vec<RowReport> {
    for job in &mut jobs {
        job.search = RowSearch::new(d);
        job.check_cap(opts);
        let k = job.mask.iter().filter(|&&v| v == 1).count();
        if !job.done && (k == 0 || k == d) {
            job.report.steps += 1;
            job.finish(StopReason::NothingToSwap);
        }
    }
    loop {
        let mut active: Vec<&mut RowJob<'_>> = jobs.iter_mut().filter(|j| !j.done).collect();
        if active.is_empty() {
            break;
        }
        for job in active.iter_mut() {
            job.search.prepare(&job.state, job.mask);
        }
        let mut searches: Vec<&mut RowSearch> = active.iter_mut().map(|j| &mut j.search).collect();
        search_tiles(gram, d, &mut searches, avx2);
        for job in active.iter_mut() {
            let best = pick_best(&job.search, &job.state, gram, d);
            job.decide(best, opts);
        }
    }
    jobs.into_iter().map(|j| j.report).collect()
}

/// Walks `G` in tiles; for every active row and kept `u`, updates the minimum over pruned
/// `q` of the pair value.
fn search_tiles(gram: &[f32], d: usize, active: &mut [&mut RowSearch], avx2: bool) {
    for q0 in (0..d).step_by(TILE_Q) {
        let q1 = (q0 + TILE_Q).min(d);
        for u0 in (0..d).step_by(TILE_U) {
            let u1 = (u0 + TILE_U).min(d);
            for rs in active.iter_mut() {
                let lo = rs.kept.partition_point(|&u| (u as usize) < u0);
                let hi = rs.kept.partition_point(|&u| (u as usize) < u1);
                let (h, b) = (&rs.h[q0..q1], &rs.b[q0..q1]);
                let grow = |u: u32| &gram[u as usize * d + q0..u as usize * d + q1];
                let mut i = lo;
                while i + 4 <= hi {
                    let us = [rs.kept[i], rs.kept[i + 1], rs.kept[i + 2], rs.kept[i + 3]];
                    let s = [rs.s[i], rs.s[i + 1], rs.s[i + 2], rs.s[i + 3]];
                    let m = simd::min4(avx2, us.map(grow), h, b, s);
                    for (mv, &x) in rs.minv[i..i + 4].iter_mut().zip(&m) {
                        if x < *mv {
                            *mv = x;
                        }
                    }
                    i += 4;
                }
                while i < hi {
                    let u = rs.kept[i];
                    let g = grow(u);
                    let m = simd::min4(avx2, [g, g, g, g], h, b, [rs.s[i]; 4])[0];
                    if m < rs.minv[i] {
                        rs.minv[i] = m;
                    }
                    i += 1;
                }
            }
        }
    }
}

/// From the per-`u` minima, the best pair under the tie rule (lowest `Δ`, then lowest
/// `u`, then lowest `q`), or `None` when no pair is finite.
fn pick_best(rs: &RowSearch, st: &RowState<'_>, gram: &[f32], d: usize) -> Option<(usize, usize)> {
    let mut best_i = None;
    let mut best_v = f32::INFINITY;
    for (i, &u) in rs.kept.iter().enumerate() {
        let v = st.a(u as usize) as f32 + rs.minv[i];
        if v < best_v {
            best_v = v;
            best_i = Some(i);
        }
    }
    let i = best_i?;
    let u = rs.kept[i] as usize;
    let target = rs.minv[i];
    let grow = &gram[u * d..(u + 1) * d];
    let q = (0..d).find(|&q| simd::pair_value(grow[q], rs.h[q], rs.b[q], rs.s[i]) == target)?;
    Some((u, q))
}

/// One exhaustive search step for every row of an unstructured layer, applying nothing:
/// the best pair `(u, q)` of each row under the tie rule (`None` when no pair exists).
///
/// `states[r]` must have been built from `mask.row(r)`. This is the engine's inner step,
/// exposed for benchmarks and for checking other backends against the CPU.
pub fn best_swaps_unstructured(
    gram: &[f32],
    states: &[RowState<'_>],
    mask: &Mask,
) -> Vec<Option<(usize, usize)>> {
    let d = mask.cols();
    let avx2 = simd::has_avx2();
    states
        .par_chunks(BATCH_ROWS)
        .enumerate()
        .flat_map_iter(|(bi, sts)| {
            let mut searches: Vec<RowSearch> = sts
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let mut rs = RowSearch::new(d);
                    rs.prepare(st, mask.row(bi * BATCH_ROWS + i));
                    rs
                })
                .collect();
            let mut refs: Vec<&mut RowSearch> = searches.iter_mut().collect();
            search_tiles(gram, d, &mut refs, avx2);
            searches
                .iter()
                .zip(sts)
                .map(|(rs, st)| pick_best(rs, st, gram, d))
                .collect::<Vec<_>>()
        })
        .collect()
}
