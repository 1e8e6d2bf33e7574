"""Writes an lm-evaluation-harness task over local data: last-word prediction (LAMBADA's
form) on sentences of the evaluation text, for machines that cannot reach the Hugging
Face hub, where lm-eval's standard tasks (hellaswag, arc_easy, ...) fetch their data.

usage: make_task.py TEXT OUT_DIR [N]

OUT_DIR gets `sentences_lastword.jsonl` (N examples, default 500, evenly spaced over the
text, each {"context": ..., "target": " word"}) and `sentences_lastword.yaml`, the task
definition lm-eval reads with `--include_path OUT_DIR --tasks sentences_lastword`.
"""

import re
import sys
from pathlib import Path

from local_task import evenly_spaced, write_task


def sentences(text):
    text = re.sub(r"\s+", " ", text)
    for s in re.split(r"(?<=[.!?])\s+", text):
        words = s.split(" ")
        if not 10 <= len(words) <= 40:
            continue
        last = words[-1].rstrip(".!?\"'")
        # A plain lowercase word: not a name or a number, so the context decides it.
        if not re.fullmatch(r"[a-z]{3,}", last):
            continue
        yield {"context": " ".join(words[:-1]), "target": " " + last}


def main():
    text_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    found = list(sentences(text_path.read_text(encoding="utf-8")))
    chosen = evenly_spaced(found, n, text_path, "sentences")
    write_task(
        out,
        "sentences_lastword",
        chosen,
        """output_type: loglikelihood
doc_to_text: "{{context}}"
doc_to_target: "{{target}}"
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
""",
    )
    print(f"{len(chosen)} examples of {len(found)} usable sentences -> {out}")


if __name__ == "__main__":
    main()
