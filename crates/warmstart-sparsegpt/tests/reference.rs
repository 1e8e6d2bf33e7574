//! The blocked, lazy, faer-based SparseGPT of the crate gives the mask (and weights) of a
//! straightforward reference written here: plain loops, no faer, one row at a time, and
//! the OBS update of each column applied at once to every later column (no lazy block
//! updates). Blocks only decide *when* an unstructured row chooses its pruned columns.

use sparseswaps_core::Pattern;
use sparseswaps_warmstart_sparsegpt::{sparsegpt, Options};

fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        })
        .collect()
}

/// A layer: weights `rows × d` and the Gram of `samples` random inputs with a few
/// outlier channels (and `dead` channels that are always zero).
fn layer(rows: usize, d: usize, samples: usize, dead: &[usize], seed: u64) -> (Vec<f32>, Vec<f32>) {
    let w: Vec<f32> = values(rows * d, seed).iter().map(|&v| v as f32).collect();
    let mut x = values(d * samples, seed + 1);
    for i in 0..d {
        let scale = if dead.contains(&i) {
            0.0
        } else if i % 7 == 3 {
            20.0
        } else {
            1.0
        };
        x[i * samples..(i + 1) * samples]
            .iter_mut()
            .for_each(|v| *v *= scale);
    }
    let mut g = vec![0.0f32; d * d];
    for i in 0..d {
        for j in 0..d {
            let xi = &x[i * samples..(i + 1) * samples];
            let xj = &x[j * samples..(j + 1) * samples];
            g[i * d + j] = xi.iter().zip(xj).map(|(a, b)| a * b).sum::<f64>() as f32;
        }
    }
    (w, g)
}

/// Lower Cholesky factor, row-major, by the textbook recurrence.
fn cholesky(a: &[f64], n: usize) -> Vec<f64> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let v = a[i * n + i] - s;
                assert!(v > 0.0, "reference Cholesky: not positive definite at {i}");
                l[i * n + i] = v.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    l
}

/// Inverse of a symmetric positive definite matrix: solve `L Lᵀ x = e_i` for each `i`.
fn inverse(a: &[f64], n: usize) -> Vec<f64> {
    let l = cholesky(a, n);
    let mut inv = vec![0.0; n * n];
    for col in 0..n {
        let mut y = vec![0.0; n];
        for i in 0..n {
            let e = if i == col { 1.0 } else { 0.0 };
            y[i] = (e - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
        }
        let mut x = vec![0.0; n];
        for i in (0..n).rev() {
            x[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
        }
        for i in 0..n {
            inv[i * n + col] = x[i];
        }
    }
    inv
}

/// `U` (row-major, upper, `Uᵀ U = H⁻¹`) and the dead inputs.
fn factor(gram: &[f32], d: usize, damping: f64) -> (Vec<f64>, Vec<bool>) {
    let dead: Vec<bool> = (0..d).map(|j| gram[j * d + j] == 0.0).collect();
    let mut h: Vec<f64> = gram.iter().map(|&v| v as f64).collect();
    for j in (0..d).filter(|&j| dead[j]) {
        h[j * d + j] = 1.0;
    }
    let damp = damping * (0..d).map(|j| h[j * d + j]).sum::<f64>() / d as f64;
    for j in 0..d {
        h[j * d + j] += damp;
    }
    let l = cholesky(&inverse(&h, d), d);
    let mut u = vec![0.0; d * d];
    for j in 0..d {
        for c in j..d {
            u[j * d + c] = l[c * d + j];
        }
    }
    (u, dead)
}

/// Marks the `count` columns of `cols` with the smallest `w² / U_jj²` (ties: the
/// higher column) by a full sort.
fn prune(
    w: &[f64],
    u: &[f64],
    d: usize,
    cols: std::ops::Range<usize>,
    count: usize,
    pruned: &mut [bool],
) {
    let mut s: Vec<(f64, usize)> = cols
        .map(|j| (w[j] * w[j] / (u[j * d + j] * u[j * d + j]), j))
        .collect();
    s.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(b.1.cmp(&a.1)));
    for &(_, j) in &s[..count] {
        pruned[j] = true;
    }
}

/// The reference: mask (1 = kept) and updated weights. `nm = Some((n, m))` or the
/// unstructured pattern with `kept` per row; `updates = false` skips every OBS update
/// (to show that the test cases depend on them).
fn reference(
    w: &[f32],
    gram: &[f32],
    d: usize,
    nm: Option<(usize, usize)>,
    kept: usize,
    opts: &Options,
    updates: bool,
) -> (Vec<u8>, Vec<f64>) {
    let (u, dead) = factor(gram, d, opts.damping);
    let bs = match nm {
        Some((_, m)) => (opts.blocksize / m).max(1) * m,
        None => opts.blocksize,
    };
    let total = d - kept;
    let through = |c: usize| (total as f64 * c as f64 / d as f64 + 0.5).floor() as usize;
    let (mut mask, mut out) = (Vec::new(), Vec::new());
    for row in w.chunks(d) {
        let mut w: Vec<f64> = (0..d)
            .map(|j| if dead[j] { 0.0 } else { row[j] as f64 })
            .collect();
        let mut pruned = vec![false; d];
        for j in 0..d {
            match nm {
                None if j % bs == 0 => {
                    let i2 = (j + bs).min(d);
                    prune(&w, &u, d, j..i2, through(i2) - through(j), &mut pruned);
                }
                Some((n, m)) if j % m == 0 => prune(&w, &u, d, j..j + m, m - n, &mut pruned),
                _ => {}
            }
            let q = if pruned[j] { 0.0 } else { w[j] };
            let e = (w[j] - q) / u[j * d + j];
            w[j] = q;
            if updates {
                for c in j + 1..d {
                    w[c] -= e * u[j * d + c];
                }
            }
        }
        mask.extend(pruned.iter().map(|&p| u8::from(!p)));
        out.extend(w);
    }
    (mask, out)
}

/// Compares the crate with the reference on one case; returns whether the mask without
/// updates differs (the case exercises the OBS updates).
fn check(
    rows: usize,
    d: usize,
    samples: usize,
    dead: &[usize],
    pattern: Pattern,
    opts: Options,
    seed: u64,
) -> bool {
    let (w, g) = layer(rows, d, samples, dead, seed);
    let got = sparsegpt(&w, rows, d, &g, &pattern, &opts).unwrap();
    let nm = pattern.group();
    let kept = pattern.kept_per_row(d);
    let (want, want_w) = reference(&w, &g, d, nm, kept, &opts, true);
    let case = format!(
        "{rows}x{d} {pattern} blocksize {} seed {seed}",
        opts.blocksize
    );
    assert_eq!(got.mask.as_slice(), &want[..], "mask differs: {case}");
    let scale = w.iter().fold(0.0f32, |a, v| a.max(v.abs())) as f64;
    for (i, (a, b)) in got.weights.iter().zip(&want_w).enumerate() {
        assert!(
            (*a as f64 - b).abs() <= 1e-5 * scale.max(b.abs()),
            "weight {i}: {a} vs {b}: {case}"
        );
    }
    // Exact counts: k per row, and N per group for N:M.
    for (r, row) in got.mask.as_slice().chunks(d).enumerate() {
        assert_eq!(
            row.iter().filter(|&&v| v == 1).count(),
            kept,
            "row {r}: {case}"
        );
        if let Some((n, m)) = nm {
            for grp in row.chunks(m) {
                assert_eq!(
                    grp.iter().filter(|&&v| v == 1).count(),
                    n,
                    "row {r}: {case}"
                );
            }
        }
        for (j, &v) in row.iter().enumerate() {
            if v == 0 {
                assert_eq!(
                    got.weights[r * d + j],
                    0.0,
                    "pruned weight ({r}, {j}) not zero"
                );
            }
        }
    }
    reference(&w, &g, d, nm, kept, &opts, false).0 != want
}

fn opts(blocksize: usize) -> Options {
    Options {
        blocksize,
        ..Options::default()
    }
}

#[test]
fn unstructured_masks_equal_the_reference() {
    let u = |s| Pattern::unstructured(s).unwrap();
    let mut sensitive = 0;
    // d not a multiple of the block; rank-deficient Gram (samples < d) with dead inputs;
    // one block wider than d; more rows than one parallel chunk; block size 1.
    sensitive += check(6, 50, 80, &[], u(0.5), opts(16), 1) as usize;
    sensitive += check(5, 37, 20, &[3, 30], u(0.6), opts(8), 2) as usize;
    sensitive += check(40, 64, 100, &[], u(0.5), opts(128), 3) as usize;
    sensitive += check(70, 45, 60, &[0], u(0.5), opts(7), 4) as usize;
    sensitive += check(9, 96, 150, &[], u(0.7), opts(32), 5) as usize;
    sensitive += check(3, 33, 50, &[], u(0.5), opts(1), 6) as usize;
    let strong = Options {
        blocksize: 10,
        damping: 0.5,
    };
    sensitive += check(4, 30, 40, &[], u(0.4), strong, 7) as usize;
    assert!(
        sensitive >= 4,
        "only {sensitive} cases depend on the OBS updates"
    );
}

#[test]
fn nm_masks_equal_the_reference() {
    let nm = |n, m| Pattern::n_m(n, m).unwrap();
    let mut sensitive = 0;
    sensitive += check(7, 48, 80, &[], nm(2, 4), opts(16), 11) as usize;
    // Block 10 is rounded down to 8 for 2:4 and up to 8 for 4:8 (block 3).
    sensitive += check(5, 48, 30, &[5], nm(2, 4), opts(10), 12) as usize;
    sensitive += check(40, 40, 100, &[], nm(2, 4), opts(128), 13) as usize;
    sensitive += check(6, 64, 90, &[], nm(4, 8), opts(24), 14) as usize;
    sensitive += check(8, 64, 40, &[9, 10], nm(4, 8), opts(128), 15) as usize;
    sensitive += check(4, 48, 60, &[], nm(4, 8), opts(3), 16) as usize;
    sensitive += check(5, 36, 50, &[], nm(1, 3), opts(16), 17) as usize;
    assert!(
        sensitive >= 4,
        "only {sensitive} cases depend on the OBS updates"
    );
}

#[test]
fn dense_pattern_keeps_everything_and_bad_inputs_fail() {
    let (w, g) = layer(3, 20, 30, &[], 21);
    let p = Pattern::unstructured(0.0).unwrap();
    let r = sparsegpt(&w, 3, 20, &g, &p, &Options::default()).unwrap();
    assert!(r.mask.as_slice().iter().all(|&v| v == 1));
    let mut bad = g.clone();
    bad[7] = f32::NAN;
    let e = sparsegpt(&w, 3, 20, &bad, &p, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("Gram matrix") && e.contains("index 7"), "{e}");
    let e = sparsegpt(
        &w,
        3,
        20,
        &g,
        &Pattern::n_m(2, 3).unwrap(),
        &Options::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("2:3") && e.contains("d_in = 20"), "{e}");
}
