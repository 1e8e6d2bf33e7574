//! Planning a sharded safetensors checkpoint: which tensor goes into which file, at which
//! offset, and every file's header, all decided from the ordered list of tensors alone.

use crate::error::{Result, TensorIoError};
use safetensors::tensor::{Dtype, TensorInfo};
use std::collections::BTreeMap;
use std::path::Path;

/// transformers' default `max_shard_size` ("5GB", decimal).
pub const DEFAULT_SHARD_SIZE: u64 = 5_000_000_000;

/// The index file transformers writes beside the shards of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The file of an unsharded checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";

/// One tensor to be written: name, dtype, shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTensor {
    /// Its name in the checkpoint.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape.
    pub shape: Vec<usize>,
}

impl PlannedTensor {
    /// A planned tensor.
    pub fn new(name: impl Into<String>, dtype: Dtype, shape: Vec<usize>) -> Self {
        PlannedTensor {
            name: name.into(),
            dtype,
            shape,
        }
    }

    /// Bytes of its data (`None` on overflow or a dtype of less than a byte that does
    /// not fill whole bytes).
    pub fn byte_len(&self) -> Option<u64> {
        let bits = self
            .shape
            .iter()
            .try_fold(self.dtype.bitsize() as u64, |a, &d| a.checked_mul(d as u64))?;
        (bits % 8 == 0).then_some(bits / 8)
    }
}

/// One shard of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardLayout {
    /// Its file name (`model-00001-of-00003.safetensors`, or `model.safetensors` when
    /// there is one shard).
    pub file_name: String,
    /// The indices (in plan order) of its tensors, in plan order.
    pub tensors: Vec<usize>,
    /// The first 8 + header bytes of the file: header length and JSON header.
    pub header: Vec<u8>,
    /// Total file size in bytes.
    pub file_size: u64,
}

/// Where every tensor of an ordered list goes: the shards, the offsets, the headers.
///
/// Sharding follows transformers (`huggingface_hub.split_torch_state_dict_into_shards`):
/// tensors are taken in order, and a tensor that would push the current shard over the
/// size starts a new one; one larger than the shard size gets a shard of its own. Unlike
/// huggingface_hub, which files such a tensor ahead of the shard being filled, the shard
/// being filled is closed first: tensors keep their order across shards, so a writer
/// taking them in order has one shard open at a time.
/// Inside a file the data are laid out as `safetensors::serialize` lays them out (by
/// dtype alignment, then name) and the header is the one it writes, with the metadata's
/// keys sorted: the same list gives the same bytes in every process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardPlan {
    tensors: Vec<PlannedTensor>,
    shards: Vec<ShardLayout>,
    /// For each tensor: its shard and the absolute file offset of its data.
    place: Vec<(usize, u64)>,
    total_size: u64,
}

impl ShardPlan {
    /// Plans `tensors` (in the order they will be written) into shards of at most
    /// `max_shard_size` bytes of data (a tensor larger than that alone in its shard),
    /// with `metadata` in every file's header (transformers wants `format = pt`).
    /// `path` names the checkpoint in errors (a duplicate name, an impossible shape).
    pub fn new(
        path: &Path,
        tensors: Vec<PlannedTensor>,
        max_shard_size: u64,
        metadata: &BTreeMap<String, String>,
    ) -> Result<ShardPlan> {
        let bad = |name: &str, reason: &str| TensorIoError::BadTensor {
            path: path.into(),
            name: name.into(),
            reason: reason.into(),
        };
        let mut sizes = Vec::with_capacity(tensors.len());
        let mut seen = std::collections::HashSet::new();
        for t in &tensors {
            if !seen.insert(t.name.as_str()) {
                return Err(bad(&t.name, "is planned twice"));
            }
            sizes.push(
                t.byte_len()
                    .ok_or_else(|| bad(&t.name, "has a shape too large to write"))?,
            );
        }
        let groups = split(&sizes, max_shard_size.max(1));
        let n = groups.len();
        let mut shards = Vec::with_capacity(n);
        let mut place = vec![(0, 0); tensors.len()];
        for (s, group) in groups.into_iter().enumerate() {
            let file_name = if n == 1 {
                SINGLE_FILE.to_string()
            } else {
                format!("model-{:05}-of-{n:05}.safetensors", s + 1)
            };
            let (header, offsets) =
                header(&tensors, &group, &sizes, metadata).map_err(|e| bad("(header)", &e))?;
            let data_start = header.len() as u64;
            let data: u64 = group.iter().map(|&i| sizes[i]).sum();
            for (&i, off) in group.iter().zip(offsets) {
                place[i] = (s, data_start + off);
            }
            shards.push(ShardLayout {
                file_name,
                tensors: group,
                file_size: data_start + data,
                header,
            });
        }
        Ok(ShardPlan {
            total_size: sizes.iter().sum(),
            tensors,
            shards,
            place,
        })
    }

    /// Names the file of a plan that fits one shard `file_name` (instead of
    /// `model.safetensors`): a single safetensors file written tensor by tensor. False,
    /// and nothing renamed, when the plan has several shards.
    pub fn name_single_file(&mut self, file_name: &str) -> bool {
        match self.shards.as_mut_slice() {
            [only] => {
                only.file_name = file_name.to_string();
                true
            }
            _ => false,
        }
    }

    /// The tensors, in the order they are written.
    pub fn tensors(&self) -> &[PlannedTensor] {
        &self.tensors
    }

    /// The shards, in order.
    pub fn shards(&self) -> &[ShardLayout] {
        &self.shards
    }

    /// Bytes of tensor data in all shards (the index's `metadata.total_size`).
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// Bytes of all shard files, headers included (plus the index, when sharded).
    pub fn disk_size(&self) -> u64 {
        self.shards.iter().map(|s| s.file_size).sum::<u64>()
            + if self.shards.len() > 1 {
                self.index_json().len() as u64
            } else {
                0
            }
    }

    /// The position in plan order of the tensor `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }

    /// The shard of tensor `i` (plan order) and the file offset of its data.
    pub fn place(&self, i: usize) -> Option<(usize, u64)> {
        self.place.get(i).copied()
    }

    /// `model.safetensors.index.json` as transformers writes it (`metadata.total_size`,
    /// `weight_map` by name, keys sorted, two-space indent, final newline).
    pub fn index_json(&self) -> Vec<u8> {
        let mut map = BTreeMap::new();
        for shard in &self.shards {
            for &i in &shard.tensors {
                map.insert(self.tensors[i].name.clone(), shard.file_name.clone());
            }
        }
        let v = serde_json::json!({
            "metadata": { "total_size": self.total_size },
            "weight_map": map,
        });
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        s.into_bytes()
    }
}

/// Groups tensor indices into shards as huggingface_hub does.
fn split(sizes: &[u64], max: u64) -> Vec<Vec<usize>> {
    let mut shards = Vec::new();
    let mut current = Vec::new();
    let mut current_size = 0u64;
    for (i, &size) in sizes.iter().enumerate() {
        if size > max {
            if !current.is_empty() {
                shards.push(std::mem::take(&mut current));
                current_size = 0;
            }
            shards.push(vec![i]);
            continue;
        }
        if current_size + size > max && !current.is_empty() {
            shards.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(i);
        current_size += size;
    }
    if !current.is_empty() || shards.is_empty() {
        shards.push(current);
    }
    shards
}

/// The header of a file holding tensors `group`: 8-byte length and JSON text, padded
/// with spaces to 8 bytes as `safetensors::serialize` pads it; and each tensor's data
/// offset (in `group` order) from the start of the data.
fn header(
    tensors: &[PlannedTensor],
    group: &[usize],
    sizes: &[u64],
    metadata: &BTreeMap<String, String>,
) -> std::result::Result<(Vec<u8>, Vec<u64>), String> {
    // safetensors' data order: descending dtype alignment, then name.
    let mut order: Vec<usize> = group.to_vec();
    order.sort_by(|&a, &b| {
        tensors[b]
            .dtype
            .cmp(&tensors[a].dtype)
            .then(tensors[a].name.cmp(&tensors[b].name))
    });
    let mut entries = Vec::with_capacity(order.len() + 1);
    if !metadata.is_empty() {
        let m = serde_json::to_string(metadata).map_err(|e| e.to_string())?;
        entries.push(format!("\"__metadata__\":{m}"));
    }
    let mut offset = 0u64;
    let mut offsets = std::collections::HashMap::new();
    for &i in &order {
        let t = &tensors[i];
        let end = offset + sizes[i];
        let info = TensorInfo {
            dtype: t.dtype,
            shape: t.shape.clone(),
            data_offsets: (offset as usize, end as usize),
        };
        let key = serde_json::to_string(&t.name).map_err(|e| e.to_string())?;
        let val = serde_json::to_string(&info).map_err(|e| e.to_string())?;
        entries.push(format!("{key}:{val}"));
        offsets.insert(i, offset);
        offset = end;
    }
    let mut text = format!("{{{}}}", entries.join(",")).into_bytes();
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len());
    out.extend((text.len() as u64).to_le_bytes());
    out.extend(text);
    let offsets = group.iter().map(|i| offsets[i]).collect();
    Ok((out, offsets))
}
