//! The estimate of a run's peak memory, per phase, from the model's config and the
//! run's config alone (no weight is read), and the disk it will write.

use serde::{Deserialize, Serialize};
use sparseswaps_model::{CapturePoint, LinearKind, LlamaConfig};

/// Values of a tensor the writer encodes at a time (`sparseswaps-model`'s writer).
const WRITE_CHUNK_VALUES: u64 = 4 << 20;

/// Values of `lm_head` widened to f32 at once (`sparseswaps-model`'s head).
const HEAD_CHUNK_VALUES: u64 = 16 << 20;

/// One part of a phase's estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// What it is.
    pub what: String,
    /// Bytes.
    pub bytes: u64,
}

/// The estimate of one phase: what is resident at its peak.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseEstimate {
    /// `dense eval`, `prune loop`, `pruned eval` or `writing`.
    pub phase: String,
    /// Sum of the parts.
    pub bytes: u64,
    /// The parts, largest first.
    pub parts: Vec<Part>,
}

/// How the model's weights are held while the run works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Residency {
    /// Every weight loaded as f32 for the whole run.
    AllF32,
    /// Embedding and head in their stored dtype, one block at a time in f32.
    OneBlock,
}

/// The memory plan of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryPlan {
    /// How the weights are held.
    pub residency: Residency,
    /// The largest phase estimate.
    pub peak_bytes: u64,
    /// The phase it belongs to.
    pub peak_phase: String,
    /// Every phase.
    pub phases: Vec<PhaseEstimate>,
    /// Bytes the run writes: the model's shards, masks, the checkpoint's hidden states
    /// (and the saved Grams when asked for).
    pub disk_bytes: u64,
}

/// What the plan is computed from.
#[derive(Debug, Clone)]
pub struct PlanInputs<'a> {
    /// The model's config.
    pub model: &'a LlamaConfig,
    /// Bytes per value of the stored weights (2 for bf16/f16; 4 for f32 and GGUF,
    /// whose quantized types are dequantized).
    pub stored_bytes: u64,
    /// How the weights are held.
    pub residency: Residency,
    /// Calibration windows, tokens per window, windows per micro-batch.
    pub calibration: (usize, usize, usize),
    /// Bytes per value of the calibration hidden states kept between blocks (4, or 2
    /// with `calibration.hidden_dtype` bf16/f16).
    pub hidden_bytes: u64,
    /// Evaluation windows and tokens per window, when the run evaluates.
    pub eval: Option<(usize, usize)>,
    /// The linear layers pruned at once (one group of a block; the largest counts).
    pub group: &'a [LinearKind],
    /// Every target's `[d_out, d_in]`.
    pub targets: &'a [[usize; 2]],
    /// Bytes of the model's output files (the shard plan's disk size).
    pub model_disk: u64,
    /// Bytes per value of the written model.
    pub out_bytes: u64,
    /// Whether every target's dense weights and Gram are saved.
    pub save_grams: bool,
}

fn d_in_of(cfg: &LlamaConfig, p: CapturePoint) -> u64 {
    (match p {
        CapturePoint::Attn | CapturePoint::Mlp => cfg.hidden_size,
        CapturePoint::AttnOut => cfg.num_attention_heads * cfg.head_dim,
        CapturePoint::MlpAct => cfg.intermediate_size,
    }) as u64
}

fn phase(name: &str, mut parts: Vec<Part>) -> PhaseEstimate {
    parts.retain(|p| p.bytes > 0);
    parts.sort_by_key(|p| std::cmp::Reverse(p.bytes));
    PhaseEstimate {
        phase: name.into(),
        bytes: parts.iter().map(|p| p.bytes).sum(),
        parts,
    }
}

fn part(what: impl Into<String>, bytes: u64) -> Part {
    Part {
        what: what.into(),
        bytes,
    }
}

/// The plan of a run with inputs `x`.
pub fn plan(x: &PlanInputs<'_>) -> MemoryPlan {
    let c = x.model;
    let (h, i, q) = (
        c.hidden_size as u64,
        c.intermediate_size as u64,
        (c.num_attention_heads * c.head_dim) as u64,
    );
    let kv = (c.num_key_value_heads * c.head_dim) as u64;
    let vocab = c.vocab_size as u64;
    let block_values = 2 * h + q * h + 2 * kv * h + h * q + 3 * i * h;
    let head_values = if c.tie_word_embeddings { 0 } else { vocab * h };
    let held = match x.residency {
        Residency::AllF32 => part(
            "all weights (f32)",
            4 * (vocab * h + head_values + h + c.num_hidden_layers as u64 * block_values),
        ),
        Residency::OneBlock => part(
            "embedding and head (stored dtype)",
            x.stored_bytes * (vocab * h + head_values),
        ),
    };
    let block = match x.residency {
        Residency::AllF32 => 0,
        Residency::OneBlock => 4 * block_values,
    };
    let (samples, seq, micro) = x.calibration;
    let (samples, seq, micro) = (samples as u64, seq as u64, micro as u64);
    let tokens = micro * seq;
    let heads = c.num_attention_heads as u64;
    let mut points: Vec<CapturePoint> = x.group.iter().map(|k| k.input()).collect();
    points.sort_by_key(|p| *p as u8);
    points.dedup();
    let widest = x
        .targets
        .iter()
        .map(|s| (s[0] * s[1]) as u64)
        .max()
        .unwrap_or(0);
    let d_in_max = x.targets.iter().map(|s| s[1] as u64).max().unwrap_or(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    // The block forward's own transients at its peak: attention runs one sequence at a
    // time (its scores, their exponentials and the probabilities of every head, beside
    // the micro-batch's q, k, v, kᵀ and head outputs), then the MLP holds three
    // `[tokens, intermediate]` products at once; the residual stream twice throughout.
    let forward_tmp = |batch: u64, seq: u64| {
        let attention = 3 * heads * seq * seq * 4 + 5 * batch * seq * q * 4;
        let mlp = 3 * batch * seq * i * 4;
        attention.max(mlp) + 2 * batch * seq * h * 4
    };
    // Streaming, the embedding and head are read only while windows are embedded or
    // logits made, and released before the blocks are walked.
    let held_in_loop = match x.residency {
        Residency::AllF32 => held.clone(),
        Residency::OneBlock => part("", 0),
    };
    // A block is pruned in stages that do not overlap: the capture (every micro-batch
    // through the block, accumulating the Grams in f64), the conversion of each Gram to
    // f32 (its f64 accumulator dropped after), and the pruning of the targets (f32
    // Grams, one layer in flight). The largest stage counts, beside what lives
    // throughout.
    let gram_sizes: Vec<u64> = points.iter().map(|&p| d_in_of(c, p).pow(2)).collect();
    let gram_values: u64 = gram_sizes.iter().sum();
    // An accumulator holds the lower triangle in f64 tiles of `TILE` columns.
    let tile = sparseswaps_gram::TILE as u64;
    let triangles: Vec<u64> = points
        .iter()
        .map(|&p| {
            let d = d_in_of(c, p);
            let t = d.div_ceil(tile);
            8 * (t * (t + 1) / 2) * tile * tile
        })
        .collect();
    let converting = (0..gram_sizes.len())
        .map(|k| triangles[k..].iter().sum::<u64>() + 4 * gram_sizes[..=k].iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let stages = [
        vec![
            part(
                format!(
                    "Grams (f64 lower triangles, {} capture points)",
                    points.len()
                ),
                triangles.iter().sum(),
            ),
            part("block output of one micro-batch", tokens * h * 4),
            part(
                "captured activations (one micro-batch)",
                tokens * (2 * h + q + i) * 4,
            ),
            part("block forward temporaries", forward_tmp(micro, seq)),
        ],
        vec![part(
            "Grams while converted to f32 (f64 and f32)",
            converting,
        )],
        vec![
            part("Gram f32 copies", 4 * gram_values),
            part("layer in flight (dense, pruned f32, mask)", widest * 9),
            part(
                "row states (f64, a walk of rows per thread)",
                threads * sparseswaps_core::engine::ROWS_PER_WALK as u64 * d_in_max * 8 * 2,
            ),
        ],
    ];
    let largest_stage = stages
        .into_iter()
        .max_by_key(|st| st.iter().map(|p| p.bytes).sum::<u64>())
        .unwrap_or_default();
    let mut prune_parts = vec![
        held_in_loop,
        part("block weights (f32)", block),
        part(
            format!(
                "calibration hidden states ({} bytes per value)",
                x.hidden_bytes
            ),
            samples * seq * h * x.hidden_bytes,
        ),
    ];
    prune_parts.extend(largest_stage);
    let prune = phase("prune loop", prune_parts);
    let mut phases = Vec::new();
    let eval = x.eval.map(|(windows, eseq)| {
        let (windows, eseq) = (windows as u64, eseq as u64);
        let logits = part(
            "LM-head chunk (logits of one window, f32)",
            eseq * vocab * 4,
        );
        let mut parts = vec![part(
            "evaluation hidden states (f32)",
            windows * eseq * h * 4,
        )];
        match x.residency {
            Residency::AllF32 => parts.extend([
                held.clone(),
                logits,
                part("block forward temporaries", forward_tmp(1, eseq)),
            ]),
            Residency::OneBlock => {
                // Embedding, blocks, head: one after the other, the hidden states
                // throughout; the largest stage counts.
                let table = x.stored_bytes * vocab * h;
                let stages = [
                    vec![part("embedding (stored dtype)", table)],
                    vec![
                        part("block weights (f32)", block),
                        part("block forward temporaries", forward_tmp(1, eseq)),
                    ],
                    vec![
                        part("lm_head (stored dtype)", table),
                        part("lm_head rows widened at once (f32)", HEAD_CHUNK_VALUES * 4),
                        logits,
                    ],
                ];
                let top = stages
                    .into_iter()
                    .max_by_key(|st| st.iter().map(|p| p.bytes).sum::<u64>());
                parts.extend(top.unwrap_or_default());
            }
        }
        parts
    });
    if let Some(e) = &eval {
        phases.push(phase("dense eval", e.clone()));
    }
    phases.push(prune);
    if let Some(mut e) = eval {
        if x.residency == Residency::AllF32 {
            // The pruned evaluation loads the written model whole: its mapped shards
            // are resident while their tensors are widened.
            e.push(part(
                "written model's file pages while it loads",
                x.model_disk,
            ));
        }
        phases.push(phase("pruned eval", e));
    }
    let largest = (vocab * h).max(i * h).max(q * h);
    phases.push(phase(
        "writing",
        vec![
            match x.residency {
                Residency::AllF32 => held,
                // Blocks after the last target are copied one at a time, then the head
                // (its own table only when untied) is written and released.
                Residency::OneBlock => part("lm_head (stored dtype)", x.stored_bytes * head_values),
            },
            part("block weights (f32)", block),
            part(
                "one chunk of a tensor (f32 and written dtype)",
                largest.min(WRITE_CHUNK_VALUES) * (4 + x.out_bytes),
            ),
        ],
    ));
    let top = phases
        .iter()
        .max_by_key(|p| p.bytes)
        .cloned()
        .unwrap_or_else(|| phase("none", Vec::new()));
    let masks: u64 = x.targets.iter().map(|s| (s[0] * s[1]) as u64).sum();
    let grams: u64 = if x.save_grams {
        x.targets
            .iter()
            .map(|s| 4 * (s[0] * s[1] + s[1] * s[1]) as u64)
            .sum()
    } else {
        0
    };
    MemoryPlan {
        residency: x.residency,
        peak_bytes: top.bytes,
        peak_phase: top.phase,
        phases,
        disk_bytes: x.model_disk + masks + 2 * samples * seq * h * 4 + grams,
    }
}

/// `1.23 GB` (decimal, as `--max-memory` and `output.shard_size` read them).
pub fn gb(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

impl MemoryPlan {
    /// One line: the peak, its phase and its parts, the other phases, the disk.
    pub fn summary(&self) -> String {
        let top = self.phases.iter().find(|p| p.phase == self.peak_phase);
        let parts = top
            .map(|p| {
                p.parts
                    .iter()
                    .map(|x| format!("{} {}", x.what, gb(x.bytes)))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let others = self
            .phases
            .iter()
            .filter(|p| p.phase != self.peak_phase)
            .map(|p| format!("{} {}", p.phase, gb(p.bytes)))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "estimated peak memory {} in the {} ({parts}); {others}; disk to write {}",
            gb(self.peak_bytes),
            self.peak_phase,
            gb(self.disk_bytes)
        )
    }
}
