//! # sparseswaps-tensor-io
//!
//! Reads and writes the tensors that sparseswaps exchanges with other tools:
//!
//! - [`TensorSpec`]: the `FILE[:TENSOR]` syntax of the command line (the tensor name may
//!   be left out when the file holds exactly one tensor of the wanted rank);
//! - [`read_tensor_f32`] / [`read_tensor_f64`]: a named tensor of a safetensors file,
//!   widened from f16, bf16, f32 (or narrowed from f64) with its shape;
//! - [`write_safetensors_atomic`]: a safetensors file written under a temporary name,
//!   synced and renamed into place, so a crash never leaves a file that looks whole;
//! - [`shards`]: a sharded safetensors checkpoint (transformers' layout) planned from
//!   the list of its tensors and written one tensor at a time, each shard published as
//!   soon as it is complete;
//! - [`widen`]: a tensor's raw bytes widened to f32 or f64, for every crate that reads
//!   weights or Grams.
//!
//! Every error is one line that names the file and, where it applies, the tensor.
//!
//! ## Layout
//!
//! `error` (the error type), `spec` (`FILE[:TENSOR]`), `file` (reading, parsing and
//! diagnosing a safetensors file, picking a tensor), `widen` (dtype widening), `read`
//! (typed tensor reads), `write` (serialising and atomic writes), `shards` (sharded
//! checkpoints: `plan`, then `writer`). Every public item is
//! re-exported here.

#![warn(missing_docs)]

mod error;
mod file;
mod read;
pub mod shards;
mod spec;
pub mod widen;
mod write;

pub use error::{one_line, Result, TensorIoError};
pub use file::{parse, read_file};
pub use read::{
    read_tensor_f32, read_tensor_f64, read_tensor_u8, tensor_f64_from_bytes, tensor_u8_from_bytes,
    Loaded,
};
pub use shards::{PlannedTensor, ShardPlan, ShardWriter, DEFAULT_SHARD_SIZE};
pub use spec::TensorSpec;
pub use widen::WidenError;
pub use write::{check_output_dir, write_atomic, write_safetensors_atomic, OwnedTensor};

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn roundtrip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        write_safetensors_atomic(
            &p,
            &[
                (
                    "w".into(),
                    OwnedTensor::f32(vec![2, 2], &[1.0, 2.0, 3.0, 4.0]),
                ),
                ("v".into(), OwnedTensor::f32(vec![2], &[1.0, 2.0])),
            ],
            None,
        )
        .unwrap();
        let spec = TensorSpec::parse(p.to_str().unwrap());
        let t = read_tensor_f32(&spec, 2).unwrap();
        assert_eq!(t.name, "w");
        assert_eq!(t.data, vec![1.0, 2.0, 3.0, 4.0]);
        let spec = TensorSpec::parse(&format!("{}:nope", p.display()));
        let e = read_tensor_f32(&spec, 2).unwrap_err().to_string();
        assert!(
            e.contains("no tensor named 'nope'") && e.contains("w [2, 2]"),
            "{e}"
        );
        let e = read_tensor_f32(&TensorSpec::parse(&format!("{}:v", p.display())), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("rank 1"), "{e}");
        let bad = dir.path().join("bad.safetensors");
        fs::write(&bad, b"hello").unwrap();
        let e = read_tensor_f32(&TensorSpec::parse(bad.to_str().unwrap()), 2).unwrap_err();
        assert!(e.to_string().contains("not a valid safetensors"), "{e}");
        let e = write_atomic(&dir.path().join("no/such/x"), b"x").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
