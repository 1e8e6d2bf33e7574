//! Sharded safetensors checkpoints written as their tensors arrive, in the layout
//! transformers reads: `model-0000i-of-0000N.safetensors` and
//! `model.safetensors.index.json`, or one `model.safetensors` when everything fits.
//!
//! [`ShardPlan`] decides everything from the ordered list of tensors (name, dtype,
//! shape) and the shard size: which file each tensor goes to, at which offset, and each
//! file's header. [`ShardWriter`] then takes the tensors one at a time in that order and
//! writes each straight to its place, so memory holds one tensor, and publishes each
//! shard (sync, rename) as soon as its last tensor is in.

mod plan;
mod writer;

pub use plan::{
    PlannedTensor, ShardLayout, ShardPlan, DEFAULT_SHARD_SIZE, INDEX_FILE, SINGLE_FILE,
};
pub use writer::{partial_name, ShardWriter};

#[cfg(test)]
mod tests;
