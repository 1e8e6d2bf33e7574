//! Checkpoints of a run, so that a run stopped at block 25 of 32 does not cost the first
//! 24.
//!
//! A run works in a staging directory beside its output, `.NAME.partial` (a stable name,
//! so a later `--resume` finds it), which is renamed to `NAME` only when every output is
//! written. Inside it, `checkpoint/` holds:
//!
//! - `manifest.json`: the checkpoint format, the sparseswaps version, the config (its
//!   canonical JSON form, defaults filled in), the sha256 of every input, how many blocks
//!   are finished, the report rows of their layers, the dense perplexity when it was
//!   evaluated, and the seconds spent so far;
//! - `block-NNNNN.safetensors` per finished block: for each target, `mask/NAME` (u8,
//!   1 = kept) and `weight/NAME` (the pruned weights, f32, exactly as the model holds
//!   them). The weights are stored rather than recomputed from the source and the mask
//!   so that a step that changes kept weights needs no change here;
//! - `hidden-NNNNN.safetensors`: the hidden states (f32, one tensor `h.I` per
//!   micro-batch) that the last finished block hands to the next. Only the latest is
//!   kept: the previous one is deleted once the manifest that no longer needs it is
//!   durable.
//!
//! Every file is written under a temporary name, fsynced and renamed, and the directory
//! is fsynced after the block files and again after the manifest, so that the manifest
//! never counts a block whose files are not on disk. `owner.pid` beside `checkpoint/`
//! names the process writing the staging directory, so that a second process does not
//! write into a live run.

use crate::error::{PipelineError, Result};
use crate::report::{InputChecksum, LayerReport, PplReport};
use serde::{Deserialize, Serialize};
use sparseswaps_model::{Device, Tensor};
use sparseswaps_tensor_io::{write_atomic, write_safetensors_atomic, OwnedTensor};
use std::path::{Path, PathBuf};

/// Version of the checkpoint layout; a checkpoint of another format is refused.
pub const FORMAT: u32 = 1;

/// `checkpoint/manifest.json`: everything a resumed run needs besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Checkpoint layout version ([`FORMAT`]).
    pub format: u32,
    /// sparseswaps version that wrote it.
    pub version: String,
    /// The config, canonical JSON form (every default filled in).
    pub config: serde_json::Value,
    /// sha256 of the model, calibration and evaluation inputs.
    pub inputs: Vec<InputChecksum>,
    /// Whether the run may replace an existing output directory (`--force`).
    pub force: bool,
    /// Blocks the pruning loop runs (up to the last block with a target).
    pub blocks: usize,
    /// Blocks finished: blocks `0..blocks_done` are in the checkpoint.
    pub blocks_done: usize,
    /// Report rows of the finished blocks' layers, in pruning order.
    pub layers: Vec<LayerReport>,
    /// Dense perplexity, when evaluated.
    pub dense_ppl: Option<PplReport>,
    /// Wall-clock seconds spent by the run (all its processes) up to this checkpoint.
    pub seconds: f64,
}

/// The staging directory of an output directory: `.NAME.partial` beside it.
pub fn staging_dir(out_dir: &Path) -> PathBuf {
    let parent = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = out_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    parent.join(format!(".{name}.partial"))
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> PipelineError + '_ {
    move |error| PipelineError::Io {
        path: path.into(),
        error,
    }
}

/// fsyncs a directory, so the renames inside it survive a power loss.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}

/// fsyncs every file and directory under `dir` (and `dir`), so that files written
/// without their own fsync (the model directory) are durable before the final rename.
pub fn fsync_tree(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        if p.is_dir() {
            fsync_tree(&p)?;
        } else {
            std::fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(io(&p))?;
        }
    }
    fsync_dir(dir)
}

/// The manifest's path inside a staging directory.
pub fn manifest_path(staging: &Path) -> PathBuf {
    staging.join("checkpoint").join("manifest.json")
}

fn block_path(staging: &Path, l: usize) -> PathBuf {
    staging
        .join("checkpoint")
        .join(format!("block-{l:05}.safetensors"))
}

fn hidden_path(staging: &Path, l: usize) -> PathBuf {
    staging
        .join("checkpoint")
        .join(format!("hidden-{l:05}.safetensors"))
}

/// Reads a manifest; `None` when there is none.
pub fn read_manifest(staging: &Path) -> Result<Option<Manifest>> {
    let p = manifest_path(staging);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&p)(e)),
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .and_then(|v| serde_json::from_value(exact_floats_in(v)))
        .map(Some)
        .map_err(|e| PipelineError::Checkpoint {
            path: p,
            reason: format!("not a checkpoint manifest ({e})"),
        })
}

/// Prefix of a float written as text in the manifest.
const F64: &str = "f64:";

/// Every float of `v` as a string `f64:<shortest round-trip decimal>`.
///
/// serde_json's default number parser may be one ulp off, and a resumed run must give
/// the same report rows (and compare the same config) as an uninterrupted one; Rust's
/// own `f64` parsing of the shortest representation is exact.
fn exact_floats_out(v: serde_json::Value) -> serde_json::Value {
    map_leaves(v, &|leaf| match leaf {
        serde_json::Value::Number(n) if n.is_f64() => {
            serde_json::Value::String(format!("{F64}{:?}", n.as_f64().unwrap_or(f64::NAN)))
        }
        other => other,
    })
}

/// The inverse of [`exact_floats_out`].
fn exact_floats_in(v: serde_json::Value) -> serde_json::Value {
    map_leaves(v, &|leaf| match leaf {
        serde_json::Value::String(s) => match s
            .strip_prefix(F64)
            .and_then(|x| x.parse::<f64>().ok())
            .and_then(serde_json::Number::from_f64)
        {
            Some(n) => serde_json::Value::Number(n),
            None => serde_json::Value::String(s),
        },
        other => other,
    })
}

/// Applies `f` to every leaf (neither array nor object) of `v`, keeping the structure.
fn map_leaves(
    v: serde_json::Value,
    f: &dyn Fn(serde_json::Value) -> serde_json::Value,
) -> serde_json::Value {
    use serde_json::Value;
    match v {
        Value::Array(a) => Value::Array(a.into_iter().map(|x| map_leaves(x, f)).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, x)| (k, map_leaves(x, f))).collect())
        }
        leaf => f(leaf),
    }
}

/// Writes the manifest atomically and fsyncs its directory.
pub fn write_manifest(staging: &Path, m: &Manifest) -> Result<()> {
    let p = manifest_path(staging);
    let json = serde_json::to_value(m)
        .and_then(|v| serde_json::to_string_pretty(&exact_floats_out(v)))
        .map_err(|e| PipelineError::Checkpoint {
            path: p.clone(),
            reason: e.to_string(),
        })?;
    write_atomic(&p, json.as_bytes())?;
    fsync_dir(&staging.join("checkpoint"))
}

/// The first leaf where two JSON values differ: `(dotted key, value in a, value in b)`.
pub fn first_difference(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                first_difference(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                )
            })
        }
        _ if a == b => None,
        _ => Some((path.to_string(), a.to_string(), b.to_string())),
    }
}

/// Refuses to resume from `m` unless it was written by this format and version for the
/// same config and the same inputs. The message names what differs.
pub fn check_resumable(
    m: &Manifest,
    staging: &Path,
    config: &serde_json::Value,
    inputs: Option<&[InputChecksum]>,
) -> Result<()> {
    let at = manifest_path(staging);
    let refuse = |reason: String| PipelineError::Resume(format!("{reason} ({})", at.display()));
    let version = env!("CARGO_PKG_VERSION");
    if m.format != FORMAT || m.version != version {
        return Err(refuse(format!(
            "the checkpoint was written by sparseswaps {} (checkpoint format {}), this is {version} (format {FORMAT})",
            m.version, m.format
        )));
    }
    if let Some((key, now, then)) = first_difference("", config, &m.config) {
        return Err(PipelineError::Resume(format!(
            "{key} differs from the checkpoint in {} ({now} now, {then} in the checkpoint)",
            at.display()
        )));
    }
    if let Some(inputs) = inputs {
        for i in inputs {
            match m.inputs.iter().find(|c| c.path == i.path) {
                Some(c) if c.sha256 == i.sha256 => {}
                Some(c) => {
                    return Err(PipelineError::Resume(format!(
                        "input {} changed since the checkpoint in {} (sha256 {} now, {} in the checkpoint)",
                        i.path,
                        at.display(),
                        &i.sha256[..16.min(i.sha256.len())],
                        &c.sha256[..16.min(c.sha256.len())]
                    )))
                }
                None => {
                    return Err(refuse(format!(
                        "input {} is not among the checkpoint's inputs",
                        i.path
                    )))
                }
            }
        }
    }
    if m.blocks_done > m.blocks {
        return Err(PipelineError::Checkpoint {
            path: at,
            reason: format!("blocks_done {} exceeds blocks {}", m.blocks_done, m.blocks),
        });
    }
    Ok(())
}

/// One finished block's targets: `(layer name, mask, pruned weights)`.
pub type BlockTargets = Vec<(String, OwnedTensor, OwnedTensor)>;

/// Writes block `l`'s masks and pruned weights (atomically).
pub fn write_block(staging: &Path, l: usize, targets: &BlockTargets) -> Result<()> {
    let mut tensors = Vec::with_capacity(2 * targets.len());
    for (name, mask, weight) in targets {
        tensors.push((format!("mask/{name}"), mask.clone()));
        tensors.push((format!("weight/{name}"), weight.clone()));
    }
    write_safetensors_atomic(&block_path(staging, l), &tensors, None)?;
    Ok(())
}

/// Reads block `l`'s masks and pruned weights (as [`write_block`] wrote them), the
/// pruned weights as row-major f32.
pub fn read_block(staging: &Path, l: usize) -> Result<Vec<(String, OwnedTensor, Vec<f32>)>> {
    let p = block_path(staging, l);
    let bytes = sparseswaps_tensor_io::read_file(&p)?;
    let st = sparseswaps_tensor_io::parse(&p, &bytes)?;
    let bad = |reason: String| PipelineError::Checkpoint {
        path: p.clone(),
        reason,
    };
    let mut names: Vec<String> = st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_prefix("mask/").map(str::to_string))
        .collect();
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let m = st
            .tensor(&format!("mask/{name}"))
            .map_err(|e| bad(format!("mask/{name}: {e}")))?;
        let w = st
            .tensor(&format!("weight/{name}"))
            .map_err(|e| bad(format!("weight/{name}: {e}")))?;
        if w.dtype() != safetensors::Dtype::F32 || w.shape() != m.shape() {
            return Err(bad(format!(
                "weight/{name}: {:?} {:?}, expected F32 {:?}",
                w.dtype(),
                w.shape(),
                m.shape()
            )));
        }
        let weights = w
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.push((
            name,
            OwnedTensor::u8(m.shape().to_vec(), m.data().to_vec()),
            weights,
        ));
    }
    Ok(out)
}

/// Writes the hidden states that block `l` hands to the next (atomically).
pub fn write_hidden(staging: &Path, l: usize, hidden: &[Tensor]) -> Result<()> {
    let p = hidden_path(staging, l);
    let mut tensors = Vec::with_capacity(hidden.len());
    for (i, h) in hidden.iter().enumerate() {
        let data = h
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| PipelineError::Checkpoint {
                path: p.clone(),
                reason: format!("hidden states of micro-batch {i}: {e}"),
            })?;
        tensors.push((
            format!("h.{i:05}"),
            OwnedTensor::f32(h.dims().to_vec(), &data),
        ));
    }
    write_safetensors_atomic(&p, &tensors, None)?;
    Ok(())
}

/// Reads the hidden states that block `l` handed to the next: `micro_batches` tensors.
pub fn read_hidden(staging: &Path, l: usize, micro_batches: usize) -> Result<Vec<Tensor>> {
    let p = hidden_path(staging, l);
    let bytes = sparseswaps_tensor_io::read_file(&p)?;
    let st = sparseswaps_tensor_io::parse(&p, &bytes)?;
    let bad = |reason: String| PipelineError::Checkpoint {
        path: p.clone(),
        reason,
    };
    (0..micro_batches)
        .map(|i| {
            let v = st
                .tensor(&format!("h.{i:05}"))
                .map_err(|e| bad(format!("h.{i:05}: {e}")))?;
            if v.dtype() != safetensors::Dtype::F32 || v.shape().len() != 3 {
                return Err(bad(format!(
                    "h.{i:05}: {:?} {:?}, expected F32 [batch, seq, hidden]",
                    v.dtype(),
                    v.shape()
                )));
            }
            let data: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            Tensor::from_vec(data, v.shape(), &Device::Cpu)
                .map_err(|e| bad(format!("h.{i:05}: {e}")))
        })
        .collect()
}

/// Deletes the hidden states of block `l` (superseded by a later block's).
pub fn remove_hidden(staging: &Path, l: usize) -> Result<()> {
    let p = hidden_path(staging, l);
    match std::fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&p)(e)),
        _ => Ok(()),
    }
}

/// Removes what a killed process may have left half-written in a staging directory:
/// temporaries (names starting with `.`) in it, in `checkpoint/` and in `layers/`, and
/// block files beyond `blocks_done` (written before the manifest that would count them).
pub fn clean_leftovers(staging: &Path, blocks_done: usize) -> Result<()> {
    for dir in [
        staging.to_path_buf(),
        staging.join("checkpoint"),
        staging.join("layers"),
    ] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd {
            let e = e.map_err(io(&dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let stale_block = name
                .strip_prefix("block-")
                .and_then(|n| n.strip_suffix(".safetensors"))
                .and_then(|n| n.parse::<usize>().ok())
                .is_some_and(|l| l >= blocks_done);
            if name.starts_with('.') || stale_block {
                let p = e.path();
                let r = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
                r.map_err(io(&p))?;
            }
        }
    }
    Ok(())
}

/// The process id recorded in `owner.pid`, when that process is still alive (Linux:
/// `/proc/PID` exists) and is not this one.
pub fn live_owner(staging: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(staging.join("owner.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()).then_some(pid)
}

/// Records this process as the staging directory's writer.
pub fn claim(staging: &Path) -> Result<()> {
    write_atomic(
        &staging.join("owner.pid"),
        std::process::id().to_string().as_bytes(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_survive_the_manifest_exactly() {
        // Values whose shortest decimal serde_json's fast parser may read one ulp off.
        let xs = [
            0.47773322414506747,
            24417.863977497258,
            0.1 + 0.2,
            1e-300,
            std::f64::consts::PI,
        ];
        let v = serde_json::json!({"a": xs, "b": {"c": 3, "d": "f64 is text"}});
        let text = serde_json::to_string(&exact_floats_out(v.clone())).unwrap();
        let back = exact_floats_in(serde_json::from_str(&text).unwrap());
        assert_eq!(back, v);
        let got: Vec<f64> = serde_json::from_value(back["a"].clone()).unwrap();
        for (g, x) in got.iter().zip(xs) {
            assert_eq!(g.to_bits(), x.to_bits());
        }
    }

    #[test]
    fn first_difference_names_the_key() {
        let a = serde_json::json!({"calibration": {"samples": 64, "seed": 0}, "x": [1]});
        let b = serde_json::json!({"calibration": {"samples": 8, "seed": 0}, "x": [1]});
        assert_eq!(
            first_difference("", &a, &b),
            Some(("calibration.samples".into(), "64".into(), "8".into()))
        );
        assert_eq!(first_difference("", &a, &a), None);
    }
}
