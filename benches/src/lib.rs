//! Synthetic inputs shaped like LLM layers, for the benchmarks: re-exported from the
//! shared test support (`sparseswaps_testkit::synthetic`), where the kernels' tests find
//! them too, so that no test depends on this crate.

#![warn(missing_docs)]

pub use sparseswaps_testkit::synthetic::{llm_like_layer, SplitMix, SyntheticLayer};
