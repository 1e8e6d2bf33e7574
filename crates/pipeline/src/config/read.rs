//! Reading a config (TOML, unknown keys refused, every value checked) and turning its
//! sections into the options the pipeline runs with (pattern, budget, refine options,
//! backend, objective, order).

use super::*;
use crate::error::{PipelineError, Result};
use sparseswaps_core::Pattern;
use std::path::Path;

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
        self.objective(path)?;
        if let Some(s) = &self.refine.search {
            s.parse::<sparseswaps_core::Search>()
                .map_err(|e| bad(format!("refine.{e}")))?;
        }
        let c = &self.calibration;
        if c.samples == 0 || c.seq_len < 2 || c.micro_batch == 0 {
            return Err(bad(
                "calibration: samples and micro_batch must be >= 1 and seq_len >= 2".into(),
            ));
        }
        self.hidden_dtype(path)?;
        if let Some(e) = &self.eval {
            if e.windows == 0 || e.seq_len < 2 {
                return Err(bad("eval: windows must be >= 1 and seq_len >= 2".into()));
            }
        }
        self.shard_size(path)?;
        self.max_memory(path)?;
        if self.targets.include.is_empty() {
            return Err(bad("targets.include is empty: nothing to prune".into()));
        }
        Ok(())
    }

    /// `output.shard_size` in bytes (default 5 GB).
    pub fn shard_size(&self, path: &Path) -> Result<u64> {
        self.output
            .shard_size
            .as_ref()
            .map_or(Ok(sparseswaps_model::DEFAULT_SHARD_SIZE), |s| {
                s.bytes().map_err(|e| PipelineError::Config {
                    path: path.into(),
                    reason: format!("output.shard_size: {e}"),
                })
            })
    }

    /// `calibration.hidden_dtype`: the element type calibration hidden states are kept in.
    pub fn hidden_dtype(&self, path: &Path) -> Result<sparseswaps_model::DType> {
        use sparseswaps_model::DType;
        match self.calibration.hidden_dtype.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Ok(DType::F32),
            "bf16" | "bfloat16" => Ok(DType::BF16),
            "f16" | "float16" => Ok(DType::F16),
            other => Err(PipelineError::Config {
                path: path.into(),
                reason: format!("calibration.hidden_dtype = '{other}': expected f32, bf16 or f16"),
            }),
        }
    }

    /// `run.max_memory` in bytes, when set.
    pub fn max_memory(&self, path: &Path) -> Result<Option<u64>> {
        match self.run.as_ref().and_then(|r| r.max_memory.as_ref()) {
            None => Ok(None),
            Some(s) => s.bytes().map(Some).map_err(|e| PipelineError::Config {
                path: path.into(),
                reason: format!("run.max_memory: {e}"),
            }),
        }
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

    /// The refinement options: `refine.max_swaps`, `refine.search` (`default_search`
    /// when unset) and the budget.
    pub fn refine_options(
        &self,
        path: &Path,
        default_search: sparseswaps_core::Search,
    ) -> Result<sparseswaps_core::RefineOptions> {
        let search = match &self.refine.search {
            Some(s) => s.parse().map_err(|e| PipelineError::Config {
                path: path.into(),
                reason: format!("refine.{e}"),
            })?,
            None => default_search,
        };
        Ok(sparseswaps_core::RefineOptions {
            max_swaps: self.refine.max_swaps.as_option(),
            search,
            budget: self.budget(path)?,
            ..sparseswaps_core::RefineOptions::default()
        })
    }

    /// The backend kind (`refine.backend`).
    pub fn backend_kind(&self, path: &Path) -> Result<sparseswaps_kernels::BackendKind> {
        self.refine
            .backend
            .parse()
            .map_err(|e| PipelineError::Config {
                path: path.into(),
                reason: format!("refine.backend: {e}"),
            })
    }

    /// What the swaps minimise (`refine.objective`).
    pub fn objective(&self, path: &Path) -> Result<Objective> {
        self.refine
            .objective
            .parse()
            .map_err(|e| PipelineError::Config {
                path: path.into(),
                reason: format!("refine.{e}"),
            })
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
