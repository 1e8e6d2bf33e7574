//! The loaded model: its blocks read on demand, the decoder forward, and the block-level
//! interface the pruning pipeline drives.
//!
//! One job per module, each used only by the ones after it: `kinds` (the linear layers
//! and capture points of a block), `capture` (captured inputs), `slots` (blocks on disk
//! or resident, and the live-block count), `tables` (the embedding and head, read when used), `store` ([`Model`], its block
//! weights and its weights by name), `ops` (tensor operations of the forward), `block`
//! (one block's forward with capture), `head` (embedding, final norm and chunked
//! `lm_head`, full forward).

mod block;
mod capture;
mod head;
mod kinds;
mod ops;
mod slots;
mod store;
mod tables;

pub use capture::{Activations, BlockCapture};
pub use kinds::{CapturePoint, LinearKind};
pub use slots::{live_f32_blocks, peak_live_f32_blocks, reset_peak_live_f32_blocks, LiveBlock};
pub(crate) use slots::{BlockReader, Blocks};
pub use store::{BlockWeights, Model, ModelSource, SourceDtype};
pub(crate) use tables::{TableReader, Tables};
