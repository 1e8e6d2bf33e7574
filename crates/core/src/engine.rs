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
//! - The chosen pair is the exact (f64, from `c`) argmin of `Δ` under the tie rule, with
//!   either search: the exhaustive search scans all pairs in f32 (twice the SIMD width
//!   of f64) and re-evaluates in f64 every pair within `1e-6 · S` of the f32 minimum
//!   (`S` bounds the magnitude of the terms, so this covers f32 rounding); the bounded
//!   search evaluates in f64 only the pairs its lower bound cannot rule out.
//! - A swap is accepted only when `Δ < -tol`, with `tol = rel_tol · E_row` (default
//!   `rel_tol = 1e-9`), so rounding noise can never be taken for an improvement.
//! - Every `recompute_every` accepted swaps of a row (default 128; the measured drift is
//!   ~1e-14 relative after 10⁴ swaps), `c` and `E` are
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

use crate::budget::Budget;
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
    /// How the best pair is found (unstructured patterns; N:M rows compare the few
    /// pairs inside each group directly).
    pub search: Search,
    /// How the kept budget is spread over the rows (default [`Budget::Row`]: `k` per
    /// row, the paper's setting). Other budgets apply to unstructured patterns only and
    /// add exact cross-row moves; see [`crate::budget`].
    #[serde(default)]
    pub budget: Budget,
}

/// How each step finds the best admissible pair. Both give the same pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Search {
    /// Every admissible pair, as in the paper (vectorised f32 pass over tiles of `G`,
    /// then the near-best candidates re-evaluated exactly in f64).
    Exhaustive,
    /// Pairs visited in increasing order of a separable lower bound (see
    /// [`column_correlation_bound`]), stopping once the bound exceeds the best `Δ` found.
    #[default]
    Bounded,
}

impl std::str::FromStr for Search {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "exhaustive" => Ok(Search::Exhaustive),
            "bounded" => Ok(Search::Bounded),
            other => Err(format!("search '{other}': expected exhaustive or bounded")),
        }
    }
}

impl Default for RefineOptions {
    fn default() -> Self {
        RefineOptions {
            max_swaps: Some(100),
            recompute_every: 128,
            rel_tol: 1e-9,
            search: Search::Bounded,
            budget: Budget::Row,
        }
    }
}

/// Running state of one row: `c = G p` and `E = pᵀ G p` in f64.
///
/// Exposed so that tests and other backends can check the update formulas.
#[derive(Debug, Clone)]
pub struct RowState<'a> {
    pub(crate) w: &'a [f32],
    pub(crate) gram: &'a [f32],
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
        let delta = self.delta(u, q);
        self.add_gram_column(u, self.w[u] as f64);
        self.add_gram_column(q, -(self.w[q] as f64));
        self.error += delta;
        mask_row[u] = 0;
        mask_row[q] = 1;
        delta
    }

    /// Prunes kept `u` alone (one half of a cross-row move): `c += w_u G[:,u]` and
    /// `E += a_u`. Returns the `Δ = a_u` that was added to `E`.
    pub fn prune(&mut self, mask_row: &mut [u8], u: usize) -> f64 {
        debug_assert!(mask_row[u] == 1);
        let delta = self.a(u);
        self.add_gram_column(u, self.w[u] as f64);
        self.error += delta;
        mask_row[u] = 0;
        delta
    }

    /// Restores pruned `q` alone (the other half of a cross-row move):
    /// `c -= w_q G[:,q]` and `E += b_q`. Returns the `Δ = b_q` that was added to `E`.
    pub fn restore(&mut self, mask_row: &mut [u8], q: usize) -> f64 {
        debug_assert!(mask_row[q] == 0);
        let delta = self.b(q);
        self.add_gram_column(q, -(self.w[q] as f64));
        self.error += delta;
        mask_row[q] = 1;
        delta
    }

    /// `c += scale · G[:,i]`: the one update of `c` behind every swap and move
    /// (`G` is symmetric, so its row `i` is the column).
    fn add_gram_column(&mut self, i: usize, scale: f64) {
        let d = self.w.len();
        simd::axpy(
            self.avx2,
            &mut self.c,
            scale,
            &self.gram[i * d..(i + 1) * d],
        );
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
pub(crate) struct RowJob<'a> {
    pub(crate) state: RowState<'a>,
    search: RowSearch,
    pub(crate) mask: &'a mut [u8],
    pub(crate) report: RowReport,
    pub(crate) since_recompute: u32,
    pub(crate) done: bool,
    /// Cross-row moves this row took part in; they count toward `max_swaps` with its
    /// swaps (always 0 under the row budget).
    pub(crate) moves: u32,
    /// Recompute `c` and `E` exactly when the row stops (always, except between the
    /// rounds of the budget engine, which recomputes once at the very end).
    pub(crate) exact_stop: bool,
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
    if opts.budget != Budget::Row {
        return crate::budget::refine_budget(
            problem,
            pattern,
            mask,
            opts,
            progress,
            &mut |_, _, _| {},
        );
    }
    let start = Instant::now();
    problem.check_mask(mask)?;
    mask.validate(pattern)?;
    let d = problem.d_in();
    let avx2 = simd::has_avx2();
    let rows: Vec<RowReport> = match pattern.group() {
        None if opts.search == Search::Bounded => {
            let rho = column_correlation_bound(problem.gram(), d);
            mask.as_mut_slice()
                .par_chunks_mut(d)
                .enumerate()
                .map(|(r, mrow)| {
                    let st = RowState::new(problem.row(r), mrow, problem.gram());
                    let rep = refine_row_bounded(RowJob::new(st, mrow), &rho, problem.gram(), opts);
                    progress(1);
                    rep
                })
                .collect()
        }
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
    Ok(RefineReport::from_rows(
        rows,
        problem.d_out(),
        d,
        *pattern,
        pattern.kept_per_row(d),
        opts.max_swaps,
        start.elapsed().as_secs_f64(),
        "cpu",
    ))
}

impl<'a> RowJob<'a> {
    pub(crate) fn new(state: RowState<'a>, mask: &'a mut [u8]) -> Self {
        let report = RowReport {
            warm_error: state.error(),
            final_error: state.error(),
            energy: state.energy(),
            swaps: 0,
            steps: 0,
            pairs: 0,
            stop: StopReason::Optimal,
        };
        RowJob {
            state,
            search: RowSearch::new(0),
            mask,
            report,
            since_recompute: 0,
            done: false,
            moves: 0,
            exact_stop: true,
        }
    }

    /// Swaps and cross-row moves so far, against `max_swaps`.
    pub(crate) fn changes(&self) -> u32 {
        self.report.swaps + self.moves
    }

    fn tol(&self, opts: &RefineOptions) -> f64 {
        opts.rel_tol * self.state.error().max(0.0)
    }

    /// Accepts or rejects the best candidate `(u, q)`; marks the row done when it stops.
    fn decide(&mut self, best: Option<(usize, usize)>, pairs: u64, opts: &RefineOptions) {
        self.report.steps += 1;
        self.report.pairs += pairs;
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
        if opts.max_swaps.is_some_and(|cap| self.changes() >= cap) {
            self.finish(StopReason::MaxSwaps);
        }
    }

    /// Checks the cap before any search (a cap of 0 means: report only).
    pub(crate) fn check_cap(&mut self, opts: &RefineOptions) {
        if opts.max_swaps.is_some_and(|cap| self.changes() >= cap) {
            self.finish(StopReason::MaxSwaps);
        }
    }

    pub(crate) fn finish(&mut self, stop: StopReason) {
        if self.exact_stop {
            self.state.recompute(self.mask);
            self.since_recompute = 0;
        }
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
            let best = pick_best(&job.search, &job.state, job.mask, gram, d);
            let k = job.search.kept.len() as u64;
            job.decide(best, k * (d as u64 - k), opts);
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

/// From the per-`u` f32 minima, the exact best pair: every pair whose f32 value is
/// within `1e-6 · S` of the f32 minimum is re-evaluated in f64, and the smallest exact
/// `Δ` wins (ties: lower `u`, then lower `q`). `None` when no pair is finite.
fn pick_best(
    rs: &RowSearch,
    st: &RowState<'_>,
    mask: &[u8],
    gram: &[f32],
    d: usize,
) -> Option<(usize, usize)> {
    let a32: Vec<f32> = rs.kept.iter().map(|&u| st.a(u as usize) as f32).collect();
    let mut best32 = f32::INFINITY;
    for (i, &a) in a32.iter().enumerate() {
        let v = a + rs.minv[i];
        if v < best32 {
            best32 = v;
        }
    }
    if !best32.is_finite() {
        return None;
    }
    // S bounds |a_u| + |b_q| + |2 w_u w_q G[u,q]| over admissible pairs; f32 rounding of
    // a pair's value is below 5 ulp of S, far inside 1e-6 · S.
    let (mut amax, mut bmax, mut su, mut sq) = (0f64, 0f64, 0f64, 0f64);
    for (j, &m) in mask.iter().enumerate() {
        let sigma = (st.w[j] as f64).abs() * (gram[j * d + j] as f64).sqrt();
        if m == 1 {
            amax = amax.max(st.a(j).abs());
            su = su.max(sigma);
        } else {
            bmax = bmax.max(st.b(j).abs());
            sq = sq.max(sigma);
        }
    }
    let thr = best32 as f64 + 1e-6 * (amax + bmax + 2.0 * su * sq);
    let mut best: Option<(usize, usize)> = None;
    let mut best64 = f64::INFINITY;
    for (i, &u) in rs.kept.iter().enumerate() {
        if (a32[i] + rs.minv[i]) as f64 > thr {
            continue;
        }
        let u = u as usize;
        let grow = &gram[u * d..(u + 1) * d];
        for q in 0..d {
            if mask[q] == 1 {
                continue;
            }
            let v = a32[i] + simd::pair_value(grow[q], rs.h[q], rs.b[q], rs.s[i]);
            if v as f64 <= thr {
                let delta = st.delta(u, q);
                if delta < best64 {
                    best64 = delta;
                    best = Some((u, q));
                }
            }
        }
    }
    best
}

/// Per column `j`, the largest absolute correlation with any other column of `G`:
/// `ρ_j = max_{i≠j} |G[i,j]| / sqrt(G[i,i] G[j,j])` (0 for a zero column).
///
/// It gives the bounded search a separable lower bound tighter than plain
/// Cauchy–Schwarz: `|corr(u,q)| ≤ min(ρ_u, ρ_q) ≤ sqrt(ρ_u ρ_q)`, so
/// `2 |w_u w_q G[u,q]| ≤ ρ_u σ_u² + ρ_q σ_q²` with `σ_j² = w_j² G[j,j]`, and
/// `Δ(u,q) ≥ (a_u - ρ_u σ_u²) + (b_q - ρ_q σ_q²)`. With `ρ = 1` this is the bound of
/// the algorithm notes; on real layers `ρ` is far below 1 for most columns, which
/// prunes most pairs.
pub fn column_correlation_bound(gram: &[f32], d: usize) -> Vec<f64> {
    let diag: Vec<f64> = (0..d)
        .map(|i| (gram[i * d + i] as f64).max(0.0).sqrt())
        .collect();
    (0..d)
        .into_par_iter()
        .map(|j| {
            if diag[j] == 0.0 {
                return 0.0;
            }
            let row = &gram[j * d..(j + 1) * d];
            let mut m = 0f64;
            for (i, &g) in row.iter().enumerate() {
                if i != j && diag[i] > 0.0 {
                    m = m.max((g as f64).abs() / (diag[i] * diag[j]));
                }
            }
            // Rounding of the f64 quotient must not make the bound invalid.
            (m * (1.0 + 1e-12)).min(1.0 + 1e-12)
        })
        .collect()
}

/// Scratch of the bounded search of one row.
#[derive(Default)]
struct BoundScratch {
    us: Vec<(f64, u32)>,
    qs: Vec<(f64, u32)>,
    /// `a_j` for kept `j`, `b_j` for pruned `j`, this step.
    ab: Vec<f64>,
}

/// The exact best pair of one row by bounded search, and the number of pairs evaluated.
///
/// Returns `None` when the bound rules out too few pairs for the ordered walk to beat
/// one vectorised pass over all pairs (a visited pair costs ~15x a vectorised one): the
/// caller then runs the exhaustive search for this step, which finds the same pair.
fn bounded_best(
    st: &RowState<'_>,
    mask: &[u8],
    rho: &[f64],
    sig2: &[f64],
    sc: &mut BoundScratch,
) -> Option<(Option<(usize, usize)>, u64)> {
    // Lower bound terms A_u (kept) and B_q (pruned), and the plain a/b minima for seeds.
    let (mut amin, mut bmin) = (f64::INFINITY, f64::INFINITY);
    let (mut ua, mut qb) = (usize::MAX, usize::MAX);
    let (mut araw, mut braw) = (f64::INFINITY, f64::INFINITY);
    let (mut ur, mut qr) = (usize::MAX, usize::MAX);
    let mut scale = 0f64;
    sc.us.clear();
    sc.qs.clear();
    sc.ab.resize(mask.len(), 0.0);
    let (w, c) = (st.w, &st.c);
    for (j, &m) in mask.iter().enumerate() {
        // a_j and b_j exactly as `RowState::a`/`b` compute them, without the strided
        // reads of the Gram diagonal (`sig2[j] = w_j² G[j,j]`).
        let twc = 2.0 * w[j] as f64 * c[j];
        if m == 1 {
            let a = sig2[j] + twc;
            sc.ab[j] = a;
            let lb = a - rho[j] * sig2[j];
            sc.us.push((lb, j as u32));
            if lb < amin {
                (amin, ua) = (lb, j);
            }
            if a < araw {
                (araw, ur) = (a, j);
            }
            scale = scale.max(a.abs() + sig2[j]);
        } else {
            let b = sig2[j] - twc;
            sc.ab[j] = b;
            let lb = b - rho[j] * sig2[j];
            sc.qs.push((lb, j as u32));
            if lb < bmin {
                (bmin, qb) = (lb, j);
            }
            if b < braw {
                (braw, qr) = (b, j);
            }
            scale = scale.max(b.abs() + sig2[j]);
        }
    }
    if sc.us.is_empty() || sc.qs.is_empty() {
        return Some((None, 0));
    }
    let mut pairs = 0u64;
    let mut best: Option<(usize, usize)> = None;
    let mut best_d = f64::INFINITY;
    let consider = |u: usize,
                    q: usize,
                    best: &mut Option<(usize, usize)>,
                    best_d: &mut f64,
                    pairs: &mut u64| {
        *pairs += 1;
        let delta = st.delta(u, q);
        if delta < *best_d || (delta == *best_d && best.is_none_or(|b| (u, q) < b)) {
            *best_d = delta;
            *best = Some((u, q));
        }
    };
    consider(ua, qb, &mut best, &mut best_d, &mut pairs);
    if (ur, qr) != (ua, qb) {
        consider(ur, qr, &mut best, &mut best_d, &mut pairs);
    }
    // f64 rounding of bounds and Δ: a margin far above it keeps the search exact.
    let margin = 1e-9 * scale;
    let limit = |best_d: f64| best_d + margin;
    sc.us.retain(|&(lb, _)| lb + bmin <= limit(best_d));
    sc.qs.retain(|&(lb, _)| amin + lb <= limit(best_d));
    sc.us
        .sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    sc.qs
        .sort_unstable_by(|x, y| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1)));
    let kept = mask.iter().filter(|&&m| m == 1).count() as u64;
    let admissible = kept * (mask.len() as u64 - kept);
    let mut estimate = 0u64;
    for &(au, _) in &sc.us {
        estimate += sc.qs.partition_point(|&(bq, _)| au + bq <= limit(best_d)) as u64;
        if estimate * 32 > admissible {
            return None;
        }
    }
    for &(au, u) in &sc.us {
        if au + bmin > limit(best_d) {
            break;
        }
        for &(bq, q) in &sc.qs {
            if au + bq > limit(best_d) {
                break;
            }
            if (u as usize, q as usize) == (ua, qb) || (u as usize, q as usize) == (ur, qr) {
                continue;
            }
            consider(u as usize, q as usize, &mut best, &mut best_d, &mut pairs);
        }
    }
    Some((best, pairs))
}

fn refine_row_bounded(
    mut job: RowJob<'_>,
    rho: &[f64],
    gram: &[f32],
    opts: &RefineOptions,
) -> RowReport {
    job.check_cap(opts);
    run_row_bounded(&mut job, rho, gram, opts);
    job.report
}

/// The bounded search loop of one row, from its current state until it stops.
fn run_row_bounded(job: &mut RowJob<'_>, rho: &[f64], gram: &[f32], opts: &RefineOptions) {
    let d = job.mask.len();
    let sig2: Vec<f64> = (0..d)
        .map(|j| {
            let w = job.state.w[j] as f64;
            w * w * gram[j * d + j] as f64
        })
        .collect();
    let mut sc = BoundScratch::default();
    let mut rs = RowSearch::new(d);
    let avx2 = simd::has_avx2();
    while !job.done {
        let (best, pairs) = match bounded_best(&job.state, job.mask, rho, &sig2, &mut sc) {
            Some(found) => found,
            None => {
                // The bound prunes too little this step: one exhaustive pass instead.
                rs.prepare(&job.state, job.mask);
                search_tiles(gram, d, &mut [&mut rs], avx2);
                let k = rs.kept.len() as u64;
                (
                    pick_best(&rs, &job.state, job.mask, gram, d),
                    k * (d as u64 - k),
                )
            }
        };
        job.decide(best, pairs, opts);
    }
}

/// Runs the 1-swap loop of one unstructured row from its current state until it stops
/// (1-swap optimal, nothing to swap, or the cap on swaps plus cross-row moves). The row
/// may keep any number of weights. `rho` selects the bounded search (`None`:
/// exhaustive); both take the same swaps, as in [`refine`].
pub(crate) fn run_row_unstructured(
    job: &mut RowJob<'_>,
    rho: Option<&[f64]>,
    gram: &[f32],
    opts: &RefineOptions,
) {
    let d = job.mask.len();
    job.done = false;
    job.check_cap(opts);
    if job.done {
        return;
    }
    match rho {
        Some(rho) => run_row_bounded(job, rho, gram, opts),
        None => {
            let k = job.mask.iter().filter(|&&v| v == 1).count();
            if k == 0 || k == d {
                job.report.steps += 1;
                job.finish(StopReason::NothingToSwap);
                return;
            }
            let avx2 = simd::has_avx2();
            let mut rs = RowSearch::new(d);
            while !job.done {
                rs.prepare(&job.state, job.mask);
                search_tiles(gram, d, &mut [&mut rs], avx2);
                let best = pick_best(&rs, &job.state, job.mask, gram, d);
                let k = rs.kept.len() as u64;
                job.decide(best, k * (d as u64 - k), opts);
            }
        }
    }
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
                .enumerate()
                .map(|(i, (rs, st))| pick_best(rs, st, mask.row(bi * BATCH_ROWS + i), gram, d))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One bounded search step for every row of an unstructured layer, applying nothing:
/// each row's best pair and the pairs evaluated. `rho` is
/// [`column_correlation_bound`] of `gram`; `states[r]` must match `mask.row(r)`.
/// Exposed for benchmarks next to [`best_swaps_unstructured`].
pub fn best_swaps_bounded(
    gram: &[f32],
    rho: &[f64],
    states: &[RowState<'_>],
    mask: &Mask,
) -> Vec<(Option<(usize, usize)>, u64)> {
    let d = mask.cols();
    states
        .par_iter()
        .enumerate()
        .map_init(BoundScratch::default, |sc, (r, st)| {
            let sig2: Vec<f64> = (0..d)
                .map(|j| {
                    let w = st.w[j] as f64;
                    w * w * gram[j * d + j] as f64
                })
                .collect();
            bounded_best(st, mask.row(r), rho, &sig2, sc).unwrap_or_else(|| {
                let mut rs = RowSearch::new(d);
                rs.prepare(st, mask.row(r));
                search_tiles(gram, d, &mut [&mut rs], simd::has_avx2());
                let k = rs.kept.len() as u64;
                (pick_best(&rs, st, mask.row(r), gram, d), k * (d as u64 - k))
            })
        })
        .collect()
}
