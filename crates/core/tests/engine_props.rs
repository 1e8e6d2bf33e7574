//! Property tests of the exact 1-swap engine on random small problems.

use proptest::prelude::*;
use sparseswaps_core::{
    best_swaps_unstructured, refine, row_error, LayerProblem, Mask, Pattern, RefineOptions,
    RefineReport, RowState, Search, StopReason,
};
use sparseswaps_testkit::problems::{
    certificate_margin, problem, random_mask, wide_problem, Rng, RoundingScale,
};

/// A pattern for width `d_in`, chosen by `sel`.
fn pattern_for(sel: u8, d_in: usize) -> Pattern {
    match sel % 4 {
        0 => Pattern::unstructured(0.5).unwrap(),
        1 => Pattern::unstructured(0.7).unwrap(),
        2 if d_in % 4 == 0 => Pattern::n_m(2, 4).unwrap(),
        3 if d_in % 4 == 0 => Pattern::n_m(1, 4).unwrap(),
        _ => Pattern::unstructured(0.3).unwrap(),
    }
}

fn admissible(pattern: &Pattern, mask: &[u8]) -> Vec<(usize, usize)> {
    let d = mask.len();
    let mut out = Vec::new();
    for u in (0..d).filter(|&u| mask[u] == 1) {
        for q in (0..d).filter(|&q| mask[q] == 0) {
            let same_group = match pattern.group() {
                Some((_, m)) => u / m == q / m,
                None => true,
            };
            if same_group {
                out.push((u, q));
            }
        }
    }
    out
}

/// The stop certificate of row `r` at the engine's acceptance threshold: from a fresh
/// state of the final mask, no admissible pair has `Δ < −rel_tol · E`, up to the
/// rounding of the two evaluations of `Δ` (the engine's running one and this fresh one;
/// see [`certificate_margin`]), which is ~1e-13 of the pair's magnitudes, not of `E`.
fn check_certificate(
    p: &LayerProblem<'_>,
    pattern: &Pattern,
    mask: &Mask,
    r: usize,
    opts: &RefineOptions,
) -> Result<(), String> {
    let (w, g, d) = (p.row(r), p.gram(), p.d_in());
    let st = RowState::new(w, mask.row(r), g);
    let scale = RoundingScale::new(w, g);
    let tol = opts.rel_tol * st.error();
    for (u, q) in admissible(pattern, mask.row(r)) {
        let delta = st.delta(u, q);
        let margin = certificate_margin(d, opts.recompute_every, scale.pair(w, g, u, q));
        if delta < -tol - margin {
            return Err(format!(
                "row {r} stopped optimal but swap ({u},{q}) has Δ {delta:e} < -{tol:e} - {margin:e}"
            ));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Δ predicted by the state equals the change of the exactly recomputed error.
    #[test]
    fn predicted_delta_is_exact(seed in any::<u64>(), d in 8usize..32, sel in any::<u8>()) {
        let (w, g) = problem(1, d, 3 * d, seed);
        let pattern = pattern_for(sel, d);
        let mut rng = Rng::new(seed);
        let mut m = random_mask(1, d, pattern.group(), pattern.kept_per_row(d), &mut rng);
        let mut st = RowState::new(&w, &m, &g);
        for _ in 0..20 {
            let pairs = admissible(&pattern, &m);
            if pairs.is_empty() { break; }
            let (u, q) = pairs[rng.below(pairs.len())];
            let before = row_error(&w, &m, &g);
            let predicted = st.apply(&mut m, u, q);
            let after = row_error(&w, &m, &g);
            let scale = before.abs() + after.abs() + 1e-30;
            prop_assert!((predicted - (after - before)).abs() <= 1e-6 * scale,
                "predicted {predicted}, recomputed {}", after - before);
        }
    }

    /// Refinement never raises a row's error, keeps the pattern, and rows that stop as
    /// optimal have no admissible swap that lowers the error beyond the engine's own
    /// acceptance threshold (brute force over all pairs, see [`check_certificate`]).
    #[test]
    fn refinement_is_monotone_and_certified(
        seed in any::<u64>(), d in 8usize..29, d_out in 1usize..6, sel in any::<u8>(),
        cap in prop_oneof![Just(None), Just(Some(3u32)), Just(Some(100u32))],
        search in prop_oneof![Just(Search::Bounded), Just(Search::Exhaustive)],
    ) {
        let (w, g) = problem(d_out, d, 2 * d, seed);
        let pattern = pattern_for(sel, d);
        let mut rng = Rng::new(seed ^ 1);
        let data = random_mask(d_out, d, pattern.group(), pattern.kept_per_row(d), &mut rng);
        let mut mask = Mask::new(d_out, d, data).unwrap();
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        let opts = RefineOptions { max_swaps: cap, search, ..RefineOptions::default() };
        let rep = refine(&p, &pattern, &mut mask, &opts, &|_| {}).unwrap();
        prop_assert!(mask.validate(&pattern).is_ok());
        for (r, row) in rep.rows.iter().enumerate() {
            prop_assert!(row.final_error <= row.warm_error * (1.0 + 1e-12) + 1e-30,
                "row {r}: {} > {}", row.final_error, row.warm_error);
            let exact = row_error(p.row(r), mask.row(r), &g);
            prop_assert!((exact - row.final_error).abs() <= 1e-9 * (exact.abs() + 1e-30));
            if let Some(c) = cap { prop_assert!(row.swaps <= c); }
            if row.stop == StopReason::Optimal {
                if let Err(e) = check_certificate(&p, &pattern, &mask, r, &opts) {
                    prop_assert!(false, "{}", e);
                }
            }
        }
    }

    /// The batched f32 search picks, for every row, a pair whose exact Δ is the
    /// brute-force best Δ up to f32 rounding.
    #[test]
    fn batched_search_finds_the_best_pair(seed in any::<u64>(), d in 8usize..40, d_out in 1usize..20) {
        let (w, g) = problem(d_out, d, 2 * d, seed);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let mut rng = Rng::new(seed ^ 2);
        let data = random_mask(d_out, d, None, pattern.kept_per_row(d), &mut rng);
        let mask = Mask::new(d_out, d, data).unwrap();
        let states: Vec<RowState<'_>> =
            (0..d_out).map(|r| RowState::new(&w[r * d..(r + 1) * d], mask.row(r), &g)).collect();
        let picks = best_swaps_unstructured(&g, &states, &mask);
        for (r, st) in states.iter().enumerate() {
            let pairs = admissible(&pattern, mask.row(r));
            let best = pairs.iter().map(|&(u, q)| st.delta(u, q)).fold(f64::INFINITY, f64::min);
            let (u, q) = picks[r].expect("a pair exists");
            let got = st.delta(u, q);
            let scale: f64 = pairs.iter().map(|&(u, q)| st.a(u).abs() + st.b(q).abs()).fold(0.0, f64::max);
            prop_assert!(got <= best + 1e-5 * scale, "row {r}: picked Δ {got}, best {best}");
        }
    }
}

/// After 10⁴ random swaps with no recompute, the running `c` and `E` agree with a fresh
/// computation to within rounding.
///
/// Each swap adds two exact products to every `c_j`, each addition rounding by at most
/// `u · M_j` (`u = 2⁻⁵³`; `M_j = Σ_i |w_i G[j,i]|` bounds every partial sum, see
/// [`RoundingScale`]), and `E` gains the rounded `Δ` of each swap. Worst case these add
/// up linearly, `2n · u · M_j` after `n` swaps (2.2e-12); being independent roundings
/// of either sign they add like a random walk of standard deviation below
/// `√(2n) · u · M_j`. The bound asserted is four of those, `4 √(2n) · u` = 6.3e-14
/// relative, for `c` against `M_j` and for `E` against the summed magnitudes of its
/// terms (relative to `E` itself it can be larger where `E` is a small difference of
/// large terms); the measured drift is printed (a few 1e-15).
#[test]
fn drift_after_ten_thousand_swaps() {
    const N: usize = 10_000;
    let d = 64;
    let bound = 4.0 * (2.0 * N as f64).sqrt() * sparseswaps_testkit::problems::UNIT_ROUNDOFF;
    for seed in [42u64, 43, 44] {
        let (w, g) = problem(1, d, 256, seed);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let mut rng = Rng::new(seed ^ 7);
        let mut m = random_mask(1, d, None, pattern.kept_per_row(d), &mut rng);
        let mut st = RowState::new(&w, &m, &g);
        for _ in 0..N {
            let pairs = admissible(&pattern, &m);
            let (u, q) = pairs[rng.below(pairs.len())];
            st.apply(&mut m, u, q);
        }
        let fresh = RowState::new(&w, &m, &g);
        let scale = RoundingScale::new(&w, &g);
        let c_drift = (0..d)
            .map(|j| (st.c()[j] - fresh.c()[j]).abs() / scale.m[j])
            .fold(0.0, f64::max);
        // E = Σ_{j pruned} w_j c_j: its terms' magnitudes bound its rounding.
        let e_scale: f64 = (0..d)
            .filter(|&j| m[j] == 0)
            .map(|j| (w[j] as f64).abs() * scale.m[j])
            .sum();
        let e_drift = (st.error() - fresh.error()).abs() / e_scale;
        let exact = row_error(&w, &m, &g);
        let rel = (st.error() - exact).abs() / exact;
        println!(
            "seed {seed}: after 10^4 swaps, drift of c {c_drift:.2e} (of M), of E {e_drift:.2e} \
             (of its terms), {rel:.2e} relative to E; bound {bound:.2e}"
        );
        assert!(
            c_drift <= bound,
            "seed {seed}: c drift {c_drift:e} > {bound:e}"
        );
        assert!(
            e_drift <= bound,
            "seed {seed}: E drift {e_drift:e} > {bound:e}"
        );
    }
}

/// On tiny rows, the 1-swap optimum lies between the global optimum (all masks
/// enumerated) and the warm start; prints how far it is from the global one.
#[test]
fn one_swap_optimum_vs_global_on_tiny_rows() {
    let mut gaps = Vec::new();
    for seed in 0..40u64 {
        let d = 8 + (seed as usize % 5); // 8..=12
        let (w, g) = problem(1, d, 2 * d, 1000 + seed);
        let pattern = Pattern::unstructured(0.5).unwrap();
        let k = pattern.kept_per_row(d);
        let mut global = f64::INFINITY;
        for bits in 0u32..(1 << d) {
            if bits.count_ones() as usize != k {
                continue;
            }
            let m: Vec<u8> = (0..d).map(|j| ((bits >> j) & 1) as u8).collect();
            global = global.min(row_error(&w, &m, &g));
        }
        let mut rng = Rng::new(seed);
        let mut mask = Mask::new(1, d, random_mask(1, d, None, k, &mut rng)).unwrap();
        let p = LayerProblem::new(&w, 1, d, &g).unwrap();
        let opts = RefineOptions {
            max_swaps: None,
            ..RefineOptions::default()
        };
        let rep = refine(&p, &pattern, &mut mask, &opts, &|_| {}).unwrap();
        let (warm, fin) = (rep.rows[0].warm_error, rep.rows[0].final_error);
        assert!(
            fin >= global * (1.0 - 1e-9),
            "seed {seed}: below the global optimum"
        );
        assert!(
            fin <= warm * (1.0 + 1e-12),
            "seed {seed}: above the warm start"
        );
        gaps.push(if global > 0.0 {
            fin / global - 1.0
        } else {
            0.0
        });
    }
    gaps.sort_by(f64::total_cmp);
    let at_global = gaps.iter().filter(|&&x| x <= 1e-9).count();
    println!(
        "1-swap optimum vs global on {} tiny rows: {} at the global optimum, median gap {:.2}%, worst {:.2}%",
        gaps.len(),
        at_global,
        100.0 * gaps[gaps.len() / 2],
        100.0 * gaps[gaps.len() - 1]
    );
}

/// The same input gives bit-identical masks and errors with 1 and 2 threads.
#[test]
fn deterministic_across_thread_counts() {
    let (d_out, d) = (40, 48);
    let (w, g) = problem(d_out, d, 96, 5);
    let run = |threads: usize, pattern: Pattern| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let mut rng = Rng::new(9);
            let data = random_mask(d_out, d, pattern.group(), pattern.kept_per_row(d), &mut rng);
            let mut mask = Mask::new(d_out, d, data).unwrap();
            let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
            let rep = refine(&p, &pattern, &mut mask, &RefineOptions::default(), &|_| {}).unwrap();
            let errs: Vec<u64> = rep.rows.iter().map(|r| r.final_error.to_bits()).collect();
            (mask, errs, rep.final_error.to_bits())
        })
    };
    for pattern in [
        Pattern::unstructured(0.6).unwrap(),
        Pattern::n_m(2, 4).unwrap(),
    ] {
        assert_eq!(run(1, pattern), run(2, pattern), "pattern {pattern}");
    }
}

/// Runs both searches from the warm start `data` with the cap, and checks that they
/// take the same swaps: the same final masks, swap counts, stops and error bits, and,
/// with caps of 1..=12 swaps, the same mask after every swap (so every step took a pair
/// of the same `Δ`). Also checks the tally of which search decided each step. Returns
/// the bounded run's report.
fn compare_searches(
    p: &LayerProblem<'_>,
    pattern: &Pattern,
    data: &[u8],
    cap: Option<u32>,
) -> Result<RefineReport, TestCaseError> {
    let (d_out, d) = (p.d_out(), p.d_in());
    let run = |search: Search, cap: Option<u32>| {
        let mut mask = Mask::new(d_out, d, data.to_vec()).unwrap();
        let opts = RefineOptions {
            max_swaps: cap,
            search,
            ..RefineOptions::default()
        };
        let rep = refine(p, pattern, &mut mask, &opts, &|_| {}).unwrap();
        (mask, rep)
    };
    let (me, re) = run(Search::Exhaustive, cap);
    let (mb, rb) = run(Search::Bounded, cap);
    prop_assert_eq!(&me, &mb, "final masks differ");
    for (x, y) in re.rows.iter().zip(&rb.rows) {
        prop_assert_eq!(x.swaps, y.swaps);
        prop_assert_eq!(x.stop, y.stop);
        prop_assert_eq!(x.steps, y.steps);
        prop_assert_eq!(x.final_error.to_bits(), y.final_error.to_bits());
    }
    for s in 1..=re.rows.iter().map(|r| r.swaps).max().unwrap_or(0).min(12) {
        let (a, ra) = run(Search::Exhaustive, Some(s));
        let (b, rb) = run(Search::Bounded, Some(s));
        prop_assert_eq!(&a, &b, "masks differ after {} swaps", s);
        prop_assert_eq!(ra.final_error.to_bits(), rb.final_error.to_bits());
    }
    // Every step of an unstructured row is decided either by the bounded walk or by its
    // exhaustive fallback; the exhaustive search and N:M rows never use the bound.
    prop_assert_eq!((re.bounded_steps, re.bounded_fallback_steps), (0, 0));
    let steps: u64 = rb.rows.iter().map(|r| r.steps as u64).sum();
    if pattern.group().is_none() {
        prop_assert_eq!(rb.bounded_steps + rb.bounded_fallback_steps, steps);
        if d >= 16 {
            prop_assert!(
                rb.pairs_evaluated <= re.pairs_evaluated + 2 * rb.swaps + 2 * d_out as u64
            );
        }
    } else {
        prop_assert_eq!((rb.bounded_steps, rb.bounded_fallback_steps), (0, 0));
    }
    Ok(rb)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Bounded and exhaustive search take the same swaps (see [`compare_searches`]) for
    /// unstructured rows of any width, multiples of 4 or not, and N:M patterns. On these
    /// small rows the bound rarely pays and most steps fall back to the exhaustive pass;
    /// `bounded_walk_decides_and_agrees` covers the walk itself.
    #[test]
    fn bounded_equals_exhaustive(
        seed in any::<u64>(), d in 8usize..48, d_out in 1usize..8, sel in any::<u8>(),
        cap in prop_oneof![Just(None), Just(Some(1u32)), Just(Some(7u32))],
    ) {
        let (w, g) = problem(d_out, d, 2 * d, seed);
        let pattern = pattern_for(sel, d);
        let mut rng = Rng::new(seed ^ 3);
        let data = random_mask(d_out, d, pattern.group(), pattern.kept_per_row(d), &mut rng);
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        compare_searches(&p, &pattern, &data, cap)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// On unstructured rows whose width is not a multiple of 4 and whose Gram matrix is
    /// weakly correlated, the bounded walk itself decides steps (counted in the report),
    /// and the swaps are still exactly the exhaustive search's.
    #[test]
    fn bounded_walk_decides_and_agrees(
        seed in any::<u64>(), d4 in 16usize..40, odd in 1usize..4, d_out in 1usize..5,
        sparsity in prop_oneof![Just(0.5), Just(0.7), Just(0.3)],
        cap in prop_oneof![Just(None), Just(Some(40u32))],
    ) {
        let d = 4 * d4 + odd;
        let (w, g) = wide_problem(d_out, d, seed);
        let pattern = Pattern::unstructured(sparsity).unwrap();
        let mut rng = Rng::new(seed ^ 4);
        let data = random_mask(d_out, d, None, pattern.kept_per_row(d), &mut rng);
        let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
        let rb = compare_searches(&p, &pattern, &data, cap)?;
        prop_assert!(rb.bounded_steps > 0, "the bounded walk decided no step: {} fallbacks", rb.bounded_fallback_steps);
    }
}

/// Rows wider than one Gram tile (1024 columns): the batched search finds each row's
/// best pair, both searches take the same swaps to the same 1-swap optimum, the bounded
/// walk decides steps, and every row passes the certificate.
#[test]
fn wide_rows_cross_the_gram_tile() {
    let (d_out, d) = (3, 1100);
    let (w, g) = wide_problem(d_out, d, 11);
    let p = LayerProblem::new(&w, d_out, d, &g).unwrap();
    let pattern = Pattern::unstructured(0.5).unwrap();
    let data = random_mask(d_out, d, None, pattern.kept_per_row(d), &mut Rng::new(12));
    let warm = Mask::new(d_out, d, data.clone()).unwrap();
    let states: Vec<RowState<'_>> = (0..d_out)
        .map(|r| RowState::new(p.row(r), warm.row(r), &g))
        .collect();
    let picks = best_swaps_unstructured(&g, &states, &warm);
    for (r, st) in states.iter().enumerate() {
        let (mut best, mut arg) = (f64::INFINITY, (0, 0));
        for (u, q) in admissible(&pattern, warm.row(r)) {
            let delta = st.delta(u, q);
            if delta < best {
                (best, arg) = (delta, (u, q));
            }
        }
        assert_eq!(picks[r], Some(arg), "row {r}: batched pick vs brute force");
    }
    let mut reports = Vec::new();
    for search in [Search::Exhaustive, Search::Bounded] {
        let mut mask = warm.clone();
        let opts = RefineOptions {
            max_swaps: None,
            search,
            ..RefineOptions::default()
        };
        let rep = refine(&p, &pattern, &mut mask, &opts, &|_| {}).unwrap();
        for r in 0..d_out {
            assert_eq!(rep.rows[r].stop, StopReason::Optimal, "{search:?} row {r}");
            check_certificate(&p, &pattern, &mask, r, &opts).unwrap();
        }
        println!(
            "{search:?}: {} swaps, {} steps by the bounded walk, {} by its fallback",
            rep.swaps, rep.bounded_steps, rep.bounded_fallback_steps
        );
        reports.push((mask, rep));
    }
    let ((me, re), (mb, rb)) = (&reports[0], &reports[1]);
    assert_eq!(me, mb, "final masks differ");
    assert_eq!(re.final_error.to_bits(), rb.final_error.to_bits());
    assert!(re.swaps > 0);
    assert!(rb.bounded_steps > 0, "the bounded walk decided no step");
}

/// Row states built several at once in one tiled walk of `G` (and recomputed that way)
/// are bit-identical to a plain per-row computation in column order, at a width that is
/// not a multiple of the walk's tile.
#[test]
fn batched_row_states_are_bit_identical() {
    let (rows, d) = (5, 2500);
    let (w, g) = problem(rows, d, 48, 11);
    let pattern = Pattern::unstructured(0.5).unwrap();
    let mut rng = Rng::new(5);
    let mut m = random_mask(rows, d, None, pattern.kept_per_row(d), &mut rng);
    // Some exact zeros in the weights, which every path skips.
    let mut w = w;
    w[3] = 0.0;
    w[d + 17] = 0.0;
    let reference = |r: usize, m: &[u8]| {
        let wr = &w[r * d..(r + 1) * d];
        let (mut c, mut y) = (vec![0f64; d], vec![0f64; d]);
        for j in 0..d {
            let wj = wr[j] as f64;
            if wj == 0.0 {
                continue;
            }
            let acc = if m[j] == 0 { &mut c } else { &mut y };
            for i in 0..d {
                acc[i] += wj * g[j * d + i] as f64;
            }
        }
        let e: f64 = (0..d)
            .filter(|&j| m[j] == 0)
            .map(|j| wr[j] as f64 * c[j])
            .sum();
        let energy: f64 = (0..d).map(|j| wr[j] as f64 * (y[j] + c[j])).sum();
        (c, e, energy)
    };
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let ws: Vec<(&[f32], &[u8])> = (0..rows)
        .map(|r| (&w[r * d..(r + 1) * d], &m[r * d..(r + 1) * d]))
        .collect();
    let batch = RowState::new_batch(&ws, &g);
    for (r, st) in batch.iter().enumerate() {
        let (c, e, energy) = reference(r, &m[r * d..(r + 1) * d]);
        let single = RowState::new(&w[r * d..(r + 1) * d], &m[r * d..(r + 1) * d], &g);
        assert_eq!(bits(st.c()), bits(&c), "row {r}: c");
        assert_eq!(st.error().to_bits(), e.to_bits(), "row {r}: E");
        assert_eq!(st.energy().to_bits(), energy.to_bits(), "row {r}: energy");
        assert_eq!(bits(single.c()), bits(&c), "row {r}: c alone");
        assert_eq!(
            single.energy().to_bits(),
            energy.to_bits(),
            "row {r}: energy alone"
        );
    }
    // Swaps on every row, then one batched recompute against the per-row reference.
    let mut states = batch;
    for (r, st) in states.iter_mut().enumerate() {
        let mr = &mut m[r * d..(r + 1) * d];
        for _ in 0..20 {
            let pairs = admissible(&pattern, mr);
            let (u, q) = pairs[rng.below(pairs.len())];
            st.apply(mr, u, q);
        }
    }
    let mut pending: Vec<(&mut RowState<'_>, &[u8])> = states.iter_mut().zip(m.chunks(d)).collect();
    RowState::recompute_batch(&mut pending);
    for (r, st) in states.iter().enumerate() {
        let (c, e, _) = reference(r, &m[r * d..(r + 1) * d]);
        assert_eq!(bits(st.c()), bits(&c), "row {r}: recomputed c");
        assert_eq!(st.error().to_bits(), e.to_bits(), "row {r}: recomputed E");
    }
}
