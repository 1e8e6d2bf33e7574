"""What the lm-eval tasks on local data share: an even sample of the usable examples, and
a task directory (`NAME.jsonl` and the `NAME.yaml` lm-eval reads with `--include_path`)."""

import json
import sys


def evenly_spaced(found, n, source, what):
    """`n` items of `found`, evenly spaced; exits naming `source` when there are fewer."""
    if len(found) < n:
        sys.exit(f"{source}: only {len(found)} usable {what}, {n} asked for")
    step = len(found) / n
    return [found[int(i * step)] for i in range(n)]


def write_task(out, name, docs, body):
    """Writes `docs` as `out/NAME.jsonl` and the task definition `out/NAME.yaml`: the
    local data source, then `body` (output type, prompts and metrics, as YAML lines)."""
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"{name}.jsonl"
    data.write_text("".join(json.dumps(x) + "\n" for x in docs), encoding="utf-8")
    (out / f"{name}.yaml").write_text(
        f"""task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data.resolve()}
test_split: test
{body}metadata:
  version: 1.0
""",
        encoding="utf-8",
    )
