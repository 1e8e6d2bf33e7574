//! The `FILE[:TENSOR]` argument syntax.

use std::path::{Path, PathBuf};

/// A `FILE[:TENSOR]` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    /// The file.
    pub path: PathBuf,
    /// The tensor name, if given.
    pub name: Option<String>,
}

impl TensorSpec {
    /// Parses `FILE[:TENSOR]`. The split is at the last `:` only when what precedes it is
    /// an existing file, so paths that contain `:` still work.
    pub fn parse(s: &str) -> TensorSpec {
        if let Some((file, name)) = s.rsplit_once(':') {
            if !name.is_empty() && Path::new(file).is_file() {
                return TensorSpec {
                    path: file.into(),
                    name: Some(name.to_string()),
                };
            }
        }
        TensorSpec {
            path: s.into(),
            name: None,
        }
    }
}

impl std::fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}:{n}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}
