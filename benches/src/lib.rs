//! Synthetic inputs shaped like LLM layers, for the benchmarks: re-exported from the
//! shared test support (`sparseswaps_testkit::synthetic`), where the kernels' tests find
//! them too, so that no test depends on this crate.

#![warn(missing_docs)]

pub use sparseswaps_testkit::synthetic::{llm_like_layer, SplitMix, SyntheticLayer};

use sparseswaps_core::{Mask, Pattern};

/// The Wanda mask of `layer` under `pattern` (its Gram diagonal as the activation
/// norms): the warm start every engine benchmark starts from.
pub fn wanda_mask_of(layer: &SyntheticLayer, pattern: &Pattern) -> Mask {
    let d = layer.d_in;
    let diag: Vec<f32> = (0..d).map(|i| layer.gram[i * d + i]).collect();
    sparseswaps_warmstart_wanda::wanda_mask(&layer.weights, layer.d_out, d, &diag, pattern)
        .expect("a Wanda mask of a synthetic layer")
}
