//! The closing summary of a run, computed from its [`RunReport`] alone: per layer kind
//! (`q_proj` … `down_proj`), the mean and median relative layer error of the warm start,
//! after the swaps and after the re-fit, the swaps and the seconds; then the run's
//! totals and perplexities. Pure functions, so that `sparseswaps run` and
//! `sparseswaps compare` print the same figures and tests can pin them.

use crate::report::{mean_median, LayerReport, RunReport};
use serde::Serialize;
use std::fmt::Write;

/// The layer kinds of a Llama-style decoder block, in the order tables list them; other
/// kinds follow, sorted by name.
pub const KINDS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The kind of a layer: the last dotted component of its name
/// (`model.layers.3.mlp.down_proj` → `down_proj`).
pub fn layer_kind(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

/// Mean and median of one figure over a group of layers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub median: f64,
}

impl Stat {
    fn of(v: &[f64]) -> Self {
        let (mean, median) = mean_median(v);
        Stat { mean, median }
    }
}

/// The figures of one group of layers (one kind, or all layers).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KindSummary {
    /// The kind (`q_proj`), or `all`.
    pub kind: String,
    /// Layers in the group.
    pub layers: usize,
    /// Relative error of the warm-start mask (`warm_relative`).
    pub warm: Stat,
    /// Relative error after the swaps, with the original weights (`refined_relative`).
    pub swapped: Stat,
    /// Relative error after the re-fit of the kept weights (`reconstructed_relative`),
    /// over the layers that have one; `None` when none has (no `reconstruct`, objective
    /// `mask`).
    pub refit: Option<Stat>,
    /// Swaps taken, summed (those of the re-fitted objective not included).
    pub swaps: u64,
    /// Seconds of warm start and refinement, summed.
    pub seconds: f64,
}

impl KindSummary {
    fn of(kind: &str, layers: &[&LayerReport]) -> Self {
        let pick = |f: fn(&LayerReport) -> f64| layers.iter().map(|l| f(l)).collect::<Vec<_>>();
        let refit: Vec<f64> = layers
            .iter()
            .filter_map(|l| l.budget.reconstructed_relative)
            .collect();
        KindSummary {
            kind: kind.to_string(),
            layers: layers.len(),
            warm: Stat::of(&pick(|l| l.warm_relative)),
            swapped: Stat::of(&pick(|l| l.refined_relative)),
            refit: (!refit.is_empty()).then(|| Stat::of(&refit)),
            swaps: layers.iter().map(|l| l.swaps).sum(),
            seconds: layers.iter().map(|l| l.seconds).sum(),
        }
    }
}

/// The closing summary of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// One entry per layer kind present, in [`KINDS`] order, then other kinds by name.
    pub kinds: Vec<KindSummary>,
    /// All layers together (kind `all`).
    pub all: KindSummary,
    /// Fraction of target weights pruned.
    pub sparsity: f64,
    /// Mean per-layer error reduction of the swaps over the warm start.
    pub mean_reduction: f64,
    /// Median per-layer error reduction.
    pub median_reduction: f64,
    /// Mean reduction of the re-fitted error by the refit swaps (objective `refit`).
    pub mean_refit_reduction: Option<f64>,
    /// Dense perplexity, when evaluated.
    pub dense_ppl: Option<f64>,
    /// Pruned perplexity, when evaluated.
    pub pruned_ppl: Option<f64>,
    /// Tokens scored by the perplexity evaluation.
    pub ppl_tokens: Option<usize>,
    /// Wall-clock seconds of the run.
    pub total_seconds: f64,
    /// Peak resident memory in bytes, when known.
    pub peak_memory_bytes: Option<u64>,
    /// Backend used.
    pub backend: String,
}

/// Groups the layers of `layers` by kind, known kinds first.
pub fn by_kind(layers: &[LayerReport]) -> Vec<KindSummary> {
    let mut kinds: Vec<&str> = layers.iter().map(|l| layer_kind(&l.name)).collect();
    kinds.sort_by_key(|k| (KINDS.iter().position(|x| x == k).unwrap_or(KINDS.len()), *k));
    kinds.dedup();
    kinds
        .into_iter()
        .map(|k| {
            let group: Vec<&LayerReport> =
                layers.iter().filter(|l| layer_kind(&l.name) == k).collect();
            KindSummary::of(k, &group)
        })
        .collect()
}

/// The summary of `r`.
pub fn summarize(r: &RunReport) -> RunSummary {
    let all: Vec<&LayerReport> = r.layers.iter().collect();
    RunSummary {
        kinds: by_kind(&r.layers),
        all: KindSummary::of("all", &all),
        sparsity: r.sparsity,
        mean_reduction: r.mean_reduction,
        median_reduction: r.median_reduction,
        mean_refit_reduction: r.mean_refit_reduction,
        dense_ppl: r.dense_ppl.map(|p| p.ppl),
        pruned_ppl: r.pruned_ppl.map(|p| p.ppl),
        ppl_tokens: r.pruned_ppl.or(r.dense_ppl).map(|p| p.tokens),
        total_seconds: r.total_seconds,
        peak_memory_bytes: r.peak_memory_bytes,
        backend: r.backend.clone(),
    }
}

/// A relative error as tables print it (`3.050e-4`); `-` when absent.
pub fn fmt_rel(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3e}"))
}

/// Bytes as GiB with two decimals; `-` when unknown.
pub fn fmt_gib(b: Option<u64>) -> String {
    b.map_or_else(
        || "-".to_string(),
        |b| format!("{:.2}", b as f64 / (1u64 << 30) as f64),
    )
}

/// The per-kind table of `kinds` (and the `all` row), as fixed-width text lines.
pub fn render_kind_table(kinds: &[KindSummary], all: &KindSummary) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "kind",
        "layers",
        "warm mean",
        "warm med.",
        "swap mean",
        "swap med.",
        "refit mean",
        "refit med.",
        "swaps",
        "seconds"
    );
    for k in kinds.iter().chain(std::iter::once(all)) {
        let _ = writeln!(
            s,
            "{:<10} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9.1}",
            k.kind,
            k.layers,
            fmt_rel(Some(k.warm.mean)),
            fmt_rel(Some(k.warm.median)),
            fmt_rel(Some(k.swapped.mean)),
            fmt_rel(Some(k.swapped.median)),
            fmt_rel(k.refit.map(|s| s.mean)),
            fmt_rel(k.refit.map(|s| s.median)),
            k.swaps,
            k.seconds
        );
    }
    s
}

/// The summary as the terminal shows it at the end of `sparseswaps run`: the per-kind
/// table of relative layer errors, then totals and perplexities.
pub fn render_summary(s: &RunSummary) -> String {
    let mut out = render_kind_table(&s.kinds, &s.all);
    out.push('\n');
    let _ = writeln!(
        out,
        "{} layers, sparsity {:.2}%, error reduction over the warm start: mean {:.1}%, median {:.1}%",
        s.all.layers,
        100.0 * s.sparsity,
        100.0 * s.mean_reduction,
        100.0 * s.median_reduction
    );
    if let Some(m) = s.mean_refit_reduction {
        let _ = writeln!(
            out,
            "objective refit: re-fitted error lowered a further {:.1}% per layer (mean) by the refit swaps",
            100.0 * m
        );
    }
    let tokens = s
        .ppl_tokens
        .map_or(String::new(), |t| format!(" ({t} tokens)"));
    if let Some(d) = s.dense_ppl {
        let _ = writeln!(out, "dense perplexity  {d:.3}{tokens}");
    }
    if let Some(p) = s.pruned_ppl {
        let _ = writeln!(out, "pruned perplexity {p:.3}{tokens}");
    }
    let mem = s.peak_memory_bytes.map_or("unknown".to_string(), |b| {
        format!("{} GiB", fmt_gib(Some(b)))
    });
    let _ = writeln!(
        out,
        "total {:.1} s, peak memory {mem}, backend {}",
        s.total_seconds, s.backend
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_last_components() {
        assert_eq!(layer_kind("model.layers.3.mlp.down_proj"), "down_proj");
        assert_eq!(layer_kind("lm_head"), "lm_head");
        assert_eq!(fmt_rel(Some(0.000305)), "3.050e-4");
        assert_eq!(fmt_rel(None), "-");
    }
}
