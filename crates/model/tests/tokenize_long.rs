//! A long text tokenized in pieces gives the ids of tokenizing it whole: on the real
//! calibration and evaluation texts with SmolLM2's tokenizer (pieces and seams used), and
//! with a tokenizer whose seams fail the check (the whole-text fallback).

mod common;

use sparseswaps_model::tokenize::{encode_long, encode_pieces, PIECE_BYTES};
use sparseswaps_model::{load, read_text, Tokenizer};
use std::path::Path;

fn whole(tok: &Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text, false).unwrap().get_ids().to_vec()
}

#[test]
fn brown_and_moby_dick_in_pieces_equal_whole() {
    let Some(a) = common::assets() else { return };
    let model = load(&a.gguf).unwrap();
    for path in [&a.brown, &a.moby_dick] {
        let text = read_text(path).unwrap();
        assert!(
            text.len() > 4 * PIECE_BYTES,
            "{}: too short to need pieces",
            path.display()
        );
        // The pieces are used (every seam passes its check), not the fallback.
        let pieces = encode_pieces(model.tokenizer(), &text)
            .unwrap()
            .unwrap_or_else(|| panic!("{}: a seam failed its check", path.display()));
        assert_eq!(
            pieces,
            whole(model.tokenizer(), &text),
            "{}",
            path.display()
        );
        assert_eq!(model.encode(&text).unwrap(), pieces);
    }
}

#[test]
fn a_tokenizer_that_joins_lines_falls_back_to_the_whole_text() {
    // Gemma's SentencePiece fixture tokenizer (Metaspace), and the byte-level BPE of the
    // Llama fixture: whatever each does at a seam, the ids are those of the whole text.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let line = "Pruning keeps the weights that matter most.\nSwaps fix the rest of them.\n";
    let text = line.repeat(3 * PIECE_BYTES / line.len());
    for dir in ["parity/llama/model", "parity/gemma2/model"] {
        let tok = Tokenizer::from_file(fixtures.join(dir).join("tokenizer.json")).unwrap();
        assert_eq!(
            encode_long(&tok, &text).unwrap(),
            whole(&tok, &text),
            "{dir}"
        );
    }
}
