//! `checkpoint/manifest.json`: the checkpoint's format, config, inputs and progress,
//! and the check that a checkpoint may be resumed.

use super::dir::fsync_dir;
use crate::error::{io_err as io, PipelineError, Result};
use crate::report::{InputChecksum, LayerReport, PplReport};
use serde::{Deserialize, Serialize};
use sparseswaps_tensor_io::write_atomic;
use std::path::{Path, PathBuf};

/// Version of the checkpoint layout; a checkpoint of another format is refused. Format 2:
/// block files hold masks only, the pruned weights are in the staged model's shards.
pub const FORMAT: u32 = 2;

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

/// The manifest's path inside a staging directory.
pub fn manifest_path(staging: &Path) -> PathBuf {
    staging.join("checkpoint").join("manifest.json")
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
