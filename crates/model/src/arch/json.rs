//! Reading typed keys of a `config.json` object, each error naming the file and key.

use super::spec::RopeScaling;
use crate::error::{ModelError, Result};
use serde_json::{Map, Value};
use std::path::Path;

/// The value of `key`, `None` when absent or `null`.
pub(crate) fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(crate) fn req_usize(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<usize> {
    match get(obj, key) {
        None => Err(ModelError::MissingKey {
            path: path.into(),
            key: key.into(),
        }),
        Some(v) => v
            .as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| ModelError::Json {
                path: path.into(),
                reason: format!("key '{key}' must be a non-negative integer, got {v}"),
            }),
    }
}

pub(crate) fn opt_usize(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<Option<usize>> {
    match get(obj, key) {
        None => Ok(None),
        Some(_) => req_usize(path, obj, key).map(Some),
    }
}

pub(crate) fn opt_f64(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<Option<f64>> {
    match get(obj, key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| ModelError::Json {
            path: path.into(),
            reason: format!("key '{key}' must be a number, got {v}"),
        }),
    }
}

pub(crate) fn opt_bool(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match get(obj, key) {
        None => Ok(None),
        Some(v) => v.as_bool().map(Some).ok_or_else(|| ModelError::Json {
            path: path.into(),
            reason: format!("key '{key}' must be true or false, got {v}"),
        }),
    }
}

/// A number key whose config class has a default: absent gives `default`, `null` gives
/// `None` (Gemma's soft-capping keys).
pub(crate) fn f64_or_null(
    path: &Path,
    obj: &Map<String, Value>,
    key: &str,
    default: Option<f64>,
) -> Result<Option<f64>> {
    match obj.get(key) {
        None => Ok(default),
        Some(_) => opt_f64(path, obj, key),
    }
}

pub(crate) fn token_ids(path: &Path, obj: &Map<String, Value>, key: &str) -> Result<Vec<u32>> {
    let bad = |v: &Value| ModelError::Json {
        path: path.into(),
        reason: format!("key '{key}' must be a token id or a list of them, got {v}"),
    };
    match get(obj, key) {
        None => Ok(vec![]),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_u64().map(|i| i as u32).ok_or_else(|| bad(x)))
            .collect(),
        Some(v) => v.as_u64().map(|i| vec![i as u32]).ok_or_else(|| bad(v)),
    }
}

/// The activation key `key` (`hidden_act` or `hidden_activation`), `default` when
/// absent; names the supported values otherwise.
pub(crate) fn activation_name<'a>(
    path: &Path,
    obj: &'a Map<String, Value>,
    key: &str,
    default: &'a str,
    supported: &[&str],
) -> Result<&'a str> {
    let name = match get(obj, key) {
        None => default,
        Some(v) => v.as_str().ok_or_else(|| ModelError::Json {
            path: path.into(),
            reason: format!("key '{key}' must be a string, got {v}"),
        })?,
    };
    if supported.contains(&name) {
        Ok(name)
    } else {
        Err(ModelError::Unsupported {
            path: path.into(),
            what: format!("{key} '{name}' (supported: {})", supported.join(", ")),
        })
    }
}

/// Parses a rope scaling object (either form); `key` names it in errors.
pub(crate) fn parse_rope_scaling(
    path: &Path,
    obj: &Map<String, Value>,
    key: &str,
    max_pos: usize,
) -> Result<Option<RopeScaling>> {
    let kind = get(obj, "rope_type")
        .or_else(|| get(obj, "type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let factor = || -> Result<f64> {
        opt_f64(path, obj, "factor")?.ok_or_else(|| ModelError::MissingKey {
            path: path.into(),
            key: format!("{key}.factor"),
        })
    };
    Ok(match kind {
        "default" | "none" => None,
        "linear" => Some(RopeScaling::Linear { factor: factor()? }),
        "dynamic" => Some(RopeScaling::Dynamic { factor: factor()? }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: opt_f64(path, obj, "low_freq_factor")?.unwrap_or(1.0),
            high_freq_factor: opt_f64(path, obj, "high_freq_factor")?.unwrap_or(4.0),
            original_max_position_embeddings: opt_usize(
                path,
                obj,
                "original_max_position_embeddings",
            )?
            .unwrap_or(max_pos),
        }),
        other => {
            return Err(ModelError::Unsupported {
                path: path.into(),
                what: format!(
                    "rope type '{other}' in '{key}' (supported: default, linear, dynamic, llama3)"
                ),
            })
        }
    })
}
