//! The TOML pipeline config: every key, its default, and validation.
//!
//! Unknown keys are errors that name the key and the file. Paths may use `${VAR}` or
//! `${VAR:-default}` (environment variables), and relative paths are taken from the
//! current working directory.

use serde::{Deserialize, Serialize};

mod objective;
mod paths;
mod read;
mod size;

pub use objective::Objective;
pub use paths::{expand_path, glob_match};
pub use size::{parse_size, ByteSize};

/// A whole pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The model to prune.
    pub model: ModelSection,
    /// Calibration data.
    pub calibration: CalibrationSection,
    /// Which linear layers to prune.
    #[serde(default)]
    pub targets: TargetsSection,
    /// The sparsity pattern.
    pub pattern: PatternSection,
    /// The warm start.
    #[serde(default)]
    pub warm_start: WarmStartSection,
    /// The refinement.
    #[serde(default)]
    pub refine: RefineSection,
    /// Outputs.
    pub output: OutputSection,
    /// Perplexity evaluation (optional).
    #[serde(default)]
    pub eval: Option<EvalSection>,
    /// Limits of the run (optional; left out of the canonical form when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSection>,
}

/// `[run]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Refuse to start when the memory plan's estimated peak exceeds this: bytes, or a
    /// string with a unit (`"20GB"`). `--max-memory` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<ByteSize>,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A GGUF file or a Hugging Face directory.
    pub path: String,
    /// dtype of the written model: `source` (default: the input's dtype, f32 for
    /// GGUF), `f32`, `f16` or `bf16`.
    #[serde(default = "default_dtype")]
    pub dtype: String,
}

fn default_dtype() -> String {
    "source".into()
}

/// `[calibration]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationSection {
    /// Plain-text file.
    pub text: String,
    /// Number of windows drawn (default 64).
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Tokens per window (default 512).
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// Seed of the window draw (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Sequences run through a block at once (default 8): bounds activation memory.
    #[serde(default = "default_micro_batch")]
    pub micro_batch: usize,
    /// Element type the calibration hidden states are kept in between blocks: `f32`
    /// (default, exact), `bf16` or `f16` (half their memory; each block then reads
    /// inputs rounded to that type, which changes the masks).
    #[serde(default = "default_hidden_dtype", skip_serializing_if = "is_f32")]
    pub hidden_dtype: String,
}

fn default_hidden_dtype() -> String {
    "f32".into()
}

// serde's `skip_serializing_if` passes a reference.
#[allow(clippy::ptr_arg)]
fn is_f32(s: &String) -> bool {
    s == "f32"
}

fn default_samples() -> usize {
    64
}
fn default_seq_len() -> usize {
    512
}
fn default_micro_batch() -> usize {
    8
}

/// `[targets]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsSection {
    /// Globs on layer names (`model.layers.3.mlp.down_proj`); default: every linear
    /// layer inside the decoder blocks.
    #[serde(default = "default_include")]
    pub include: Vec<String>,
    /// Globs of layers to skip (default: none).
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Default for TargetsSection {
    fn default() -> Self {
        TargetsSection {
            include: default_include(),
            exclude: Vec::new(),
        }
    }
}

fn default_include() -> Vec<String> {
    vec!["model.layers.*".into()]
}

/// `[pattern]`: exactly one of `sparsity` and `n_m`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSection {
    /// Per-row unstructured sparsity in [0, 1).
    pub sparsity: Option<f64>,
    /// `"N:M"`: N kept of every M consecutive inputs.
    pub n_m: Option<String>,
}

/// `[warm_start]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmStartSection {
    /// Plugin name: `wanda` (default), `magnitude`, or any installed plugin.
    #[serde(default = "default_warm")]
    pub name: String,
    /// Option string handed to the plugin as is (default empty).
    #[serde(default)]
    pub options: String,
}

impl Default for WarmStartSection {
    fn default() -> Self {
        WarmStartSection {
            name: default_warm(),
            options: String::new(),
        }
    }
}

fn default_warm() -> String {
    "wanda".into()
}

/// A swap cap: a count, or `"none"`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SwapCap {
    /// At most this many swaps per row (0: warm start only).
    Count(u32),
    /// The word `"none"`: no cap.
    Word(CapWord),
}

/// The only word a swap cap accepts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CapWord {
    /// No cap.
    None,
}

impl SwapCap {
    /// As the engine's option.
    pub fn as_option(self) -> Option<u32> {
        match self {
            SwapCap::Count(n) => Some(n),
            SwapCap::Word(CapWord::None) => None,
        }
    }
}

/// `[refine]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefineSection {
    /// Swaps per row (default 100, as in the paper; `"none"`: until 1-swap optimal).
    #[serde(default = "default_cap")]
    pub max_swaps: SwapCap,
    /// `cpu` (default), `cuda` or `auto`.
    #[serde(default = "default_backend")]
    pub backend: String,
    /// `block` (default): every target of a block sees the block's inputs with the
    /// block still dense; `sublayer`: q/k/v, then o, then gate/up, then down, each seeing
    /// the already pruned earlier sublayers.
    #[serde(default = "default_sequential")]
    pub sequential: String,
    /// `bounded` (exact, visits pairs in order of a lower bound) or `exhaustive` (every
    /// admissible pair, as in the paper). Same masks. Unset (the default): `bounded` on
    /// the CPU, `exhaustive` on CUDA, which runs no bounded search; a run's report and
    /// checkpoint record the search it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// `row` (default: k kept per row), `band` (layer total fixed, each row within
    /// k·(1±max_row_imbalance)) or `layer` (only the layer total fixed). Unstructured
    /// patterns only.
    #[serde(default = "default_budget")]
    pub budget: String,
    /// δ of the `band` budget (default 0.25); an error with any other budget.
    #[serde(default)]
    pub max_row_imbalance: Option<f64>,
    /// Re-fit the kept weights of every layer by exact least squares once its mask is
    /// final (default false); the masks file is unchanged.
    #[serde(default)]
    pub reconstruct: bool,
    /// What the swaps minimise: `mask` (default: the error of the mask with the
    /// original weights, as in the paper) or `refit` (after those swaps, exact 1-swaps
    /// of the error after the re-fit of the kept weights, from where they ended; the
    /// layer's weights are the re-fitted ones; at most 300 refit swaps per row, on the
    /// CPU whatever the backend). `refit` implies reconstruction: `reconstruct` is then
    /// ignored, whatever its value. Under `band` and `layer` budgets each row keeps the
    /// count the ordinary swaps gave it (no cross-row move of the re-fitted objective).
    /// Left out of the canonical form when `mask`, so that reports and checkpoints of
    /// default runs are unchanged.
    #[serde(default = "default_objective", skip_serializing_if = "is_mask")]
    pub objective: String,
}

fn default_objective() -> String {
    "mask".into()
}

fn is_mask(s: &str) -> bool {
    s == "mask"
}

fn default_budget() -> String {
    "row".into()
}

impl Default for RefineSection {
    fn default() -> Self {
        RefineSection {
            max_swaps: default_cap(),
            backend: default_backend(),
            sequential: default_sequential(),
            search: None,
            budget: default_budget(),
            max_row_imbalance: None,
            reconstruct: false,
            objective: default_objective(),
        }
    }
}

fn default_cap() -> SwapCap {
    SwapCap::Count(100)
}
fn default_backend() -> String {
    "cpu".into()
}
fn default_sequential() -> String {
    "block".into()
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Output directory (must not exist unless the run is forced).
    pub dir: String,
    /// Write the pruned model (default true).
    #[serde(default = "yes")]
    pub model: bool,
    /// Write the run's figure, `error.svg` and `error.png`: relative layer error by block
    /// and layer kind (default true).
    #[serde(default = "yes")]
    pub plot: bool,
    /// Save every target's dense weights and Gram matrix under `layers/` (default
    /// false), to re-run single layers with `refine-layer`.
    #[serde(default)]
    pub save_grams: bool,
    /// Largest shard of the written model: bytes, or a string with a unit (`"5GB"`,
    /// the default, as transformers' `max_shard_size`). Left out of the canonical form
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_size: Option<ByteSize>,
}

fn yes() -> bool {
    true
}

/// `[eval]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSection {
    /// Plain-text file.
    pub text: String,
    /// Tokens per window (default 512).
    #[serde(default = "default_seq_len")]
    pub seq_len: usize,
    /// Windows from the start of the text (default 64).
    #[serde(default = "default_samples")]
    pub windows: usize,
    /// Also evaluate the dense model (default true).
    #[serde(default = "yes")]
    pub dense: bool,
}

/// Sequential mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sequential {
    /// Targets of a block see the dense block's inputs.
    Block,
    /// Each sublayer group sees the pruned earlier groups.
    Sublayer,
}

#[cfg(test)]
mod tests;
