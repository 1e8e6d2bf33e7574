//! Mask from scores: per-row top-`k`, or top-`N` in every group of `M`.
//!
//! Shared by every score-based warm start (magnitude, Wanda, plugins written in Rust).

use crate::error::{CoreError, Result};
use crate::mask::Mask;
use crate::pattern::Pattern;
use rayon::prelude::*;
use std::cmp::Ordering;

/// Higher score first; between equal scores the lower column index wins.
fn order(scores: &[f32]) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    move |&i, &j| scores[j].total_cmp(&scores[i]).then(i.cmp(&j))
}

/// Sets `out[j] = 1` for the `k` best-scored columns of `scores`, 0 elsewhere.
fn top_k_into(scores: &[f32], k: usize, idx: &mut Vec<usize>, out: &mut [u8]) {
    out.iter_mut().for_each(|v| *v = 0);
    if k == 0 {
        return;
    }
    idx.clear();
    idx.extend(0..scores.len());
    if k < scores.len() {
        idx.select_nth_unstable_by(k - 1, order(scores));
    }
    for &j in &idx[..k] {
        out[j] = 1;
    }
}

/// Builds a mask keeping, in every row of `scores` (`rows x cols`, row-major), the
/// highest-scored weights allowed by `pattern`. Ties: the lower column index is kept.
pub fn mask_from_scores(
    scores: &[f32],
    rows: usize,
    cols: usize,
    pattern: &Pattern,
) -> Result<Mask> {
    pattern.check_width(cols)?;
    if scores.len() != rows * cols {
        return Err(CoreError::Shape(format!(
            "scores have {} values, expected [{rows}, {cols}]",
            scores.len()
        )));
    }
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(CoreError::NonFinite {
            what: "scores".into(),
            index: i,
            value: f64::NAN,
        });
    }
    let mut mask = Mask::zeros(rows, cols);
    let k = pattern.kept_per_row(cols);
    mask.as_mut_slice()
        .par_chunks_mut(cols)
        .zip(scores.par_chunks(cols))
        .for_each_init(Vec::new, |idx, (out, s)| match pattern.group() {
            None => top_k_into(s, k, idx, out),
            Some((n, m)) => {
                for (o, sg) in out.chunks_mut(m).zip(s.chunks(m)) {
                    top_k_into(sg, n, idx, o);
                }
            }
        });
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_prefer_lower_index() {
        let p = Pattern::unstructured(0.5).unwrap();
        let m = mask_from_scores(&[1.0, 2.0, 2.0, 2.0], 1, 4, &p).unwrap();
        assert_eq!(m.as_slice(), &[0, 1, 1, 0]);
        let nm = Pattern::n_m(1, 2).unwrap();
        let m = mask_from_scores(&[3.0, 3.0, 1.0, 5.0], 1, 4, &nm).unwrap();
        assert_eq!(m.as_slice(), &[1, 0, 0, 1]);
        m.validate(&nm).unwrap();
    }
}
