//! Tokenizing a long text in pieces, with the ids of tokenizing it whole.
//!
//! Why: the `tokenizers` crate keeps, for a whole text, every token's string, offsets
//! and masks and the normalized text's alignments; on the 6 MB Brown corpus that peaks
//! near 0.9 GB, more than everything else a SmolLM2 run holds. Pieces of
//! [`PIECE_BYTES`] bound that to tens of MB.
//!
//! Exactness: pieces end at seams where pre-tokenizers split anyway (just after a `\n`
//! standing between two visible ASCII characters), and every seam is then checked: the
//! text around it ([`CHECK_BYTES`] each side of a checked region of [`REGION_BYTES`]) is
//! tokenized in one go and its tokens starting inside the region must equal the pieces'
//! tokens starting there, ids and offsets. A tokenizer decides a token from nearby text
//! only, so a seam that passes is invisible in the whole text's tokens. If any seam
//! fails (a tokenizer that merges across lines, a `Metaspace` prepending to the first
//! word of each piece), the whole text is tokenized at once instead: the ids are always
//! those of one `encode` of the whole text.

use tokenizers::Tokenizer;

/// Bytes per piece (a seam is placed at the first safe point after each multiple).
pub const PIECE_BYTES: usize = 256 * 1024;
/// Bytes each side of a seam whose tokens must agree.
pub const REGION_BYTES: usize = 256;
/// Extra context each side of the region when it is re-tokenized.
pub const CHECK_BYTES: usize = 1024;

/// A token: id and absolute byte offsets in the text.
type Tok = (u32, usize, usize);

fn encode_at(tok: &Tokenizer, text: &str, base: usize) -> tokenizers::Result<Vec<Tok>> {
    let e = tok.encode(text, false)?;
    Ok(e.get_ids()
        .iter()
        .zip(e.get_offsets())
        .map(|(&id, &(s, t))| (id, base + s, base + t))
        .collect())
}

/// Seams: byte positions just after a `\n` between two visible ASCII characters, the
/// first such at or after every multiple of [`PIECE_BYTES`].
fn seams(text: &str) -> Vec<usize> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut at = PIECE_BYTES;
    while at + PIECE_BYTES / 2 < b.len() {
        let found = (at.max(2)..b.len().min(at + PIECE_BYTES))
            .find(|&i| b[i - 1] == b'\n' && b[i - 2].is_ascii_graphic() && b[i].is_ascii_graphic());
        match found {
            Some(i) => {
                out.push(i);
                at = i + PIECE_BYTES;
            }
            None => at += PIECE_BYTES,
        }
    }
    out
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The tokens of `toks` that start in `[lo, hi)`.
fn starting_in(toks: &[Tok], lo: usize, hi: usize) -> Vec<Tok> {
    toks.iter()
        .copied()
        .filter(|t| t.1 >= lo && t.1 < hi)
        .collect()
}

/// Whether the seam at `s` leaves the tokens around it as one `encode` makes them.
fn seam_holds(tok: &Tokenizer, text: &str, s: usize, pieces: &[Tok]) -> tokenizers::Result<bool> {
    let (lo, hi) = (
        s.saturating_sub(REGION_BYTES),
        (s + REGION_BYTES).min(text.len()),
    );
    let a = floor_boundary(text, lo.saturating_sub(CHECK_BYTES));
    let b = floor_boundary(text, (hi + CHECK_BYTES).min(text.len()));
    let around = encode_at(tok, &text[a..b], a)?;
    Ok(starting_in(&around, lo, hi) == starting_in(pieces, lo, hi))
}

/// The ids of `tok.encode(text, false)`, computed piece by piece when the text is long
/// (see the module docs).
pub fn encode_long(tok: &Tokenizer, text: &str) -> tokenizers::Result<Vec<u32>> {
    match encode_pieces(tok, text)? {
        Some(ids) => Ok(ids),
        None => Ok(tok.encode(text, false)?.get_ids().to_vec()),
    }
}

/// The ids of `text` tokenized in pieces, `None` when the text needs no pieces or a seam
/// fails its check (then only the whole text gives the right ids).
pub fn encode_pieces(tok: &Tokenizer, text: &str) -> tokenizers::Result<Option<Vec<u32>>> {
    let cuts = seams(text);
    if cuts.is_empty() {
        return Ok(None);
    }
    let mut ids = Vec::new();
    let mut start = 0;
    // Tokens near the previous seam, kept until that seam is checked.
    let mut prev_tail: Vec<Tok> = Vec::new();
    for (k, &end) in cuts.iter().chain(std::iter::once(&text.len())).enumerate() {
        let toks = encode_at(tok, &text[start..end], start)?;
        if k > 0 {
            let s = start;
            let mut near = std::mem::take(&mut prev_tail);
            near.extend(starting_in(&toks, s, s + REGION_BYTES));
            if !seam_holds(tok, text, s, &near)? {
                return Ok(None);
            }
        }
        prev_tail = starting_in(&toks, end.saturating_sub(REGION_BYTES), end);
        ids.extend(toks.iter().map(|t| t.0));
        start = end;
    }
    Ok(Some(ids))
}
