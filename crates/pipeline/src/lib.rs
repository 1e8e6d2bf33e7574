//! # sparseswaps-pipeline
//!
//! Prunes a whole model from a TOML pipeline: load (Hugging Face directory or GGUF),
//! calibrate, prune block by block (warm start → exact 1-swap refinement → apply), hand
//! the pruned block's outputs to the next block, evaluate perplexity before and after,
//! and write the pruned model, the masks, a report and a plot.
//!
//! Nothing here prints: progress goes through [`Event`]s to the caller.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod config;
pub mod error;
pub mod plot;
pub mod refit;
pub mod report;
pub mod run;
pub mod warm;

pub use config::PipelineConfig;
pub use error::{PipelineError, Result};
pub use report::{LayerReport, PplReport, RunReport};
pub use run::{run, Event, Events, RunOptions};
pub use warm::WarmStart;
