//! Which linear layers a run prunes, block by block, and in which groups.

use crate::config::{glob_match, PipelineConfig, Sequential};
use crate::error::{PipelineError, Result};
use sparseswaps_core::Pattern;
use sparseswaps_model::{LinearKind, Model};
use std::collections::BTreeMap;

/// Target layers by block.
pub type Targets = BTreeMap<usize, Vec<LinearKind>>;

/// A layer's name without `.weight` (`model.layers.3.mlp.down_proj`).
pub fn layer_name(block: usize, kind: LinearKind) -> String {
    kind.weight_name(block)
        .trim_end_matches(".weight")
        .to_string()
}

/// Target layers (names without `.weight`) by block, after include/exclude globs.
pub fn select_targets(model: &Model, cfg: &PipelineConfig) -> Result<Targets> {
    let names: Vec<(usize, LinearKind, String)> = (0..model.num_layers())
        .flat_map(|l| {
            LinearKind::ALL.into_iter().map(move |k| {
                let n = k.weight_name(l);
                (l, k, n.trim_end_matches(".weight").to_string())
            })
        })
        .collect();
    for g in &cfg.targets.include {
        if !names.iter().any(|(_, _, n)| glob_match(g, n)) {
            return Err(PipelineError::Input(format!(
                "targets.include glob '{g}' matches no linear layer (names look like {})",
                names
                    .first()
                    .map(|x| x.2.as_str())
                    .unwrap_or("model.layers.0.self_attn.q_proj")
            )));
        }
    }
    for g in &cfg.targets.exclude {
        if !names.iter().any(|(_, _, n)| glob_match(g, n)) {
            return Err(PipelineError::Input(format!(
                "targets.exclude glob '{g}' matches no linear layer"
            )));
        }
    }
    let mut out: Targets = BTreeMap::new();
    for (l, k, n) in names {
        let inc = cfg.targets.include.iter().any(|g| glob_match(g, &n));
        let exc = cfg.targets.exclude.iter().any(|g| glob_match(g, &n));
        if inc && !exc {
            out.entry(l).or_default().push(k);
        }
    }
    if out.is_empty() {
        return Err(PipelineError::Input(
            "no target layer left after targets.include and targets.exclude".into(),
        ));
    }
    Ok(out)
}

/// Checks the pattern against every target's width, before any work.
pub fn check_widths(model: &Model, targets: &Targets, pattern: &Pattern) -> Result<()> {
    for (&l, kinds) in targets {
        for &k in kinds {
            let d_in = model.weight_shape(&k.weight_name(l))?[1];
            pattern
                .check_width(d_in)
                .map_err(|e| PipelineError::Input(format!("{}: {e}", layer_name(l, k))))?;
        }
    }
    Ok(())
}

/// The groups of a block's targets `kinds` pruned one after another: all at once
/// (`block`: every target sees the dense block's inputs), or q/k/v, then o, then
/// gate/up, then down (`sublayer`: each group sees the pruned earlier groups).
pub fn groups(kinds: &[LinearKind], sequential: Sequential) -> Vec<Vec<LinearKind>> {
    match sequential {
        Sequential::Block => vec![kinds.to_vec()],
        Sequential::Sublayer => [
            vec![LinearKind::Q, LinearKind::K, LinearKind::V],
            vec![LinearKind::O],
            vec![LinearKind::Gate, LinearKind::Up],
            vec![LinearKind::Down],
        ]
        .into_iter()
        .map(|g| {
            g.into_iter()
                .filter(|k| kinds.contains(k))
                .collect::<Vec<_>>()
        })
        .filter(|g| !g.is_empty())
        .collect(),
    }
}

/// The names of block `l`'s targets, sorted (as a checkpoint stores them).
pub fn sorted_names(targets: &Targets, l: usize) -> Vec<String> {
    let mut names: Vec<String> = targets
        .get(&l)
        .map(|ks| ks.iter().map(|&k| layer_name(l, k)).collect())
        .unwrap_or_default();
    names.sort();
    names
}
