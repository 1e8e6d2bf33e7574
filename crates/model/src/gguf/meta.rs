//! Typed access to GGUF metadata, and the one error constructor of the GGUF loader.

use crate::error::{ModelError, Result};
use candle_core::quantized::gguf_file::Value;
use std::collections::HashMap;
use std::path::Path;

/// A [`ModelError::Gguf`] naming `path`.
pub(super) fn gguf_err(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::Gguf {
        path: path.into(),
        reason: reason.into(),
    }
}

/// The metadata of one GGUF file, with the file's path for messages.
pub(super) struct Meta<'a> {
    pub(super) path: &'a Path,
    pub(super) md: &'a HashMap<String, Value>,
}

impl<'a> Meta<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.md.get(key)
    }
    pub(super) fn req(&self, key: &str) -> Result<&'a Value> {
        self.get(key).ok_or_else(|| ModelError::MissingKey {
            path: self.path.into(),
            key: key.into(),
        })
    }
    pub(super) fn num(&self, v: &Value, key: &str) -> Result<f64> {
        Ok(match v {
            Value::U8(x) => *x as f64,
            Value::I8(x) => *x as f64,
            Value::U16(x) => *x as f64,
            Value::I16(x) => *x as f64,
            Value::U32(x) => *x as f64,
            Value::I32(x) => *x as f64,
            Value::U64(x) => *x as f64,
            Value::I64(x) => *x as f64,
            Value::F32(x) => *x as f64,
            Value::F64(x) => *x,
            other => {
                return Err(gguf_err(
                    self.path,
                    format!("metadata '{key}' should be a number, is {other:?}"),
                ))
            }
        })
    }
    pub(super) fn usize(&self, key: &str) -> Result<usize> {
        let v = self.num(self.req(key)?, key)?;
        if v < 0.0 || v.fract() != 0.0 {
            return Err(gguf_err(
                self.path,
                format!("metadata '{key}' = {v} is not a count"),
            ));
        }
        Ok(v as usize)
    }
    pub(super) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        self.get(key).map(|v| self.num(v, key)).transpose()
    }
    pub(super) fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        Ok(self.opt_f64(key)?.map(|v| v as u32))
    }
    pub(super) fn opt_str(&self, key: &str) -> Option<&'a str> {
        self.get(key)
            .and_then(|v| v.to_string().ok())
            .map(|s| s.as_str())
    }
    pub(super) fn strings(&self, key: &str) -> Result<Vec<&'a str>> {
        let arr = self
            .req(key)?
            .to_vec()
            .map_err(|_| gguf_err(self.path, format!("metadata '{key}' is not an array")))?;
        arr.iter()
            .map(|v| {
                v.to_string().map(|s| s.as_str()).map_err(|_| {
                    gguf_err(
                        self.path,
                        format!("metadata '{key}' has a non-string element"),
                    )
                })
            })
            .collect()
    }
}
