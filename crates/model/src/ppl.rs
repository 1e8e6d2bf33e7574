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
//!   (accumulated in f64), and `ppl = exp(mean_nll)`.

use crate::error::{io_err, CandleContext, ModelError, Result};
use crate::model::Model;
use candle_core::{Device, Tensor, D};
use std::path::{Path, PathBuf};

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
/// procedure). `progress(done, total)` is called after each window.
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

/// Perplexity of `model` on token ids (windows as in [`perplexity_of_file`]).
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
    let mut total = 0f64;
    for w in 0..windows {
        let win = &ids[w * seq_len..(w + 1) * seq_len];
        let logits = model.forward(win, 1)?;
        total += window_nll(&logits, &win[1..])?;
        progress(w + 1, windows);
    }
    let tokens = windows * (seq_len - 1);
    let mean_nll = total / tokens as f64;
    Ok(Perplexity {
        ppl: mean_nll.exp(),
        mean_nll,
        tokens,
        windows,
    })
}

/// Sum of `-log p(target_t | prefix)` over a window, from logits `[1, L, vocab]`.
fn window_nll(logits: &Tensor, targets: &[u32]) -> Result<f64> {
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
    Ok(v.iter().map(|&x| x as f64).sum())
}
