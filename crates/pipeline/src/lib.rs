//! # sparseswaps-pipeline
//!
//! Prunes a whole model from a TOML pipeline: load (Hugging Face directory or GGUF),
//! calibrate, prune block by block (warm start → exact 1-swap refinement → apply), hand
//! the pruned block's outputs to the next block, evaluate perplexity before and after,
//! and write the pruned model, the masks, a report and a plot. One layer alone goes the
//! same way ([`layer`]) through [`refine_layer`], the library side of `sparseswaps
//! refine-layer`; [`summary`] and [`compare`] turn reports into tables (the run's
//! closing summary, `sparseswaps compare`); [`tools`] holds what the other subcommands need, so that the
//! command-line tool depends on this crate only.
//!
//! Nothing here prints: progress goes through [`Event`]s to the caller.

#![warn(missing_docs)]

pub mod checkpoint;
pub mod compare;
pub mod compare_plot;
pub mod compute;
pub mod config;
pub mod error;
pub mod events;
pub mod layer;
pub mod memory;
pub mod plot;
pub mod refine_layer;
pub mod refit;
pub mod report;
pub mod run;
pub mod staging;
pub mod summary;
pub mod tools;
pub mod warm;

pub use config::PipelineConfig;
pub use error::{PipelineError, Result};
pub use events::{Event, Events};
pub use report::{LayerReport, PplReport, RunReport};
pub use run::{run, RunOptions};
pub use warm::WarmStart;
