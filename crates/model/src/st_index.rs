//! The tensors of a Hugging Face directory's safetensors shards as an index (name →
//! shard, dtype, shape, byte range), read one tensor at a time with positioned reads.
//!
//! Each shard is mapped only while its header is parsed (tensor-io's `parse` checks every
//! tensor's byte range against the file and diagnoses the common corruptions); the map
//! is then dropped, so a shard's data pages become resident only as its tensors are read
//! and are not kept mapped afterwards.

use crate::error::{io_err, CandleContext, ModelError, Result};
use crate::source::WeightSource;
use candle_core::{DType, Device, Tensor};
use safetensors::tensor::Dtype;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Where one tensor's bytes are.
#[derive(Debug)]
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Absolute offset of the data in the shard file.
    offset: u64,
    len: usize,
}

/// The tensors of a set of safetensors shards, by name.
#[derive(Debug)]
pub(crate) struct SafetensorsIndex {
    root: PathBuf,
    shards: Vec<(PathBuf, File)>,
    entries: HashMap<String, Entry>,
}

impl SafetensorsIndex {
    /// Parses the headers of `shards`; `root` (the directory) names the source in
    /// messages. Every tensor must be f32, f16 or bf16 (checked here, before any read).
    pub(crate) fn open(root: &Path, shards: &[PathBuf]) -> Result<SafetensorsIndex> {
        let mut index = SafetensorsIndex {
            root: root.into(),
            shards: Vec::with_capacity(shards.len()),
            entries: HashMap::new(),
        };
        for (i, shard) in shards.iter().enumerate() {
            let file = File::open(shard).map_err(io_err(shard))?;
            index.add_shard(i, shard, &file)?;
            index.shards.push((shard.clone(), file));
        }
        Ok(index)
    }

    fn add_shard(&mut self, i: usize, shard: &Path, file: &File) -> Result<()> {
        // SAFETY: read-only, dropped at the end of this function; only the header pages
        // are touched. A file changed underneath is the caller's race, as with any reader.
        let mmap = unsafe { memmap2::Mmap::map(file) }.map_err(io_err(shard))?;
        let st =
            sparseswaps_tensor_io::parse(shard, &mmap).map_err(|e| ModelError::Safetensors {
                path: shard.into(),
                reason: match e {
                    sparseswaps_tensor_io::TensorIoError::NotSafetensors { reason, .. } => reason,
                    other => other.to_string(),
                },
            })?;
        let base = mmap.as_ptr() as usize;
        for (name, view) in st.tensors() {
            // Buffers such as `rotary_emb.inv_freq` are recomputed, not loaded.
            if name.ends_with("rotary_emb.inv_freq") {
                continue;
            }
            sparseswaps_tensor_io::widen::require(
                shard,
                &name,
                view.dtype(),
                sparseswaps_tensor_io::widen::TO_F32,
            )
            .map_err(|e| bad_tensor(shard, &name, e.reason()))?;
            let data = view.data();
            let entry = Entry {
                shard: i,
                dtype: view.dtype(),
                shape: view.shape().to_vec(),
                offset: (data.as_ptr() as usize - base) as u64,
                len: data.len(),
            };
            self.entries.insert(name, entry);
        }
        Ok(())
    }

    /// How many linear weights (`*_proj.weight`) each dtype has.
    pub(crate) fn linear_dtypes(&self) -> Vec<(Dtype, usize)> {
        let mut counts: Vec<(Dtype, usize)> = Vec::new();
        for (name, e) in &self.entries {
            if name.ends_with(".weight") && name.contains("_proj") {
                match counts.iter_mut().find(|(d, _)| *d == e.dtype) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((e.dtype, 1)),
                }
            }
        }
        counts
    }

    /// The bytes of a tensor, read at its offset.
    fn bytes(&self, name: &str, e: &Entry) -> Result<Vec<u8>> {
        let (path, file) = &self.shards[e.shard];
        let mut buf = vec![0u8; e.len];
        file.read_exact_at(&mut buf, e.offset)
            .map_err(|err| bad_tensor(path, name, format!("reading its data: {err}")))?;
        Ok(buf)
    }
}

fn bad_tensor(path: &Path, name: &str, reason: impl std::fmt::Display) -> ModelError {
    ModelError::BadTensor {
        name: name.into(),
        reason: format!("in {} {reason}", path.display()),
    }
}

impl WeightSource for SafetensorsIndex {
    fn root(&self) -> &Path {
        &self.root
    }

    fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.entries.get(name).map(|e| e.shape.clone())
    }

    fn read_f32(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(e) = self.entries.get(name) else {
            return Ok(None);
        };
        let path = &self.shards[e.shard].0;
        let bytes = self.bytes(name, e)?;
        let data = sparseswaps_tensor_io::widen::to_f32(path, name, e.dtype, &bytes)
            .map_err(|err| bad_tensor(path, name, err.reason()))?;
        drop(bytes);
        Tensor::from_vec(data, e.shape.as_slice(), &Device::Cpu)
            .map(Some)
            .ctx(|| format!("{}: tensor '{name}'", path.display()))
    }

    fn read_stored(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(e) = self.entries.get(name) else {
            return Ok(None);
        };
        let dtype = match e.dtype {
            Dtype::BF16 => DType::BF16,
            Dtype::F16 => DType::F16,
            _ => return self.read_f32(name),
        };
        let path = &self.shards[e.shard].0;
        // Read straight into the tensor's own buffer: a byte buffer copied into one
        // would hold the embedding twice while it loads (1 GB for Llama-3.1-8B's).
        let (shard, file) = &self.shards[e.shard];
        let values = e.len / 2;
        let read = |buf: &mut [u8]| {
            file.read_exact_at(buf, e.offset)
                .map_err(|err| bad_tensor(shard, name, format!("reading its data: {err}")))
        };
        let t = if dtype == DType::BF16 {
            let mut v = vec![half::bf16::ZERO; values];
            read(bytemuck::cast_slice_mut(&mut v))?;
            Tensor::from_vec(v, e.shape.as_slice(), &Device::Cpu)
        } else {
            let mut v = vec![half::f16::ZERO; values];
            read(bytemuck::cast_slice_mut(&mut v))?;
            Tensor::from_vec(v, e.shape.as_slice(), &Device::Cpu)
        };
        t.map(Some)
            .ctx(|| format!("{}: tensor '{name}'", path.display()))
    }
}
