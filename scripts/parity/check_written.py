#!/usr/bin/env python3
"""Perplexity of a written Hugging Face directory as transformers computes it, by the
rules of `sparseswaps eval` (crates/model/src/ppl.rs): consecutive windows of `seq_len`
tokens from the start of the text (a partial last window dropped, at most `windows`),
tokens 2..seq_len of each predicted from their prefix, mean NLL over all of them.

Checks that a pruned model written by `sparseswaps run` loads in transformers and scores
as the run's report says. Developers only, in the virtual environment of
make_fixtures.py:

    /tmp/venv-parity/bin/python scripts/parity/check_written.py OUT/model TEXT \\
        --seq-len 64 --windows 8
"""

import argparse
import math

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--windows", type=int, default=64)
    a = ap.parse_args()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=f"{a.model}/tokenizer.json")
    model = transformers.AutoModelForCausalLM.from_pretrained(
        a.model, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids = tok(open(a.text, encoding="utf-8").read(), add_special_tokens=False).input_ids
    n = min(a.windows, len(ids) // a.seq_len)
    nll, count = 0.0, 0
    with torch.no_grad():
        for w in range(n):
            win = torch.tensor([ids[w * a.seq_len : (w + 1) * a.seq_len]])
            logits = model(input_ids=win).logits[0, :-1].double()
            nll += torch.nn.functional.cross_entropy(
                logits, win[0, 1:], reduction="sum"
            ).item()
            count += a.seq_len - 1
    print(f"{type(model).__name__}: perplexity {math.exp(nll / count):.4f} over {count} tokens")


if __name__ == "__main__":
    main()
