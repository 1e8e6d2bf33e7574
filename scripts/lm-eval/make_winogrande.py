"""Writes an lm-evaluation-harness WinoGrande task over local data, for machines that
cannot reach the Hugging Face hub (where lm-eval's `winogrande` fetches its data).

usage: make_winogrande.py TASK_JSON OUT_DIR [PAIRS]

TASK_JSON is BIG-bench's `natural_instructions/subtask029_winogrande_full_object/task.json`
(the PyPI package `bigbench==1.0.0` ships it): WinoGrande twin sentences about two objects,
4,500 pairs, each with the answer of each twin. Each pair gives two WinoGrande examples
(the same two options, opposite answers). PAIRS (default 500) pairs are taken evenly
spaced. OUT_DIR gets `winogrande_local.jsonl` in WinoGrande's own fields (sentence,
option1, option2, answer), `winogrande_local.yaml`, and a copy of lm-eval's own
`preprocess_winogrande.py`, so the scoring is lm-eval's `winogrande` (partial evaluation:
the sentence up to the blank with each option as context, the rest as continuation).
Run it with the Python that has lm_eval installed.
"""

import json
import re
import shutil
import sys
from pathlib import Path

from local_task import evenly_spaced, write_task

try:
    import lm_eval.tasks.winogrande.preprocess_winogrande as lm_eval_winogrande
except ImportError as e:
    sys.exit(f"make_winogrande.py: lm_eval's winogrande task is needed ({e}); run it with the Python that has lm_eval")

PAIR = re.compile(
    r"Sentence 1:\s*(?P<s1>.+?)\s*\nAnswer1:\s*(?P<a1>.+?)\.?\s*\n"
    r"Sentence 2:\s*(?P<s2>.+?)\s*\nAnswer2:\s*(?P<a2>.+?)\.?\s*$",
    re.S,
)


def pairs(task):
    for example in task["examples"]:
        m = PAIR.match(example["target"][0].strip())
        if not m:
            continue
        s1, s2 = m["s1"].strip(), m["s2"].strip()
        a1, a2 = m["a1"].strip(), m["a2"].strip()
        # WinoGrande's form: one blank per sentence, two different options.
        if s1.count("_") != 1 or s2.count("_") != 1 or a1.lower() == a2.lower():
            continue
        yield [
            {"sentence": s1, "option1": a1, "option2": a2, "answer": "1"},
            {"sentence": s2, "option1": a1, "option2": a2, "answer": "2"},
        ]


def main():
    task_path, out = Path(sys.argv[1]), Path(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    found = list(pairs(json.loads(task_path.read_text(encoding="utf-8"))))
    chosen = [doc for pair in evenly_spaced(found, n, task_path, "sentence pairs") for doc in pair]
    write_task(
        out,
        "winogrande_local",
        chosen,
        """output_type: multiple_choice
doc_to_text: !function preprocess_winogrande.doc_to_text
doc_to_target: !function preprocess_winogrande.doc_to_target
doc_to_choice: !function preprocess_winogrande.doc_to_choice
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
""",
    )
    shutil.copy(lm_eval_winogrande.__file__, out / "preprocess_winogrande.py")
    print(f"{len(chosen)} examples from {n} of {len(found)} usable pairs -> {out}")


if __name__ == "__main__":
    main()
