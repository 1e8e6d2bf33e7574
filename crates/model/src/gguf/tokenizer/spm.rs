//! SentencePiece vocabularies in GGUF (`tokenizer.ggml.model = "llama"`: `tokens`,
//! `scores`, `token_type`, byte pieces `<0xNN>`), as Gemma, Llama 2 and Phi-3 files
//! carry them, built into a Hugging Face [`Tokenizer`] as transformers' GGUF loader
//! builds it (`integrations/gguf/gguf_tokenizer_mapping.py`, the version the parity
//! fixtures are made with): a BPE model with byte fallback and fused unknowns whose merges
//! are recovered from the vocabulary (every split of a piece into two pieces, ranked by
//! the piece), and by architecture:
//!
//! - `gemma`, `gemma2`, `gemma3` (`GemmaTokenizer`): pieces of spaces only, which the file
//!   spells with real spaces, respelled with `▁`; merges ranked by position in the file,
//!   not by score; spaces replaced by `▁`, no prefix.
//! - `phi3`: merges ranked by score; a `▁` prepended to each run of text (around added
//!   tokens too) and spaces replaced by `▁`.
//! - any other (`LlamaTokenizer`): merges ranked by score; the Metaspace pre-tokenizer,
//!   prepending `▁` to the first run only.
//!
//! The decoders undo it: `▁` to spaces, bytes fused, and the prefix stripped where one is
//! added. Checked against transformers by `tests/fixtures/gguf_spm` (made by
//! `scripts/parity/make_spm_fixture.py`).

use super::super::meta::{gguf_err, Meta};
use super::tok_err;
use crate::error::Result;
use std::collections::HashMap;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormSequence};
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{DecoderWrapper, NormalizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// SentencePiece's word-boundary mark.
const SPACE: char = '\u{2581}';

/// How transformers treats the SentencePiece files of an architecture.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Gemma,
    Phi3,
    Llama,
}

/// The SentencePiece tokenizer of `tokenizer.ggml.*` for GGUF architecture `arch` (see
/// the module docs); `tokens` is `tokenizer.ggml.tokens`.
pub(super) fn spm_tokenizer(m: &Meta<'_>, arch: &str, tokens: &[&str]) -> Result<Tokenizer> {
    let terr = tok_err(m.path);
    let kind = match arch {
        "gemma" | "gemma2" | "gemma3" => Kind::Gemma,
        "phi3" => Kind::Phi3,
        _ => Kind::Llama,
    };
    let pieces: Vec<String> = tokens
        .iter()
        .map(|t| match kind {
            Kind::Gemma if !t.is_empty() && t.chars().all(|c| c == ' ') => {
                SPACE.to_string().repeat(t.chars().count())
            }
            _ => t.to_string(),
        })
        .collect();
    let ranks: Vec<f64> = match kind {
        Kind::Gemma => (0..pieces.len()).map(|i| -(i as f64)).collect(),
        _ => scores(m, pieces.len())?,
    };
    let vocab: Vocab = pieces
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let mut bpe = BPE::builder()
        .vocab_and_merges(vocab, merges(&pieces, &ranks))
        .fuse_unk(true)
        .byte_fallback(true);
    // GemmaTokenizer names its unknown token; LlamaTokenizer's model has none.
    if kind == Kind::Gemma && pieces.iter().any(|p| p == "<unk>") {
        bpe = bpe.unk_token("<unk>".into());
    }
    let mut tok = Tokenizer::new(bpe.build().map_err(terr)?);
    let space = SPACE.to_string();
    let replace = Replace::new(" ", space.as_str()).map_err(terr)?;
    match kind {
        Kind::Gemma => {
            tok.with_normalizer(Some(replace)).map_err(terr)?;
            let split = Split::new(
                SplitPattern::String(" ".into()),
                SplitDelimiterBehavior::MergedWithPrevious,
                false,
            )
            .map_err(terr)?;
            tok.with_pre_tokenizer(Some(split));
        }
        Kind::Phi3 => {
            let norms: Vec<NormalizerWrapper> =
                vec![Prepend::new(space.clone()).into(), replace.into()];
            tok.with_normalizer(Some(NormSequence::new(norms)))
                .map_err(terr)?;
        }
        Kind::Llama => {
            tok.with_pre_tokenizer(Some(Metaspace::new(SPACE, PrependScheme::First, false)));
        }
    }
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new(space.as_str(), " ").map_err(terr)?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if kind != Kind::Gemma {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tok)
}

/// `tokenizer.ggml.scores`, one per token (all 0 when absent, as llama.cpp reads it).
fn scores(m: &Meta<'_>, n: usize) -> Result<Vec<f64>> {
    let key = "tokenizer.ggml.scores";
    let Some(v) = m.get(key) else {
        return Ok(vec![0.0; n]);
    };
    let arr = v
        .to_vec()
        .map_err(|_| gguf_err(m.path, format!("metadata '{key}' is not an array")))?;
    if arr.len() != n {
        return Err(gguf_err(
            m.path,
            format!(
                "metadata '{key}' has {} entries, tokenizer.ggml.tokens has {n}",
                arr.len()
            ),
        ));
    }
    arr.iter().map(|x| m.num(x, key)).collect()
}

/// Merges recovered from a vocabulary, as transformers' `generate_merges` makes them:
/// for each piece (in first-occurrence order, with its last occurrence's rank), every
/// split into two pieces, ordered by the halves' ids; then all of them by the piece's
/// rank, then the halves' lengths, largest first, ties keeping that order.
fn merges(pieces: &[String], ranks: &[f64]) -> Vec<(String, String)> {
    let mut id: HashMap<&str, usize> = HashMap::with_capacity(pieces.len());
    let mut rank: HashMap<&str, f64> = HashMap::with_capacity(pieces.len());
    let mut order: Vec<&str> = Vec::with_capacity(pieces.len());
    for (i, (p, r)) in pieces.iter().zip(ranks).enumerate() {
        id.insert(p, i);
        if rank.insert(p, *r).is_none() {
            order.push(p);
        }
    }
    let mut all: Vec<(&str, &str, f64)> = Vec::new();
    for piece in order {
        let mut local: Vec<(&str, &str, f64)> = piece
            .char_indices()
            .skip(1)
            .map(|(i, _)| piece.split_at(i))
            .filter(|(l, r)| id.contains_key(l) && id.contains_key(r))
            .map(|(l, r)| (l, r, rank[piece]))
            .collect();
        local.sort_by_key(|(l, r, _)| (id[l], id[r]));
        all.extend(local);
    }
    let len = |s: &str| s.chars().count();
    all.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then(len(b.0).cmp(&len(a.0)))
            .then(len(b.1).cmp(&len(a.1)))
    });
    all.into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::tokenizer_from_gguf;
    use super::*;
    use candle_core::quantized::gguf_file::Value;
    use std::path::{Path, PathBuf};

    /// The vocabulary and transformers' ids of `tests/fixtures/gguf_spm/expected.json`.
    fn fixture() -> serde_json::Value {
        let path =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf_spm/expected.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn metadata(f: &serde_json::Value, arch: &str) -> HashMap<String, Value> {
        let arr = |k: &str, g: &dyn Fn(&serde_json::Value) -> Value| {
            Value::Array(f[k].as_array().unwrap().iter().map(g).collect())
        };
        HashMap::from([
            ("general.architecture".into(), Value::String(arch.into())),
            ("tokenizer.ggml.model".into(), Value::String("llama".into())),
            (
                "tokenizer.ggml.tokens".into(),
                arr("tokens", &|t| Value::String(t.as_str().unwrap().into())),
            ),
            (
                "tokenizer.ggml.scores".into(),
                arr("scores", &|s| Value::F32(s.as_f64().unwrap() as f32)),
            ),
            (
                "tokenizer.ggml.token_type".into(),
                arr("token_type", &|t| Value::I32(t.as_i64().unwrap() as i32)),
            ),
            ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
            ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
            ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ])
    }

    #[test]
    fn sentencepiece_files_tokenize_as_transformers_reads_them() {
        let f = fixture();
        let texts = f["texts"].as_array().unwrap();
        for arch in ["llama", "phi3", "gemma2"] {
            let md = metadata(&f, arch);
            let m = Meta {
                path: Path::new("t.gguf"),
                md: &md,
            };
            let tok = tokenizer_from_gguf(&m).unwrap();
            for (i, text) in texts.iter().enumerate() {
                let text = text.as_str().unwrap();
                let want: Vec<u32> = f["ids"][arch][i]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_u64().unwrap() as u32)
                    .collect();
                let got = tok.encode(text, false).unwrap().get_ids().to_vec();
                assert_eq!(got, want, "{arch}: ids of {text:?}");
                assert_eq!(
                    tok.decode(&got, false).unwrap(),
                    f["decoded"][arch][i].as_str().unwrap(),
                    "{arch}: decoding of {text:?}"
                );
            }
        }
    }

    #[test]
    fn merges_rank_by_piece_then_longer_halves() {
        let pieces: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"]
            .map(String::from)
            .to_vec();
        // "abc" ranks first and splits two ways, equal lengths sum: the longer left half
        // first ("ab" + "c"), then "a" + "bc".
        let m = merges(&pieces, &[0.0, 0.0, 0.0, -1.0, -2.0, -0.5]);
        let m: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(m, [("ab", "c"), ("a", "bc"), ("a", "b"), ("b", "c")]);
    }
}
