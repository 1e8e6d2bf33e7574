//! Test support shared by the sparseswaps crates' tests, benches and examples.
//!
//! **Dev-only**: `publish = false`, used only as a dev-dependency (and by the
//! unpublished benches). Nothing here is part of a shipped crate's API; it exists so that
//! no test includes another crate's files by `#[path]` and no test depends on `benches`.
//!
//! - [`skip()`]: the one way a test may decline to run. It records the skip (stderr and
//!   the file named by `SPARSESWAPS_SKIP_LOG`, which `.ci/run` counts) and, with `CI`
//!   set, fails the test instead where what is missing is something CI must have (the
//!   real-model assets, a C compiler); a missing GPU is a recorded skip everywhere.
//! - [`assets()`]: the real-model assets from `scripts/fetch-assets.sh`, which tells an
//!   unreachable registry (exit 3, a skip) from a missing package or version (exit 4, a
//!   failure).
//! - [`problems`]: seeded random engine problems (heavy-tailed Gram matrices, masks).
//! - [`synthetic`]: LLM-like synthetic layers (the benches re-export them).
//! - [`c_build`], [`ria_ref`]: building C plugins and programs with the system compiler,
//!   and the Rust reference of the RIA example plugin.
//! - `tiny` (feature `tiny-model`): a tiny random Llama written as HF and GGUF files.

#![warn(missing_docs)]

pub mod assets;
pub mod c_build;
pub mod dense;
pub mod layer_files;
pub mod problems;
pub mod ria_ref;
pub mod skip;
pub mod synthetic;
#[cfg(feature = "tiny-model")]
pub mod tiny;

pub use assets::{assets, Assets};
pub use skip::{in_ci, skip, Need};
