//! The SparseGPT plugin, loaded by the plugin host as a shared library from the build
//! output next to this test binary, gives the masks of the rlib; it refuses requests
//! without the full Gram matrix and bad options, naming what is wrong.

use sparseswaps_core::Pattern;
use sparseswaps_plugin_host::{resolve, MaskInput, Plugin, PluginError, SearchPath};
use sparseswaps_warmstart_sparsegpt::{sparsegpt_mask, Options, NAME};

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

fn plugin() -> Plugin {
    let p = resolve(NAME, &SearchPath::new(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        p.path()
            .to_string_lossy()
            .contains("sparseswaps_warmstart_sparsegpt_plugin"),
        "{}",
        p.path().display()
    );
    p
}

/// Weights `rows × cols` and a full-rank Gram `X Xᵀ` of `2 cols` samples.
fn layer(rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>) {
    let w = values(rows * cols, 3);
    let n = 2 * cols;
    let x = values(cols * n, 5);
    let mut g = vec![0.0f32; cols * cols];
    for i in 0..cols {
        for j in 0..cols {
            g[i * cols + j] = (0..n).map(|k| x[i * n + k] * x[j * n + k]).sum();
        }
    }
    (w, g)
}

#[test]
fn bundled_sparsegpt_plugin_equals_rlib() {
    let plugin = plugin();
    let (rows, cols) = (12, 40);
    let (w, g) = layer(rows, cols);
    let diag: Vec<f32> = (0..cols).map(|j| g[j * cols + j]).collect();
    for (pattern, options) in [
        (Pattern::unstructured(0.5).unwrap(), None),
        (
            Pattern::unstructured(0.6).unwrap(),
            Some("blocksize=16,damping=0.05"),
        ),
        (Pattern::n_m(2, 4).unwrap(), None),
        (Pattern::n_m(4, 8).unwrap(), Some("blocksize=8")),
    ] {
        let opts = Options::parse(options.unwrap_or("")).unwrap();
        let want = sparsegpt_mask(&w, rows, cols, &g, &pattern, &opts).unwrap();
        let input = MaskInput {
            weights: &w,
            rows,
            cols,
            gram_diag: Some(&diag),
            gram: Some(&g),
            options,
        };
        assert_eq!(
            plugin.compute_mask(&input, &pattern).unwrap(),
            want,
            "{pattern}"
        );
    }
}

#[test]
fn missing_gram_and_bad_options_are_named() {
    let plugin = plugin();
    let (rows, cols) = (4, 16);
    let (w, g) = layer(rows, cols);
    let diag: Vec<f32> = (0..cols).map(|j| g[j * cols + j]).collect();
    let p = Pattern::unstructured(0.5).unwrap();
    let base = MaskInput {
        weights: &w,
        rows,
        cols,
        gram_diag: Some(&diag),
        gram: None,
        options: None,
    };
    // It declares the full Gram (`NEEDS_FULL_GRAM`): the host refuses before calling it.
    assert_eq!(
        plugin.needs_bits(),
        sparseswaps_plugin_abi::NEEDS_FULL_GRAM,
        "{}",
        plugin.needs_names()
    );
    for sent in [Some(&diag[..]), None] {
        let e = plugin
            .compute_mask(
                &MaskInput {
                    gram_diag: sent,
                    ..base
                },
                &p,
            )
            .unwrap_err();
        assert!(matches!(e, PluginError::MissingInput { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("plugin 'sparsegpt'")
                && e.contains("sparseswaps_warmstart_sparsegpt_plugin")
                && e.contains(
                    "needs the full Gram matrix X Xᵀ, which this caller does not provide"
                ),
            "{e}"
        );
    }
    for (opt, says) in [
        ("blocksize=abc", "blocksize = 'abc'"),
        ("damping=-0.1", "damping = -0.1"),
        ("alpha=1", "unknown key 'alpha'"),
    ] {
        let bad = MaskInput {
            gram: Some(&g),
            options: Some(opt),
            ..base
        };
        let e = plugin.compute_mask(&bad, &p).unwrap_err().to_string();
        assert!(e.contains("status 1") && e.contains(says), "{opt}: {e}");
    }
}
