//! The bundled Wanda plugin, loaded as a shared library from the build output next to
//! this test binary, gives the masks of the rlib; it reads the Gram diagonal, or the
//! diagonal of the full Gram matrix, and says so when it has neither.

use sparseswaps_core::Pattern;
use sparseswaps_plugin_host::{resolve, MaskInput, SearchPath};

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
        })
        .collect()
}

#[test]
fn bundled_wanda_plugin_equals_rlib() {
    let plugin = resolve(sparseswaps_warmstart_wanda::NAME, &SearchPath::new(&[]))
        .unwrap_or_else(|e| panic!("{e}"));
    let (rows, cols) = (12, 32);
    let w = values(rows * cols, 3);
    // Activation norms with outlier channels, so Wanda differs from magnitude.
    let diag: Vec<f32> = values(cols, 5)
        .iter()
        .enumerate()
        .map(|(j, v)| (v.abs() + 0.01) * if j % 7 == 2 { 1e4 } else { 1.0 })
        .collect();
    let mut gram = vec![0.0f32; cols * cols];
    for j in 0..cols {
        gram[j * cols + j] = diag[j];
    }
    for pattern in [
        Pattern::unstructured(0.5).unwrap(),
        Pattern::unstructured(0.75).unwrap(),
        Pattern::n_m(2, 4).unwrap(),
    ] {
        let want =
            sparseswaps_warmstart_wanda::wanda_mask(&w, rows, cols, &diag, &pattern).unwrap();
        let base = MaskInput {
            weights: &w,
            rows,
            cols,
            gram_diag: Some(&diag),
            gram: None,
            options: None,
        };
        assert_eq!(plugin.compute_mask(&base, &pattern).unwrap(), want);
        let full_only = MaskInput {
            gram_diag: None,
            gram: Some(&gram),
            ..base
        };
        assert_eq!(plugin.compute_mask(&full_only, &pattern).unwrap(), want);
    }
    let none = MaskInput {
        weights: &w,
        rows,
        cols,
        gram_diag: None,
        gram: None,
        options: None,
    };
    let e = plugin
        .compute_mask(&none, &Pattern::unstructured(0.5).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("plugin 'wanda'")
            && e.contains("libsparseswaps_warmstart_wanda")
            && e.contains("needs the Gram diagonal")
            && e.contains("which this caller does not provide"),
        "{e}"
    );
}
