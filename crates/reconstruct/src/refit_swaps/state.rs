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

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::DenseSolveCore;
use faer::{Accum, Mat, Par, Side};

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
        let kept = &self.kept;
        let gram = self.gram;
        let gkk = Mat::from_fn(k, k, |i, j| {
            gram[kept[j] * d + kept[i]] as f64 + if i == j { lam } else { 0.0 }
        });
        let inv = match gkk.llt(Side::Lower) {
            Ok(llt) => llt.inverse(),
            Err(_) => return false,
        };
        let p = Mat::from_fn(k, k, |i, j| 0.5 * (inv[(i, j)] + inv[(j, i)]));
        if (0..k).any(|i| !p[(i, i)].is_finite() || p[(i, i)] <= 0.0) {
            return false;
        }
        self.p = (0..k * k).map(|e| p[(e / k, e % k)]).collect();
        let bk: Vec<f64> = kept.iter().map(|&c| self.b[c]).collect();
        self.x = (0..k)
            .map(|i| (0..k).map(|j| self.p[i * k + j] * bk[j]).sum())
            .collect();
        // Vᵀ = G[Q,K] P, column-major (m × k), is V row-major (k × m).
        let gqk = Mat::from_fn(m, k, |t, a| gram[kept[a] * d + self.pruned[t]] as f64);
        let mut vt = Mat::<f64>::zeros(m, k);
        matmul(
            vt.as_mut(),
            Accum::Replace,
            gqk.as_ref(),
            p.as_ref(),
            1.0,
            Par::Seq,
        );
        self.v = vec![0.0; k * m];
        for a in 0..k {
            for t in 0..m {
                self.v[a * m + t] = vt[(t, a)];
            }
        }
        self.r = self.pruned.iter().map(|&q| self.b[q]).collect();
        self.s = self
            .pruned
            .iter()
            .map(|&q| gram[q * d + q] as f64 + lam)
            .collect();
        self.floor = self.s.iter().map(|&g| PIVOT_REL * g.abs()).collect();
        for a in 0..k {
            let (xa, row) = (self.x[a], &self.v[a * m..(a + 1) * m]);
            let grow = &gram[kept[a] * d..(kept[a] + 1) * d];
            for t in 0..m {
                let gat = grow[self.pruned[t]] as f64;
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
        let (k, m) = (self.kept.len(), self.pruned.len());
        let beta = 1.0 / self.p[i * k + i];
        let (xi, vt) = (self.x[i], self.v[i * m + t]);
        let den = self.s[t] + beta * vt * vt;
        if den.partial_cmp(&self.floor[t]) != Some(std::cmp::Ordering::Greater) {
            return f64::INFINITY;
        }
        // The same operations, in the same order, as the search's inner loop.
        let alpha = xi * beta;
        let num = self.r[t] + alpha * vt;
        xi * alpha - num * num / den
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
        // Removal of u: the quantities of K \ {u}.
        for a in (0..k).filter(|&a| a != i) {
            let f = pc[a] * beta;
            for (pab, &pb) in self.p[a * k..(a + 1) * k].iter_mut().zip(&pc) {
                *pab -= f * pb;
            }
            self.x[a] -= f * xi;
            for (vat, &vit) in self.v[a * m..(a + 1) * m].iter_mut().zip(&vi) {
                *vat -= f * vit;
            }
        }
        for ((s_t, r_t), &v_t) in self.s.iter_mut().zip(self.r.iter_mut()).zip(&vi) {
            *s_t += beta * v_t * v_t;
            *r_t += xi * beta * v_t;
        }
        // q's column of K \ {u}; then u takes q's pruned position, with
        // v'_u = −P[:,u] / P[u,u], s'_u = 1 / P[u,u], r'_u = x_u / P[u,u].
        let (sq, rq) = (self.s[j], self.r[j]);
        let mut vq = vec![0.0; k];
        for a in (0..k).filter(|&a| a != i) {
            vq[a] = self.v[a * m + j];
            self.v[a * m + j] = -pc[a] * beta;
        }
        self.s[j] = beta;
        self.r[j] = xi * beta;
        self.floor[j] = PIVOT_REL * (self.g(u, u) + lam).abs();
        self.pruned[j] = u;
        // Bordered addition of q at position i: γ_t = (G[q,t] − G[q,K'] v'_t) / s'_q.
        let mut gamma: Vec<f64> = self.pruned.iter().map(|&t| self.g(q, t)).collect();
        for a in (0..k).filter(|&a| a != i) {
            let gqa = self.g(q, self.kept[a]);
            for (ga, &vat) in gamma.iter_mut().zip(&self.v[a * m..(a + 1) * m]) {
                *ga -= gqa * vat;
            }
        }
        for ga in gamma.iter_mut() {
            *ga /= sq;
        }
        for a in (0..k).filter(|&a| a != i) {
            let f = vq[a];
            for (vat, &gt) in self.v[a * m..(a + 1) * m].iter_mut().zip(&gamma) {
                *vat -= f * gt;
            }
            let fa = vq[a] / sq;
            for (pab, &vb) in self.p[a * k..(a + 1) * k].iter_mut().zip(&vq) {
                *pab += fa * vb;
            }
            self.p[a * k + i] = -fa;
            self.p[i * k + a] = -fa;
            self.x[a] -= fa * rq;
        }
        self.p[i * k + i] = 1.0 / sq;
        self.x[i] = rq / sq;
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
