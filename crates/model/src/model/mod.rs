//! The in-memory model: f32 weights, the decoder forward, and the block-level interface
//! the pruning pipeline drives.
//!
//! One job per module, each used only by the ones after it: `kinds` (the linear layers
//! and capture points of a block), `capture` (captured inputs), `store` ([`Model`] and
//! its weights by name), `ops` (tensor operations of the forward), `block` (one block's
//! forward with capture), `head` (embedding, final norm and `lm_head`, full forward).

mod block;
mod capture;
mod head;
mod kinds;
mod ops;
mod store;

pub use capture::{Activations, BlockCapture};
pub use kinds::{CapturePoint, LinearKind};
pub use store::{BlockWeights, Model, ModelSource, SourceDtype};
