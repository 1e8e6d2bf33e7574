//! Streaming safetensors shards: the header is planned from the shapes alone (built and
//! validated by the `safetensors` crate), then each tensor's values are generated and
//! written in chunks, so memory stays at one chunk whatever the model's size.

use crate::shapes::{Init, TensorPlan, INIT_STD};
use anyhow::{bail, Context, Result};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, Metadata, TensorInfo};
use serde_json::json;
use sparseswaps_benches::SplitMix;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Values generated and written per chunk (8 MiB of f32 at most).
const CHUNK: usize = 1 << 21;

/// The stored dtype of the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightDtype {
    /// bfloat16, as the real checkpoints.
    Bf16,
    /// IEEE half.
    F16,
    /// IEEE single.
    F32,
}

impl WeightDtype {
    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            WeightDtype::Bf16 | WeightDtype::F16 => 2,
            WeightDtype::F32 => 4,
        }
    }

    fn safetensors(self) -> Dtype {
        match self {
            WeightDtype::Bf16 => Dtype::BF16,
            WeightDtype::F16 => Dtype::F16,
            WeightDtype::F32 => Dtype::F32,
        }
    }

    /// `torch_dtype` of `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            WeightDtype::Bf16 => "bfloat16",
            WeightDtype::F16 => "float16",
            WeightDtype::F32 => "float32",
        }
    }
}

/// Splits tensors (kept in order) into shards as transformers' `save_pretrained` does:
/// a new shard starts when the next tensor would take the current one over `max_bytes`
/// (a tensor larger than that gets a shard of its own).
pub fn plan_shards(tensors: &[TensorPlan], dtype: WeightDtype, max_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = vec![];
    let mut size = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        let bytes = (t.numel() * dtype.size()) as u64;
        match shards.last_mut() {
            Some(cur) if size + bytes <= max_bytes => {
                cur.push(i);
                size += bytes;
            }
            _ => {
                shards.push(vec![i]);
                size = bytes;
            }
        }
    }
    shards
}

/// File name of shard `i` (0-based) of `n`: `model.safetensors` when alone.
pub fn shard_name(i: usize, n: usize) -> String {
    if n == 1 {
        "model.safetensors".into()
    } else {
        format!("model-{:05}-of-{n:05}.safetensors", i + 1)
    }
}

/// The header bytes of a shard: length prefix, JSON, space padding to 8 bytes.
fn header(tensors: &[&TensorPlan], dtype: WeightDtype) -> Result<Vec<u8>> {
    let mut offset = 0;
    let mut infos = Vec::with_capacity(tensors.len());
    for t in tensors {
        let end = offset + t.numel() * dtype.size();
        let info = TensorInfo {
            dtype: dtype.safetensors(),
            shape: t.dims.clone(),
            data_offsets: (offset, end),
        };
        infos.push((t.name.clone(), info));
        offset = end;
    }
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let meta = Metadata::new(Some(meta), infos).context("safetensors header")?;
    let mut json = serde_json::to_vec(&meta)?;
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    Ok(out)
}

/// The generator of a tensor: seeded from the run's seed and the tensor's name, so that
/// values do not depend on the sharding or on how many blocks precede it.
fn tensor_rng(seed: u64, name: &str) -> SplitMix {
    // FNV-1a of the name.
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    let mut mix = SplitMix::new(seed ^ h);
    SplitMix::new(mix.next_u64())
}

/// A normal-ish value with standard deviation `std`: the sum of four 16-bit uniforms
/// (Irwin-Hall), one generator call per value; the tails are bounded (|z| < 3.5), which
/// memory and time measurements do not see.
#[inline]
fn normalish(rng: &mut SplitMix, std: f32) -> f32 {
    let r = rng.next_u64();
    let s = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
    // Mean 2 * 65535, variance 4 * (65536^2 - 1) / 12.
    let z = (s as f32 - 131_070.0) * (3f32.sqrt() / 65_536.0);
    z * std
}

/// Fills `out` with values of `f` encoded as `dtype` (little-endian); the dtype is matched
/// once per chunk so that the per-value loop stays tight.
fn fill(out: &mut [u8], dtype: WeightDtype, mut f: impl FnMut() -> f32) {
    match dtype {
        WeightDtype::Bf16 => out
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&bf16::from_f32(f()).to_le_bytes())),
        WeightDtype::F16 => out
            .chunks_exact_mut(2)
            .for_each(|c| c.copy_from_slice(&f16::from_f32(f()).to_le_bytes())),
        WeightDtype::F32 => out
            .chunks_exact_mut(4)
            .for_each(|c| c.copy_from_slice(&f().to_le_bytes())),
    }
}

/// Streams one tensor's values.
fn write_tensor(w: &mut impl Write, t: &TensorPlan, dtype: WeightDtype, seed: u64) -> Result<()> {
    let mut rng = tensor_rng(seed, &t.name);
    let mut left = t.numel();
    let mut buf = vec![0u8; CHUNK.min(left) * dtype.size()];
    while left > 0 {
        let k = CHUNK.min(left);
        let out = &mut buf[..k * dtype.size()];
        match t.init {
            Init::Normal => fill(out, dtype, || normalish(&mut rng, INIT_STD)),
            Init::Ones => fill(out, dtype, || 1.0),
        }
        w.write_all(out)?;
        left -= k;
    }
    Ok(())
}

/// Writes every shard of `shards` under `dir`, then the index when there are several.
/// Returns the bytes written.
pub fn write_shards(
    dir: &Path,
    tensors: &[TensorPlan],
    shards: &[Vec<usize>],
    dtype: WeightDtype,
    seed: u64,
    mut progress: impl FnMut(&str, u64),
) -> Result<u64> {
    let n = shards.len();
    let mut weight_map = serde_json::Map::new();
    let mut total = 0u64;
    let mut written = 0u64;
    for (i, shard) in shards.iter().enumerate() {
        let name = shard_name(i, n);
        let path = dir.join(&name);
        let members: Vec<&TensorPlan> = shard.iter().map(|&j| &tensors[j]).collect();
        let head = header(&members, dtype)?;
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let ctx = || format!("cannot write {}", path.display());
        w.write_all(&head).with_context(ctx)?;
        let mut bytes = head.len() as u64;
        for t in &members {
            write_tensor(&mut w, t, dtype, seed).with_context(ctx)?;
            let b = (t.numel() * dtype.size()) as u64;
            bytes += b;
            total += b;
            weight_map.insert(t.name.clone(), json!(name));
        }
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(ctx)?;
        file.sync_all().with_context(ctx)?;
        let len = file.metadata().with_context(ctx)?.len();
        if len != bytes {
            bail!("{}: wrote {len} bytes, expected {bytes}", path.display());
        }
        written += bytes;
        progress(&name, bytes);
    }
    if n > 1 {
        let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        let path = dir.join("model.safetensors.index.json");
        let text = serde_json::to_string_pretty(&index)?;
        std::fs::write(&path, &text).with_context(|| format!("cannot write {}", path.display()))?;
        written += text.len() as u64;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(sizes: &[usize]) -> Vec<TensorPlan> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &s)| TensorPlan {
                name: format!("t{i}"),
                dims: vec![s],
                init: Init::Normal,
            })
            .collect()
    }

    #[test]
    fn shards_split_like_transformers() {
        let t = plan(&[4, 4, 4, 10, 1]);
        // 2 bytes a value: 8, 8, 8, 20, 2 bytes against 16 per shard.
        assert_eq!(
            plan_shards(&t, WeightDtype::Bf16, 16),
            vec![vec![0, 1], vec![2], vec![3], vec![4]]
        );
        assert_eq!(
            plan_shards(&t, WeightDtype::Bf16, 1 << 30),
            vec![vec![0, 1, 2, 3, 4]]
        );
        assert_eq!(shard_name(0, 1), "model.safetensors");
        assert_eq!(shard_name(1, 12), "model-00002-of-00012.safetensors");
    }

    #[test]
    fn values_have_the_init_scale() {
        let mut rng = tensor_rng(7, "w");
        let n = 200_000;
        let v: Vec<f32> = (0..n).map(|_| normalish(&mut rng, INIT_STD)).collect();
        let mean = v.iter().sum::<f32>() / n as f32;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n as f32;
        assert!(mean.abs() < 2e-4, "mean {mean}");
        assert!((var.sqrt() - INIT_STD).abs() < 2e-4, "std {}", var.sqrt());
    }

    #[test]
    fn header_is_padded_and_parses() {
        let t = plan(&[3, 5]);
        let refs: Vec<&TensorPlan> = t.iter().collect();
        let h = header(&refs, WeightDtype::F16).expect("header");
        assert_eq!(h.len() % 8, 0);
        let mut data = h.clone();
        data.extend(vec![0u8; 16]);
        let st = safetensors::SafeTensors::deserialize(&data).expect("parses");
        assert_eq!(st.tensor("t1").expect("t1").shape(), &[5]);
    }
}
