//! The tokenizer of a GGUF file: a Hugging Face [`Tokenizer`] built from the
//! `tokenizer.ggml.*` metadata, set up as the model's `tokenizer.json` would be: byte-level
//! BPE (`gpt2`) here, SentencePiece (`llama`) in [`spm`].

mod spm;

use super::meta::{gguf_err, Meta};
use crate::error::{ModelError, Result};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::byte_level::ByteLevel as ByteLevelProcessor;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// The pre-tokenizer regexes of the tokenizers llama.cpp labels `llama-bpe` (Llama 3)
/// and `qwen2`, as written in their `tokenizer.json` files.
const REGEX_LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const REGEX_QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

fn split(path: &Path, regex: &str) -> Result<PreTokenizerWrapper> {
    Split::new(
        SplitPattern::Regex(regex.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map(Into::into)
    .map_err(|e| ModelError::Tokenizer {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// Builds a byte-level BPE tokenizer from `tokenizer.ggml.*`, set up as the model's
/// Hugging Face `tokenizer.json` is for the pre-tokenizers llama.cpp knows by name
/// (`tokenizer.ggml.pre`): `smollm` (and the StarCoder family) split digits one by one
/// before GPT-2's byte-level regex; `gpt2` uses the byte-level regex alone; `llama-bpe`
/// and `qwen2` use their own split regexes. No BOS is added on encoding unless
/// `tokenizer.ggml.add_bos_token` says so.
pub(super) fn tokenizer_from_gguf(m: &Meta<'_>) -> Result<Tokenizer> {
    let path = m.path;
    let terr = tok_err(path);
    let kind = m.opt_str("tokenizer.ggml.model").unwrap_or("");
    if kind == "llama" {
        let tokens = m.strings("tokenizer.ggml.tokens")?;
        let arch = m.opt_str("general.architecture").unwrap_or("");
        let mut tok = spm::spm_tokenizer(m, arch, &tokens)?;
        add_control_tokens(m, &tokens, &mut tok, false)?;
        add_bos(m, &tokens, &mut tok)?;
        return Ok(tok);
    }
    if kind != "gpt2" {
        return Err(ModelError::Unsupported {
            path: path.into(),
            what: format!("tokenizer model '{kind}' in tokenizer.ggml.model (supported: gpt2, byte-level BPE; llama, SentencePiece)"),
        });
    }
    let tokens = m.strings("tokenizer.ggml.tokens")?;
    let vocab: Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.to_string(), i as u32))
        .collect();
    let merges = m
        .strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|s| {
            s.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| {
                    gguf_err(
                        path,
                        format!("tokenizer.ggml.merges entry '{s}' has no space"),
                    )
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let pre = m.opt_str("tokenizer.ggml.pre").unwrap_or("gpt2");
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        // Llama 3's tokenizer.json sets ignore_merges: whole-word vocabulary hits win.
        .ignore_merges(pre == "llama-bpe" || pre == "llama3")
        .build()
        .map_err(terr)?;
    let mut tok = Tokenizer::new(bpe);
    let pre_tok = pre_tokenizer(path, pre, &mut tok)?;
    tok.with_pre_tokenizer(Some(pre_tok));
    tok.with_decoder(Some(ByteLevelDecoder::default()));
    tok.with_post_processor(Some(ByteLevelProcessor::new(true, false, true)));

    add_control_tokens(m, &tokens, &mut tok, true)?;
    add_bos(m, &tokens, &mut tok)?;
    Ok(tok)
}

/// A tokenizer error on `path`.
fn tok_err(path: &Path) -> impl Fn(tokenizers::Error) -> ModelError + Copy + '_ {
    move |e| ModelError::Tokenizer {
        path: path.into(),
        reason: e.to_string(),
    }
}

/// The pre-tokenizer llama.cpp names `pre` (`tokenizer.ggml.pre`); Qwen2's also sets
/// the NFC normalizer on `tok`.
fn pre_tokenizer(path: &Path, pre: &str, tok: &mut Tokenizer) -> Result<PreTokenizerWrapper> {
    let terr = tok_err(path);
    Ok(match pre {
        "smollm" | "starcoder" | "refact" | "codeshell" => Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])
        .into(),
        "gpt2" | "default" => ByteLevel::new(false, true, true).into(),
        "llama-bpe" | "llama3" => Sequence::new(vec![
            split(path, REGEX_LLAMA3)?,
            ByteLevel::new(false, true, false).into(),
        ])
        .into(),
        "qwen2" => {
            tok.with_normalizer(Some(NFC)).map_err(terr)?;
            Sequence::new(vec![
                split(path, REGEX_QWEN2)?,
                ByteLevel::new(false, false, false).into(),
            ])
            .into()
        }
        other => {
            return Err(ModelError::Unsupported {
                path: path.into(),
                what: format!("pre-tokenizer '{other}' in tokenizer.ggml.pre (supported: smollm, starcoder, gpt2, llama-bpe, qwen2)"),
            })
        }
    })
}

/// Control (3) and user-defined (4) tokens are matched whole before BPE, as HF's
/// added tokens are; control tokens are special (skipped by decode when asked).
/// User-defined ones are matched in the normalized text when `normalize_user`, else
/// in the raw text, as transformers adds them to SentencePiece vocabularies (so text
/// around them is normalized as runs of its own: Phi-3's prefix applies to each).
fn add_control_tokens(
    m: &Meta<'_>,
    tokens: &[&str],
    tok: &mut Tokenizer,
    normalize_user: bool,
) -> Result<()> {
    let path = m.path;
    let terr = tok_err(path);
    if let Some(types) = m.get("tokenizer.ggml.token_type") {
        let types = types
            .to_vec()
            .map_err(|_| gguf_err(path, "metadata 'tokenizer.ggml.token_type' is not an array"))?;
        let mut added = Vec::new();
        for (i, v) in types.iter().enumerate() {
            let ty = m.num(v, "tokenizer.ggml.token_type")? as u32;
            if ty == 3 || ty == 4 {
                if let Some(t) = tokens.get(i) {
                    let t = AddedToken::from(t.to_string(), ty == 3);
                    added.push(if ty == 4 && !normalize_user {
                        t.normalized(false)
                    } else {
                        t
                    });
                }
            }
        }
        let (special, normal): (Vec<_>, Vec<_>) = added.into_iter().partition(|t| t.special);
        tok.add_special_tokens(special).map_err(terr)?;
        tok.add_tokens(normal).map_err(terr)?;
    }
    Ok(())
}

/// Prepends BOS on encoding when `tokenizer.ggml.add_bos_token` is true.
fn add_bos(m: &Meta<'_>, tokens: &[&str], tok: &mut Tokenizer) -> Result<()> {
    let path = m.path;
    if m.get("tokenizer.ggml.add_bos_token")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(false)
    {
        if let Some(bos) = m
            .opt_u32("tokenizer.ggml.bos_token_id")?
            .and_then(|i| tokens.get(i as usize))
        {
            let tp = TemplateProcessing::builder()
                .try_single(format!("{bos} $A"))
                .and_then(|b| b.try_pair(format!("{bos} $A {bos} $B")))
                .map_err(|e| gguf_err(path, format!("BOS template: {e}")))?
                .special_tokens(vec![(
                    bos.to_string(),
                    m.opt_u32("tokenizer.ggml.bos_token_id")?.unwrap_or(0),
                )])
                .build()
                .map_err(|e| gguf_err(path, format!("BOS template: {e}")))?;
            tok.with_post_processor(Some(tp));
        }
    }
    Ok(())
}
