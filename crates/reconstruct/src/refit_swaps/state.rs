//! One row's state for exact 1-swaps of the re-fitted objective, and its updates.
//!
//! For the kept set `K` (positions `0..k`), the pruned set `Q` (positions `0..m`,
//! `m = d_in − k`), the damped Gram `G̃ = G + λI` and `b = G w`:
//!
//! ```text
//! P = G̃[K,K]⁻¹ (k × k)   x = P b_K   V = P G[K,Q] (k × m)
//! r_t = b_t − G[t,K] x    s_t = G̃[t,t] − G[t,K] v_t     E* = wᵀGw − b_Kᵀ x
//! ```
//!
//! A swap keeps the layout: the entering index takes the leaving one's kept position
//! and the leaving index the entering one's pruned position, so no row or column of
//! `P` or `V` is ever shifted.

use super::kernels;
use faer::linalg::matmul::matmul;
use faer::linalg::solvers::DenseSolveCore;
use faer::{Accum, Mat, MatRef, Par, Side};

/// A pair whose Schur complement `s'_q` is at most this fraction of `G̃[q,q]` would
/// make the kept block numerically singular: it is not admissible.
pub(crate) const PIVOT_REL: f64 = 1e-12;

/// Running state of one row (all in f64). Exposed so that tests can check the update
/// formulas against a fresh factorisation.
#[derive(Debug, Clone)]
pub struct RefitRowState<'a> {
    gram: &'a [f32],
    d: usize,
    lambda: f64,
    energy: f64,
    b: Vec<f64>,
    pub(crate) kept: Vec<usize>,
    pub(crate) pruned: Vec<usize>,
    /// Column → its position in `kept` or in `pruned`.
    pub(crate) pos: Vec<usize>,
    /// Column → kept (1) or pruned (0).
    pub(crate) is_kept: Vec<u8>,
    pub(crate) p: Vec<f64>,
    pub(crate) x: Vec<f64>,
    pub(crate) v: Vec<f64>,
    pub(crate) r: Vec<f64>,
    pub(crate) s: Vec<f64>,
    /// Per pruned position: `PIVOT_REL · G̃[t,t]`.
    pub(crate) floor: Vec<f64>,
    error: f64,
}

/// `Σ_j g_j x_j` in f64 (four partial sums, so the loop vectorises).
fn dot(g: &[f32], x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (gc, xc) = (g.chunks_exact(4), x.chunks_exact(4));
    let (gr, xr) = (gc.remainder(), xc.remainder());
    for (a, b) in gc.zip(xc) {
        for l in 0..4 {
            acc[l] += a[l] as f64 * b[l];
        }
    }
    let tail: f64 = gr.iter().zip(xr).map(|(&a, &b)| a as f64 * b).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// A canonical copy of the state, ordered by column index (kept and pruned ascending),
/// so that two states reached by different routes can be compared entry by entry.
#[derive(Debug, Clone, PartialEq)]
pub struct RefitSnapshot {
    /// Kept columns, ascending.
    pub kept: Vec<usize>,
    /// Pruned columns, ascending.
    pub pruned: Vec<usize>,
    /// `P`, `k × k` row-major in the order of `kept`.
    pub p: Vec<f64>,
    /// `x`, in the order of `kept`.
    pub x: Vec<f64>,
    /// `V`, `k × m` row-major (rows in the order of `kept`, columns of `pruned`).
    pub v: Vec<f64>,
    /// `r`, in the order of `pruned`.
    pub r: Vec<f64>,
    /// `s`, in the order of `pruned`.
    pub s: Vec<f64>,
    /// The re-fitted (damped) error `E*`.
    pub error: f64,
}

impl<'a> RefitRowState<'a> {
    /// The state of row `w` with mask row `mask_row` and damping `λ`, freshly
    /// factorised; `None` when `G̃[K,K]` is not numerically positive definite.
    pub fn new(w: &[f32], mask_row: &[u8], gram: &'a [f32], lambda: f64) -> Option<Self> {
        let d = w.len();
        let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        let b: Vec<f64> = (0..d)
            .map(|i| dot(&gram[i * d..(i + 1) * d], &w64))
            .collect();
        let energy = w64.iter().zip(&b).map(|(a, c)| a * c).sum();
        let (mut kept, mut pruned) = (Vec::new(), Vec::new());
        let mut pos = vec![0; d];
        for (j, &mj) in mask_row.iter().enumerate() {
            if mj == 1 {
                pos[j] = kept.len();
                kept.push(j);
            } else {
                pos[j] = pruned.len();
                pruned.push(j);
            }
        }
        let mut st = RefitRowState {
            gram,
            d,
            lambda,
            energy,
            b,
            kept,
            pruned,
            pos,
            is_kept: mask_row.to_vec(),
            p: Vec::new(),
            x: Vec::new(),
            v: Vec::new(),
            r: Vec::new(),
            s: Vec::new(),
            floor: Vec::new(),
            error: 0.0,
        };
        st.refresh().then_some(st)
    }

    #[inline]
    fn g(&self, i: usize, j: usize) -> f64 {
        self.gram[i * self.d + j] as f64
    }

    /// Recomputes `P`, `x`, `V`, `r`, `s` and `E*` exactly from the kept set (Cholesky,
    /// inverse, one GEMM for `V`); false, with the state left as it was, when `G̃[K,K]`
    /// is not positive definite.
    pub fn refresh(&mut self) -> bool {
        let (k, m, d, lam) = (self.kept.len(), self.pruned.len(), self.d, self.lambda);
        let (kept, pruned, gram) = (&self.kept, &self.pruned, self.gram);
        // Built column by column from raw slices (faer matrices are column-major).
        let mut gkk = Mat::<f64>::zeros(k, k);
        for j in 0..k {
            let grow = &gram[kept[j] * d..(kept[j] + 1) * d];
            for (i, e) in gkk.col_as_slice_mut(j).iter_mut().enumerate() {
                *e = grow[kept[i]] as f64 + if i == j { lam } else { 0.0 };
            }
        }
        let inv = match gkk.llt(Side::Lower) {
            Ok(llt) => llt.inverse(),
            Err(_) => return false,
        };
        // P, symmetrised exactly, so its row-major and column-major layouts coincide.
        let mut p = vec![0.0; k * k];
        for i in 0..k {
            let col_i = inv.col_as_slice(i);
            for j in 0..k {
                p[i * k + j] = 0.5 * (inv.col_as_slice(j)[i] + col_i[j]);
            }
        }
        if (0..k).any(|i| !p[i * k + i].is_finite() || p[i * k + i] <= 0.0) {
            return false;
        }
        self.p = p;
        let bk: Vec<f64> = kept.iter().map(|&c| self.b[c]).collect();
        self.x = (0..k)
            .map(|i| (0..k).map(|j| self.p[i * k + j] * bk[j]).sum())
            .collect();
        // Vᵀ = G[Q,K] P, column-major (m × k): its column a is V's row a.
        let mut gqk = Mat::<f64>::zeros(m, k);
        for a in 0..k {
            let grow = &gram[kept[a] * d..(kept[a] + 1) * d];
            for (e, &t) in gqk.col_as_slice_mut(a).iter_mut().zip(pruned) {
                *e = grow[t] as f64;
            }
        }
        let mut vt = Mat::<f64>::zeros(m, k);
        matmul(
            vt.as_mut(),
            Accum::Replace,
            gqk.as_ref(),
            MatRef::from_column_major_slice(&self.p, k, k),
            1.0,
            Par::Seq,
        );
        self.v.clear();
        self.v.reserve(k * m);
        for a in 0..k {
            self.v.extend_from_slice(vt.col_as_slice(a));
        }
        self.r = pruned.iter().map(|&q| self.b[q]).collect();
        self.s = pruned
            .iter()
            .map(|&q| gram[q * d + q] as f64 + lam)
            .collect();
        self.floor = self.s.iter().map(|&g| PIVOT_REL * g.abs()).collect();
        for a in 0..k {
            let (xa, row) = (self.x[a], &self.v[a * m..(a + 1) * m]);
            let grow = &gram[kept[a] * d..(kept[a] + 1) * d];
            for t in 0..m {
                let gat = grow[pruned[t]] as f64;
                self.r[t] -= gat * xa;
                self.s[t] -= gat * row[t];
            }
        }
        self.error = self.energy - bk.iter().zip(&self.x).map(|(a, c)| a * c).sum::<f64>();
        self.error.is_finite() && self.x.iter().all(|v| v.is_finite())
    }

    /// The running re-fitted error `E*` (damped objective; exact after a refresh).
    pub fn error(&self) -> f64 {
        self.error
    }

    /// `wᵀ G w`.
    pub fn energy(&self) -> f64 {
        self.energy
    }

    /// The damping `λ` on the diagonal of the kept block.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Kept count `k`.
    pub fn k(&self) -> usize {
        self.kept.len()
    }

    /// Heap bytes held by the state (`8 (k² + k m + 2k + 3m + d) + 2 · 8 d`).
    pub fn bytes(&self) -> usize {
        let f = self.p.len() + self.v.len() + self.x.len() + self.r.len() + self.s.len();
        let f = f + self.floor.len() + self.b.len();
        let u = self.kept.len() + self.pruned.len() + self.pos.len();
        8 * f + std::mem::size_of::<usize>() * u + self.is_kept.len()
    }

    /// Extra bytes a refresh allocates for a moment (the kept block, its factor and
    /// inverse, `G[Q,K]` and `Vᵀ`).
    pub fn refresh_bytes(&self) -> usize {
        let (k, m) = (self.kept.len(), self.pruned.len());
        8 * (4 * k * k + 2 * k * m)
    }

    /// `Δ*` of the swap of kept position `i` with pruned position `t` (`+∞` when the
    /// pair would make the kept block singular).
    #[inline]
    pub(crate) fn delta_pos(&self, i: usize, t: usize) -> f64 {
        let k = self.kept.len();
        let m = self.pruned.len();
        let beta = 1.0 / self.p[i * k + i];
        let xi = self.x[i];
        let alpha = xi * beta;
        // The same operations, in the same order, as the search's kernel.
        let (v, s, r, floor) = (self.v[i * m + t], self.s[t], self.r[t], self.floor[t]);
        let g = kernels::addition_gain(v, s, r, floor, beta, alpha);
        if g == f64::NEG_INFINITY {
            return f64::INFINITY;
        }
        xi * alpha - g
    }

    /// `Δ*(u, q)`: the change of `E*` if kept column `u` is pruned and pruned column `q`
    /// kept (`None` when `u` is not kept or `q` not pruned; `+∞` when inadmissible).
    pub fn delta(&self, u: usize, q: usize) -> Option<f64> {
        let ok = u < self.d && q < self.d && self.is_kept[u] == 1 && self.is_kept[q] == 0;
        ok.then(|| self.delta_pos(self.pos[u], self.pos[q]))
    }

    /// `x_u² / P[u,u]`: how much `E*` rises if kept column `u` is pruned alone (the
    /// OBS cost; one half of a cross-row move). `None` when `u` is not kept.
    pub fn removal_cost(&self, u: usize) -> Option<f64> {
        (u < self.d && self.is_kept[u] == 1).then(|| {
            let i = self.pos[u];
            let k = self.kept.len();
            self.x[i] * self.x[i] / self.p[i * k + i]
        })
    }

    /// `r_q² / s_q`: how much `E*` falls if pruned column `q` is kept as well (the
    /// other half of a cross-row move). `None` when `q` is not pruned, or when keeping
    /// it would make the kept block numerically singular (`s_q` at or below its floor).
    pub fn addition_gain(&self, q: usize) -> Option<f64> {
        if q >= self.d || self.is_kept[q] == 1 {
            return None;
        }
        let t = self.pos[q];
        (self.s[t] > self.floor[t]).then(|| self.r[t] * self.r[t] / self.s[t])
    }

    /// Applies the swap (kept `u` out, pruned `q` in) by a removal and a bordered
    /// addition, in `O(k m + k²)`; returns the `Δ*` added to the running error, or
    /// `None` (state untouched) when the pair is not admissible.
    pub fn apply(&mut self, u: usize, q: usize) -> Option<f64> {
        let delta = self.delta(u, q)?;
        if !delta.is_finite() {
            return None;
        }
        let (i, j) = (self.pos[u], self.pos[q]);
        self.apply_pos(i, j);
        self.error += delta;
        Some(delta)
    }

    fn apply_pos(&mut self, i: usize, j: usize) {
        let (k, m, lam) = (self.kept.len(), self.pruned.len(), self.lambda);
        let (u, q) = (self.kept[i], self.pruned[j]);
        let beta = 1.0 / self.p[i * k + i];
        let xi = self.x[i];
        let pc: Vec<f64> = (0..k).map(|a| self.p[a * k + i]).collect();
        let vi: Vec<f64> = self.v[i * m..(i + 1) * m].to_vec();
        // The removal of u gives the quantities of K \ {u}; q's column of them is known
        // before any pass: v'_q[a] = V[a,q] − P[a,u] β V[u,q], s'_q = s_q + β V[u,q]².
        let vq: Vec<f64> = (0..k)
            .map(|a| {
                if a == i {
                    0.0
                } else {
                    self.v[a * m + j] - pc[a] * beta * vi[j]
                }
            })
            .collect();
        let sq = self.s[j] + beta * vi[j] * vi[j];
        let rq = self.r[j] + xi * beta * vi[j];
        // One pass over P: the removal of u, then the bordered addition of q at
        // position i (its row and column are set below).
        for a in (0..k).filter(|&a| a != i) {
            let f = pc[a] * beta;
            let fa = vq[a] / sq;
            for ((pab, &pb), &vb) in self.p[a * k..(a + 1) * k].iter_mut().zip(&pc).zip(&vq) {
                *pab = (*pab - f * pb) + fa * vb;
            }
            self.x[a] = (self.x[a] - f * xi) - fa * rq;
            self.p[a * k + i] = -fa;
            self.p[i * k + a] = -fa;
        }
        self.p[i * k + i] = 1.0 / sq;
        self.x[i] = rq / sq;
        for ((s_t, r_t), &v_t) in self.s.iter_mut().zip(self.r.iter_mut()).zip(&vi) {
            *s_t += beta * v_t * v_t;
            *r_t += xi * beta * v_t;
        }
        // u takes q's pruned position, with v'_u = −P[:,u] / P[u,u], s'_u = 1 / P[u,u],
        // r'_u = x_u / P[u,u].
        self.s[j] = beta;
        self.r[j] = xi * beta;
        self.floor[j] = PIVOT_REL * (self.g(u, u) + lam).abs();
        self.pruned[j] = u;
        // First pass over V: the removal of u, row by row, and the bordered addition's
        // γ_t = (G[q,t] − G[q,K'] v'_t) / s'_q accumulated from the rows just updated.
        let mut gamma: Vec<f64> = self.pruned.iter().map(|&t| self.g(q, t)).collect();
        for a in (0..k).filter(|&a| a != i) {
            let f = pc[a] * beta;
            let row = &mut self.v[a * m..(a + 1) * m];
            for (vat, &vit) in row.iter_mut().zip(&vi) {
                *vat -= f * vit;
            }
            row[j] = -f;
            let gqa = self.gram[q * self.d + self.kept[a]] as f64;
            for (ga, &vat) in gamma.iter_mut().zip(row.iter()) {
                *ga -= gqa * vat;
            }
        }
        for ga in gamma.iter_mut() {
            *ga /= sq;
        }
        // Second pass over V: the addition of q.
        for a in (0..k).filter(|&a| a != i) {
            let f = vq[a];
            for (vat, &gt) in self.v[a * m..(a + 1) * m].iter_mut().zip(&gamma) {
                *vat -= f * gt;
            }
        }
        for ((s_t, r_t), &g_t) in self.s.iter_mut().zip(self.r.iter_mut()).zip(&gamma) {
            *s_t -= sq * g_t * g_t;
            *r_t -= g_t * rq;
        }
        self.v[i * m..(i + 1) * m].copy_from_slice(&gamma);
        self.kept[i] = q;
        self.pos[q] = i;
        self.pos[u] = j;
        self.is_kept[u] = 0;
        self.is_kept[q] = 1;
    }

    /// The state in column order (see [`RefitSnapshot`]).
    pub fn snapshot(&self) -> RefitSnapshot {
        let (k, m) = (self.kept.len(), self.pruned.len());
        let mut kept = self.kept.clone();
        kept.sort_unstable();
        let mut pruned = self.pruned.clone();
        pruned.sort_unstable();
        let kp: Vec<usize> = kept.iter().map(|&c| self.pos[c]).collect();
        let qp: Vec<usize> = pruned.iter().map(|&c| self.pos[c]).collect();
        RefitSnapshot {
            p: kp
                .iter()
                .flat_map(|&a| kp.iter().map(move |&b| self.p[a * k + b]))
                .collect(),
            x: kp.iter().map(|&a| self.x[a]).collect(),
            v: kp
                .iter()
                .flat_map(|&a| qp.iter().map(move |&t| self.v[a * m + t]))
                .collect(),
            r: qp.iter().map(|&t| self.r[t]).collect(),
            s: qp.iter().map(|&t| self.s[t]).collect(),
            error: self.error,
            kept,
            pruned,
        }
    }

    /// The re-fitted kept weights `x` scattered to a dense row (0 where pruned).
    pub fn weights(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.d];
        for (&c, &v) in self.kept.iter().zip(&self.x) {
            out[c] = v;
        }
        out
    }
}
