//! The TOML pipeline config: every key, its default, and validation.
//!
//! Unknown keys are errors that name the key and the file. Paths may use `${VAR}` or
//! `${VAR:-default}` (environment variables), and relative paths are taken from the
//! current working directory.

use crate::error::{PipelineError, Result};
use serde::{Deserialize, Serialize};
use sparseswaps_core::Pattern;
use std::path::{Path, PathBuf};

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
    /// `bounded` (default: exact, visits pairs in order of a lower bound) or
    /// `exhaustive` (every admissible pair, as in the paper). Same masks.
    #[serde(default = "default_search")]
    pub search: String,
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
}

fn default_budget() -> String {
    "row".into()
}

fn default_search() -> String {
    "bounded".into()
}

impl Default for RefineSection {
    fn default() -> Self {
        RefineSection {
            max_swaps: default_cap(),
            backend: default_backend(),
            sequential: default_sequential(),
            search: default_search(),
            budget: default_budget(),
            max_row_imbalance: None,
            reconstruct: false,
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
    /// Write `error.svg`, the per-layer relative error plot (default true).
    #[serde(default = "yes")]
    pub plot: bool,
    /// Save every target's dense weights and Gram matrix under `layers/` (default
    /// false), to re-run single layers with `refine-layer`.
    #[serde(default)]
    pub save_grams: bool,
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

impl PipelineConfig {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Io {
            path: path.into(),
            error: e,
        })?;
        Self::from_toml(path, &text)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn from_toml(path: &Path, text: &str) -> Result<Self> {
        let cfg: PipelineConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    format!(
                        " (line {})",
                        text[..s.start.min(text.len())].lines().count().max(1)
                    )
                })
                .unwrap_or_default();
            PipelineError::Config {
                path: path.into(),
                reason: format!("{}{line}", e.message().replace('\n', " ")),
            }
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |reason: String| PipelineError::Config {
            path: path.into(),
            reason,
        };
        self.pattern(path)?;
        if !["source", "f32", "f16", "bf16"].contains(&self.model.dtype.as_str()) {
            return Err(bad(format!(
                "model.dtype = '{}': expected source, f32, f16 or bf16",
                self.model.dtype
            )));
        }
        if !["cpu", "cuda", "auto"].contains(&self.refine.backend.as_str()) {
            return Err(bad(format!(
                "refine.backend = '{}': expected cpu, cuda or auto",
                self.refine.backend
            )));
        }
        self.sequential(path)?;
        self.budget(path)?;
        self.refine
            .search
            .parse::<sparseswaps_core::Search>()
            .map_err(|e| bad(format!("refine.{e}")))?;
        let c = &self.calibration;
        if c.samples == 0 || c.seq_len < 2 || c.micro_batch == 0 {
            return Err(bad(
                "calibration: samples and micro_batch must be >= 1 and seq_len >= 2".into(),
            ));
        }
        if let Some(e) = &self.eval {
            if e.windows == 0 || e.seq_len < 2 {
                return Err(bad("eval: windows must be >= 1 and seq_len >= 2".into()));
            }
        }
        if self.targets.include.is_empty() {
            return Err(bad("targets.include is empty: nothing to prune".into()));
        }
        Ok(())
    }

    /// The sparsity pattern.
    pub fn pattern(&self, path: &Path) -> Result<Pattern> {
        let bad = |reason: String| PipelineError::Config {
            path: path.into(),
            reason,
        };
        match (&self.pattern.sparsity, &self.pattern.n_m) {
            (Some(s), None) => {
                Pattern::unstructured(*s).map_err(|e| bad(format!("pattern.sparsity: {e}")))
            }
            (None, Some(nm)) => {
                if !nm.contains(':') {
                    return Err(bad(format!("pattern.n_m = '{nm}': expected \"N:M\"")));
                }
                nm.parse().map_err(|e| bad(format!("pattern.n_m: {e}")))
            }
            _ => Err(bad("[pattern] needs exactly one of sparsity and n_m".into())),
        }
    }

    /// The budget of the refinement (`refine.budget`, `refine.max_row_imbalance`).
    pub fn budget(&self, path: &Path) -> Result<sparseswaps_core::Budget> {
        let bad = |reason: String| PipelineError::Config {
            path: path.into(),
            reason,
        };
        let r = &self.refine;
        if r.max_row_imbalance.is_some() && r.budget != "band" {
            return Err(bad(format!(
                "refine.max_row_imbalance applies to refine.budget = \"band\" only (budget is '{}')",
                r.budget
            )));
        }
        let budget =
            sparseswaps_core::Budget::parse(&r.budget, r.max_row_imbalance.unwrap_or(0.25))
                .map_err(|e| bad(format!("refine.budget: {e}")))?;
        if budget != sparseswaps_core::Budget::Row && self.pattern.n_m.is_some() {
            return Err(bad(format!(
                "refine.budget = '{}' needs pattern.sparsity: pattern.n_m keeps N in every group of M",
                budget.name()
            )));
        }
        Ok(budget)
    }

    /// The sequential mode.
    pub fn sequential(&self, path: &Path) -> Result<Sequential> {
        match self.refine.sequential.as_str() {
            "block" => Ok(Sequential::Block),
            "sublayer" => Ok(Sequential::Sublayer),
            other => Err(PipelineError::Config {
                path: path.into(),
                reason: format!("refine.sequential = '{other}': expected block or sublayer"),
            }),
        }
    }
}

/// Expands `${VAR}` and `${VAR:-default}` in a path string.
pub fn expand_path(s: &str) -> PathBuf {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                let expr = &after[..j];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                match std::env::var(name) {
                    Ok(v) if !v.is_empty() => out.push_str(&v),
                    _ => out.push_str(default.unwrap_or("")),
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    PathBuf::from(out)
}

/// Whether `name` matches the glob `pat` (`*` any run of characters, `?` one).
pub fn glob_match(pat: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pat.chars().collect(), name.chars().collect());
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[model]
path = "m.gguf"
[calibration]
text = "c.txt"
[pattern]
sparsity = 0.5
[output]
dir = "out"
"#;

    #[test]
    fn defaults_and_unknown_keys() {
        let p = Path::new("p.toml");
        let c = PipelineConfig::from_toml(p, MIN).unwrap();
        assert_eq!(c.calibration.samples, 64);
        assert_eq!(c.refine.max_swaps, SwapCap::Count(100));
        assert_eq!(c.warm_start.name, "wanda");
        let e = PipelineConfig::from_toml(p, &format!("{MIN}\n[refine]\nmax_swap = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("p.toml") && e.contains("max_swap"), "{e}");
        let e = PipelineConfig::from_toml(p, &MIN.replace("[output]", "[output]\nfoo = 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `foo`"), "{e}");
        let c = PipelineConfig::from_toml(p, &format!("{MIN}\n[refine]\nmax_swaps = \"none\"\n"))
            .unwrap();
        assert_eq!(c.refine.max_swaps.as_option(), None);
        let e = PipelineConfig::from_toml(p, &MIN.replace("sparsity = 0.5", "sparsity = 1.5"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("outside [0, 1)"), "{e}");
    }

    /// A value with a newline (a TOML escape) is quoted escaped: the message stays one
    /// line (the GGUF fuzz target found this fault in the GGUF loader first).
    #[test]
    fn control_characters_in_values_are_escaped() {
        let p = Path::new("p.toml");
        let text = format!("{MIN}\n[refine]\nbackend = \"tp\\nu\"\n");
        let e = PipelineConfig::from_toml(p, &text).unwrap_err().to_string();
        assert_eq!(
            e,
            r"p.toml: refine.backend = 'tp\nu': expected cpu, cuda or auto"
        );
    }

    #[test]
    fn budget_keys() {
        let p = Path::new("p.toml");
        let c = PipelineConfig::from_toml(p, MIN).unwrap();
        assert_eq!(c.budget(p).unwrap(), sparseswaps_core::Budget::Row);
        assert!(!c.refine.reconstruct);
        let c = PipelineConfig::from_toml(
            p,
            &format!(
                "{MIN}\n[refine]\nbudget = \"band\"\nmax_row_imbalance = 0.1\nreconstruct = true\n"
            ),
        )
        .unwrap();
        assert_eq!(
            c.budget(p).unwrap(),
            sparseswaps_core::Budget::Band {
                max_row_imbalance: 0.1
            }
        );
        assert!(c.refine.reconstruct);
        let c =
            PipelineConfig::from_toml(p, &format!("{MIN}\n[refine]\nbudget = \"band\"\n")).unwrap();
        assert_eq!(
            c.budget(p).unwrap(),
            sparseswaps_core::Budget::Band {
                max_row_imbalance: 0.25
            }
        );
        let err = |extra: &str, base: &str| {
            PipelineConfig::from_toml(p, &format!("{base}\n[refine]\n{extra}\n"))
                .unwrap_err()
                .to_string()
        };
        let e = err(
            "budget = \"layer\"",
            &MIN.replace("sparsity = 0.5", "n_m = \"2:4\""),
        );
        assert!(
            e.contains("p.toml") && e.contains("refine.budget") && e.contains("pattern.n_m"),
            "{e}"
        );
        let e = err("budget = \"rows\"", MIN);
        assert!(
            e.contains("p.toml") && e.contains("refine.budget") && e.contains("'rows'"),
            "{e}"
        );
        let e = err("max_row_imbalance = 0.2", MIN);
        assert!(e.contains("refine.max_row_imbalance"), "{e}");
        let e = err("budget = \"band\"\nmax_row_imbalance = -0.5", MIN);
        assert!(
            e.contains("refine.budget") && e.contains("max_row_imbalance -0.5"),
            "{e}"
        );
    }

    #[test]
    fn globs_and_paths() {
        assert!(glob_match("model.layers.*", "model.layers.3.mlp.up_proj"));
        assert!(glob_match("*.q_proj", "model.layers.12.self_attn.q_proj"));
        assert!(!glob_match("*.q_proj", "model.layers.12.self_attn.k_proj"));
        assert!(glob_match(
            "model.layers.?.mlp.*",
            "model.layers.1.mlp.up_proj"
        ));
        assert!(!glob_match(
            "model.layers.?.mlp.*",
            "model.layers.11.mlp.up_proj"
        ));
        assert_eq!(
            expand_path("${SPARSESWAPS_SURELY_UNSET:-a/b}/c"),
            PathBuf::from("a/b/c")
        );
    }
}
