//! A Rust re-implementation of the RIA example plugin (`plugins/examples/ria/ria.c`),
//! operation for operation in f64, used by tests to check the C plugin's masks.

/// RIA mask: `pattern` is `Err(k)` for `k` kept per row, `Ok((n, m))` for N:M.
pub fn ria_mask(
    w: &[f32],
    rows: usize,
    cols: usize,
    gram_diag: &[f32],
    alpha: f64,
    pattern: Result<(usize, usize), usize>,
) -> Vec<u8> {
    let mut col_sum = vec![0.0f64; cols];
    for i in 0..rows {
        for j in 0..cols {
            col_sum[j] += (w[i * cols + j] as f64).abs();
        }
    }
    let act: Vec<f64> = gram_diag
        .iter()
        .map(|&g| {
            let g = g as f64;
            (if g > 0.0 { g } else { 0.0 }).sqrt().powf(alpha)
        })
        .collect();
    let mut out = vec![0u8; rows * cols];
    for i in 0..rows {
        let wr = &w[i * cols..(i + 1) * cols];
        let row_sum: f64 = wr.iter().fold(0.0, |s, &x| s + (x as f64).abs());
        let score: Vec<f64> = (0..cols)
            .map(|j| {
                let a = (wr[j] as f64).abs();
                let rel = (if row_sum > 0.0 { a / row_sum } else { 0.0 })
                    + (if col_sum[j] > 0.0 {
                        a / col_sum[j]
                    } else {
                        0.0
                    });
                rel * act[j]
            })
            .collect();
        let keep = |range: std::ops::Range<usize>, n: usize, o: &mut [u8]| {
            let mut idx: Vec<usize> = range.clone().collect();
            idx.sort_by(|&a, &b| score[b].partial_cmp(&score[a]).unwrap().then(a.cmp(&b)));
            for &j in &idx[..n] {
                o[j] = 1;
            }
        };
        let o = &mut out[i * cols..(i + 1) * cols];
        match pattern {
            Err(k) => keep(0..cols, k, o),
            Ok((n, m)) => {
                for g in 0..cols / m {
                    keep(g * m..(g + 1) * m, n, o);
                }
            }
        }
    }
    out
}
