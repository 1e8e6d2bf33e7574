//! The text a run works on: its inputs checksummed, the calibration text tokenised and
//! drawn into windows, the evaluation text tokenised, and perplexity evaluation.

use crate::config::PipelineConfig;
use crate::error::{io_err as io, PipelineError, Result};
use crate::events::{Event, Events};
use crate::report::{InputChecksum, PplReport};
use sha2::{Digest, Sha256};
use sparseswaps_model::Model;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The input files of a run: the model, the calibration text and the evaluation text.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// A GGUF file or Hugging Face directory.
    pub model: PathBuf,
    /// The calibration text.
    pub calibration: PathBuf,
    /// The evaluation text, when the config evaluates.
    pub eval: Option<PathBuf>,
}

impl Inputs {
    /// The inputs of `cfg` (paths expanded), each checked to exist.
    pub fn of(cfg: &PipelineConfig) -> Result<Inputs> {
        use crate::config::expand_path;
        let inputs = Inputs {
            model: expand_path(&cfg.model.path),
            calibration: expand_path(&cfg.calibration.text),
            eval: cfg.eval.as_ref().map(|e| expand_path(&e.text)),
        };
        for p in inputs.paths() {
            if !p.exists() {
                return Err(PipelineError::Input(format!(
                    "{}: no such file or directory",
                    p.display()
                )));
            }
        }
        Ok(inputs)
    }

    fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        [
            Some(&self.model),
            Some(&self.calibration),
            self.eval.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// The sha256 of every input, for the report and the checkpoint.
    pub fn checksums(&self) -> Result<Vec<InputChecksum>> {
        self.paths()
            .map(|p| {
                Ok(InputChecksum {
                    path: p.display().to_string(),
                    sha256: sha256_path(p)?,
                })
            })
            .collect()
    }
}

/// Token ids of the calibration windows and of the evaluation text.
#[derive(Debug, Clone)]
pub struct Texts {
    /// The calibration windows, concatenated (`samples · seq_len` tokens).
    pub calibration: Vec<u32>,
    /// The whole evaluation text, when the config evaluates.
    pub eval: Option<Vec<u32>>,
}

/// Tokenises the calibration text (and draws its windows) and the evaluation text.
pub fn tokenize(model: &Model, cfg: &PipelineConfig, inputs: &Inputs) -> Result<Texts> {
    let c = &cfg.calibration;
    let calib_path = &inputs.calibration;
    let calib_text = sparseswaps_model::read_text(calib_path)?;
    let calib_ids = model.encode(&calib_text)?;
    let calibration = draw_windows(&calib_ids, c.samples, c.seq_len, c.seed).ok_or_else(|| {
        PipelineError::Input(format!(
            "calibration text {} has {} tokens: too short for {} samples of {} tokens",
            calib_path.display(),
            calib_ids.len(),
            c.samples,
            c.seq_len
        ))
    })?;
    let eval = match (&cfg.eval, &inputs.eval) {
        (Some(e), Some(p)) => {
            let ids = model.encode(&sparseswaps_model::read_text(p)?)?;
            if ids.len() < e.seq_len {
                return Err(PipelineError::Input(format!(
                    "evaluation text {} has {} tokens: shorter than one window of {}",
                    p.display(),
                    ids.len(),
                    e.seq_len
                )));
            }
            Some(ids)
        }
        _ => None,
    };
    Ok(Texts { calibration, eval })
}

/// Perplexity of `model` on the evaluation text of `texts`, when the config evaluates;
/// `label` is `dense` or `pruned`.
pub fn evaluate(
    model: &Model,
    cfg: &PipelineConfig,
    texts: &Texts,
    label: &str,
    events: Events<'_>,
) -> Result<Option<PplReport>> {
    match (&cfg.eval, &texts.eval) {
        (Some(e), Some(ids)) => eval_ppl(model, ids, e.seq_len, e.windows, label, events).map(Some),
        _ => Ok(None),
    }
}

/// sha256 of a file, or of every file of a directory (sorted by name, names included).
pub fn sha256_path(path: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let mut files = Vec::new();
    if path.is_dir() {
        for e in std::fs::read_dir(path).map_err(io(path))? {
            let p = e.map_err(io(path))?.path();
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    for f in files {
        if path.is_dir() {
            h.update(
                f.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .as_bytes(),
            );
        }
        let mut file = std::fs::File::open(&f).map_err(io(&f))?;
        std::io::copy(&mut file, &mut h).map_err(io(&f))?;
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Draws `samples` distinct non-overlapping windows of `seq_len` tokens (seeded), and
/// returns them concatenated.
pub fn draw_windows(ids: &[u32], samples: usize, seq_len: usize, seed: u64) -> Option<Vec<u32>> {
    let slots = ids.len() / seq_len;
    if slots < samples {
        return None;
    }
    // Partial Fisher–Yates over slot indices with SplitMix64: reproducible everywhere.
    let mut order: Vec<usize> = (0..slots).collect();
    let mut state = seed ^ 0x5EED_5EED_5EED_5EED;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in 0..samples {
        let j = i + (next() % (slots - i) as u64) as usize;
        order.swap(i, j);
    }
    let mut out = Vec::with_capacity(samples * seq_len);
    for &s in &order[..samples] {
        out.extend_from_slice(&ids[s * seq_len..(s + 1) * seq_len]);
    }
    Some(out)
}

/// Perplexity of `model` on `ids` (consecutive windows), walked block by block so that one
/// block's weights are read at a time; the events count windows.
fn eval_ppl(
    model: &Model,
    ids: &[u32],
    seq_len: usize,
    windows: usize,
    label: &str,
    events: Events<'_>,
) -> Result<PplReport> {
    let t = Instant::now();
    events(Event::EvalStart {
        label: label.into(),
        windows: windows.min(ids.len() / seq_len),
    });
    // The model is walked block by block, reporting steps (a window through a block or
    // the head); the bar counts windows, so one window's worth of steps is one tick.
    let mut ticks = 0;
    let p = sparseswaps_model::perplexity(model, ids, seq_len, windows, &mut |done, total| {
        let now = done * windows.min(ids.len() / seq_len) / total.max(1);
        while ticks < now {
            ticks += 1;
            events(Event::EvalWindow);
        }
    })?;
    events(Event::EvalDone {
        label: label.into(),
        ppl: p.ppl,
    });
    Ok(PplReport {
        ppl: p.ppl,
        mean_nll: p.mean_nll,
        tokens: p.tokens,
        windows: p.windows,
        seconds: t.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_distinct_and_seeded() {
        let ids: Vec<u32> = (0..1000).collect();
        let a = draw_windows(&ids, 5, 100, 1).unwrap();
        assert_eq!(a, draw_windows(&ids, 5, 100, 1).unwrap());
        assert_ne!(a, draw_windows(&ids, 5, 100, 2).unwrap());
        let mut starts: Vec<u32> = a.chunks(100).map(|w| w[0]).collect();
        assert!(a.chunks(100).all(|w| w[0] % 100 == 0 && w[99] == w[0] + 99));
        starts.sort();
        starts.dedup();
        assert_eq!(starts.len(), 5);
        assert!(draw_windows(&ids, 11, 100, 0).is_none());
    }
}
