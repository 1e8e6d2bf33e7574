"""SentencePiece vocabularies as GGUF files carry them (`tokenizer.ggml.model = "llama"`),
tokenized by transformers' GGUF tokenizer builder, for `crates/model/src/gguf/tokenizer/spm.rs`.

Run by developers in the parity virtual environment (see make_fixtures.py), not by CI:

    python scripts/parity/make_spm_fixture.py crates/model/tests/fixtures/gguf_spm/expected.json

A small vocabulary is made from a training text (its characters and frequent word pieces,
scores with ties, the byte pieces, three control tokens, one user-defined token and a
Gemma-style all-space token); transformers builds the tokenizer for each architecture whose
SentencePiece files it treats differently (`llama`: Metaspace and score-ranked merges;
`phi3`: a prepend normalizer; `gemma2`: no prefix, position-ranked merges); the ids of a few
texts (unknown characters, repeated spaces, a leading space, control and user-defined
tokens) and their decoding are written.
"""

import collections
import json
import sys

import transformers
from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer

TRAIN = (
    "Pruning keeps the weights that matter most. The swaps exchange one kept weight for one "
    "pruned weight when the loss falls. Moby Dick is a whale; the whale is white, and the sea "
    "is wide. Call me Ishmael. Some years ago, never mind how long precisely, having little "
    "or no money in my purse, I thought I would sail about a little and see the watery part "
    "of the world.\n"
)
TEXTS = [
    "Pruning keeps the weights that matter most.",
    " Call me Ishmael.  Two  spaces and   three.",
    "naïve café: 日本 whale — 42 ø",
    "the <think>whale</think> is</s> white\nand wide",
    "",
]
ARCHS = ["llama", "phi3", "gemma2"]


def vocabulary():
    tokens = ["<unk>", "<s>", "</s>"]
    types = [2, 3, 3]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    tokens += ["<think>", "</think>", "  "]
    types += [4, 4, 1]
    chars = sorted(set(TRAIN.replace(" ", "\u2581")) - {"\n"})
    counts = collections.Counter()
    for word in TRAIN.replace("\n", " ").split(" "):
        w = "\u2581" + word
        for i in range(len(w)):
            for j in range(i + 2, min(len(w), i + 6) + 1):
                counts[w[i:j]] += 1
    pieces = [p for p, c in counts.most_common() if c > 1 and p not in chars][:300]
    start = len(tokens)
    tokens += chars + pieces
    types += [1] * (len(chars) + len(pieces))
    # Scores with ties (three pieces a score): the merge order must break them as
    # transformers does. Specials and bytes score 0, as llama.cpp's converter writes them.
    scores = [0.0] * start + [-float(1 + i // 3) for i in range(len(tokens) - start)]
    return tokens, scores, types


def main(out):
    tokens, scores, types = vocabulary()
    result = {
        "transformers": transformers.__version__,
        "tokens": tokens,
        "scores": scores,
        "token_type": types,
        "texts": TEXTS,
        "ids": {},
        "decoded": {},
    }
    for arch in ARCHS:
        tok, _ = convert_gguf_tokenizer(
            arch,
            {
                "tokenizer_type": "llama",
                "tokens": tokens,
                "scores": scores,
                "token_type": types,
                "unk_token_id": 0,
                "bos_token_id": 1,
                "eos_token_id": 2,
            },
        )
        ids = [tok.encode(t, add_special_tokens=False).ids for t in TEXTS]
        result["ids"][arch] = ids
        result["decoded"][arch] = [tok.decode(i, skip_special_tokens=False) for i in ids]
    with open(out, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
