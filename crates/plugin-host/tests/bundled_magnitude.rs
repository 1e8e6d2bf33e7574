//! The bundled magnitude plugin, loaded as a shared library from the build output next to
//! this test binary (no flags, no variable), gives the masks of the rlib.

use sparseswaps_core::Pattern;
use sparseswaps_plugin_host::{DirSource, MaskInput, Registry, SearchPath};

fn weights(rows: usize, cols: usize) -> Vec<f32> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..rows * cols)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64 - 0.5) as f32
        })
        .collect()
}

#[test]
fn bundled_magnitude_plugin_equals_rlib() {
    let reg = Registry::discover(&SearchPath::new(&[]));
    let plugin = reg
        .get(sparseswaps_warmstart_magnitude::NAME)
        .unwrap_or_else(|e| panic!("{e}"));
    // Found through the bundled rule, as a shared library built by this test run.
    let bundled: Vec<_> = reg
        .search_path()
        .dirs()
        .iter()
        .filter(|d| d.source == DirSource::Bundled)
        .map(|d| d.path.clone())
        .collect();
    assert!(bundled
        .iter()
        .any(|d| plugin.path().parent() == Some(d.as_path())));
    assert_eq!(plugin.version(), env!("CARGO_PKG_VERSION"));
    assert_eq!(plugin.pattern_names(), "unstructured, N:M");
    let (rows, cols) = (16, 48);
    let w = weights(rows, cols);
    for pattern in [
        Pattern::unstructured(0.5).unwrap(),
        Pattern::unstructured(0.6).unwrap(),
        Pattern::unstructured(0.0).unwrap(),
        Pattern::n_m(2, 4).unwrap(),
        Pattern::n_m(3, 8).unwrap(),
    ] {
        let input = MaskInput {
            weights: &w,
            rows,
            cols,
            gram_diag: None,
            gram: None,
            options: None,
        };
        let got = plugin.compute_mask(&input, &pattern).unwrap();
        let want =
            sparseswaps_warmstart_magnitude::magnitude_mask(&w, rows, cols, &pattern).unwrap();
        assert_eq!(got, want, "pattern {pattern}");
    }
}
