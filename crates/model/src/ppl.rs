//! Perplexity over consecutive non-overlapping windows.
//!
//! How it is computed, exactly:
//! - the text file is read as UTF-8 (a leading byte-order mark is dropped, `\r\n` and
//!   lone `\r` become `\n`; nothing else is changed);
//! - the whole text is tokenized at once, **without** special tokens: no BOS is
//!   prepended, to the text or to any window;
//! - windows are tokens `[w·L, (w+1)·L)` for `w = 0, 1, …`, `L = seq_len`, as many as
//!   asked for and as fit (a partial last window is dropped);
//! - inside each window the model predicts tokens 2…L from their prefixes (the first
//!   token of a window has no context and is not scored), so each window scores `L − 1`
//!   tokens;
//! - `mean_nll` is the mean natural-log negative likelihood over all scored tokens
//!   (accumulated in f64, window by window in order), and `ppl = exp(mean_nll)`.
//!
//! The model is walked block by block: every window's hidden states pass through block
//! `i` before block `i + 1` is read, so one block's weights are in memory at a time (see
//! [`Model`]); each window is its own batch of one, as in a forward of that window alone,
//! so the values are those of [`Model::forward`] window by window. Then each window in
//! turn goes through the final norm and the chunked head to its log-likelihood, a few
//! positions at a time (each position's value depends on its own row of logits only).

use crate::error::{io_err, CandleContext, ModelError, Result};
use crate::model::Model;
use candle_core::{Device, Tensor, D};
use std::path::{Path, PathBuf};

/// Logits computed at once in the head phase (32 MiB of f32): positions are scored a few
/// at a time so that a window's logits over a large vocabulary never exist whole.
const LOGIT_VALUES: usize = 8 << 20;

/// The result of a perplexity evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perplexity {
    /// `exp(mean_nll)`.
    pub ppl: f64,
    /// Mean negative log-likelihood (nats) per scored token.
    pub mean_nll: f64,
    /// Tokens scored: `windows · (seq_len − 1)`.
    pub tokens: usize,
    /// Windows evaluated.
    pub windows: usize,
}

/// Reads an evaluation text: UTF-8, BOM dropped, line endings normalised to `\n`.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ModelError::NotFound { path: path.into() }
        } else {
            io_err(path)(e)
        }
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        ModelError::InvalidArgument(format!(
            "{}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    Ok(text.replace("\r\n", "\n").replace('\r', "\n"))
}

/// Perplexity of `model` on the text in `path` (see the module docs for the exact
/// procedure). `progress(done, total)` is called after each step of the walk: a window
/// through one block or through the head, `total = windows · (blocks + 1)`.
pub fn perplexity_of_file(
    model: &Model,
    path: &Path,
    seq_len: usize,
    max_windows: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    let text = read_text(path)?;
    let ids = model.encode(&text)?;
    perplexity_impl(model, &ids, path, seq_len, max_windows, progress)
}

/// Perplexity of `model` on token ids (windows and progress as in
/// [`perplexity_of_file`]).
pub fn perplexity(
    model: &Model,
    ids: &[u32],
    seq_len: usize,
    max_windows: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    perplexity_impl(
        model,
        ids,
        &PathBuf::from("<tokens>"),
        seq_len,
        max_windows,
        progress,
    )
}

fn perplexity_impl(
    model: &Model,
    ids: &[u32],
    path: &Path,
    seq_len: usize,
    max_windows: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Perplexity> {
    if seq_len < 2 || max_windows == 0 {
        return Err(ModelError::InvalidArgument(format!(
            "perplexity needs seq_len >= 2 and at least one window (got seq_len {seq_len}, windows {max_windows})"
        )));
    }
    let available = ids.len() / seq_len;
    if available == 0 {
        return Err(ModelError::TextTooShort {
            path: path.into(),
            tokens: ids.len(),
            seq_len,
        });
    }
    let windows = available.min(max_windows);
    let layers = model.num_layers();
    let steps = windows * (layers + 1);
    let window = |w: usize| &ids[w * seq_len..(w + 1) * seq_len];
    let mut hidden = (0..windows)
        .map(|w| model.embed(window(w), 1))
        .collect::<Result<Vec<_>>>()?;
    // The tables are not needed again until the logits: not held beside the blocks.
    model.release_tables();
    let mut done = 0;
    for l in 0..layers {
        for h in hidden.iter_mut() {
            *h = model.block_forward(l, h)?;
            done += 1;
            progress(done, steps);
        }
    }
    // The last block is not needed for the head: free it before the logits are made.
    model.drop_cached_block();
    let vocab = model.config().vocab_size.max(1);
    let rows = (LOGIT_VALUES / vocab).clamp(1, seq_len - 1);
    let mut total = 0f64;
    for (w, h) in hidden.into_iter().enumerate() {
        let targets = &window(w)[1..];
        // The logits of a few positions at a time: each position's log-likelihood
        // depends on its row alone, and the sum runs over positions in order as it would
        // over the whole window.
        let mut sum = 0f64;
        for start in (0..targets.len()).step_by(rows) {
            let n = rows.min(targets.len() - start);
            let part = h
                .narrow(1, start, n)
                .ctx(|| format!("window {w}: positions {start}..{}", start + n))?;
            let logits = model.logits(&part)?;
            sum = rows_nll(&logits, &targets[start..start + n], sum)?;
        }
        total += sum;
        done += 1;
        progress(done, steps);
    }
    model.release_tables();
    let tokens = windows * (seq_len - 1);
    let mean_nll = total / tokens as f64;
    Ok(Perplexity {
        ppl: mean_nll.exp(),
        mean_nll,
        tokens,
        windows,
    })
}

/// `sum` plus `-log p(target_t | prefix)` of each position in turn, from logits
/// `[1, n, vocab]` of `n` consecutive positions.
fn rows_nll(logits: &Tensor, targets: &[u32], sum: f64) -> Result<f64> {
    let n = targets.len();
    let f = || -> candle_core::Result<Vec<f32>> {
        let x = logits.squeeze(0)?.narrow(0, 0, n)?;
        let m = x.max_keepdim(D::Minus1)?;
        let lse = (x.broadcast_sub(&m)?.exp()?.sum_keepdim(D::Minus1)?.log()? + &m)?;
        let t = Tensor::from_slice(targets, (n, 1), &Device::Cpu)?;
        let picked = x.gather(&t, 1)?;
        (lse - picked)?.flatten_all()?.to_vec1::<f32>()
    };
    let v = f().ctx(|| "window log-likelihood".into())?;
    Ok(v.iter().fold(sum, |acc, &x| acc + x as f64))
}
