//! A GGUF file as a [`WeightSource`]: tensors found by their Hugging Face names, read
//! with positioned reads and dequantized one at a time when asked (Q and K un-permuted
//! back to HF layout).

use super::{layout, quant};
use crate::config::LlamaConfig;
use crate::error::{io_err, Result};
use crate::source::WeightSource;
use candle_core::quantized::gguf_file::Content;
use candle_core::Tensor;
use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The tensors of a GGUF file, by HF name.
pub(super) struct GgufSource {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) len: u64,
    pub(super) ct: Content,
    pub(super) config: LlamaConfig,
    pub(super) permuted: bool,
    /// HF name → GGUF name.
    pub(super) names: HashMap<String, String>,
}

impl std::fmt::Debug for GgufSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufSource")
            .field("path", &self.path)
            .field("tensors", &self.names.len())
            .finish()
    }
}

/// `Read + Seek` over a shared file through positioned reads: candle's tensor reader
/// wants a cursor, and a source read through `&self` has no file position to move.
struct At<'a> {
    file: &'a File,
    pos: u64,
    len: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for At<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start")
        })?;
        Ok(self.pos)
    }
}

impl GgufSource {
    /// Opens `path` for reading tensors after its header was read into `ct`.
    pub(super) fn new(
        path: &Path,
        ct: Content,
        config: LlamaConfig,
        permuted: bool,
    ) -> Result<GgufSource> {
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        let names = layout::hf_names(&ct, &config)
            .into_iter()
            .map(|(g, h)| (h, g))
            .collect();
        Ok(GgufSource {
            path: path.into(),
            file,
            len,
            ct,
            config,
            permuted,
            names,
        })
    }
}

impl WeightSource for GgufSource {
    fn root(&self) -> &Path {
        &self.path
    }

    fn names(&self) -> Vec<String> {
        self.names.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        let g = self.names.get(name)?;
        self.ct.tensor_infos.get(g).map(|i| i.shape.dims().to_vec())
    }

    fn read_f32(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(g) = self.names.get(name) else {
            return Ok(None);
        };
        if !self.ct.tensor_infos.contains_key(g) {
            return Ok(None);
        }
        let mut at = At {
            file: &self.file,
            pos: 0,
            len: self.len,
        };
        let mut t = quant::dequantize(&self.path, &self.ct, &mut at, g)?;
        if self.permuted && layout::is_permuted(g) {
            t = layout::unpermute_qk(&self.path, &self.config, g, &t)?;
        }
        // Gemma's norms are stored as `1 + w` by llama.cpp.
        let t = layout::norm_shift(&self.config, g, t)?;
        Ok(Some(t))
    }
}
