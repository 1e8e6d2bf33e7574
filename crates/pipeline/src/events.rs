//! Progress of a run as events, for a terminal or a log: nothing in this crate prints.

use crate::report::LayerReport;
use std::path::PathBuf;

/// Progress of a run, for a terminal or a log. Sent from worker threads too.
#[derive(Debug, Clone)]
pub enum Event {
    /// A named stage began (loading, calibration, writing...).
    Stage(String),
    /// A note to show once (e.g. why `auto` chose the CPU).
    Note(String),
    /// Perplexity evaluation began: `label` is `dense` or `pruned`.
    EvalStart {
        /// `dense` or `pruned`.
        label: String,
        /// Windows to evaluate.
        windows: usize,
    },
    /// One more window evaluated.
    EvalWindow,
    /// Evaluation done.
    EvalDone {
        /// `dense` or `pruned`.
        label: String,
        /// The perplexity.
        ppl: f64,
    },
    /// Pruning began over `blocks` blocks with `targets` target layers.
    PruneStart {
        /// Decoder blocks.
        blocks: usize,
        /// Target layers.
        targets: usize,
    },
    /// Block `index` began.
    BlockStart {
        /// Block index.
        index: usize,
    },
    /// One micro-batch of calibration activations captured in the current block.
    Captured {
        /// Micro-batches done in this pass.
        done: usize,
        /// Micro-batches per pass.
        total: usize,
    },
    /// Refinement of a layer began.
    LayerStart {
        /// Layer name.
        name: String,
        /// Rows of the layer.
        rows: usize,
    },
    /// Rows finished in the current layer (an increment).
    Rows(usize),
    /// A layer is done.
    LayerDone(Box<LayerReport>),
    /// Block `index` is done (and checkpointed).
    BlockDone {
        /// Block index.
        index: usize,
    },
    /// The run continues a checkpoint: blocks `0..from_block` were restored from it.
    Resumed {
        /// First block still to prune.
        from_block: usize,
        /// Blocks the pruning loop runs.
        blocks: usize,
        /// The checkpoint's manifest.
        checkpoint: PathBuf,
    },
}

/// Event sink; must be callable from worker threads.
pub type Events<'a> = &'a (dyn Fn(Event) + Sync);
