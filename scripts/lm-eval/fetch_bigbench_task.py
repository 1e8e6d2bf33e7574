"""Downloads one task file of BIG-bench from its PyPI package, for lm-eval tasks on local
data (the Hugging Face hub, where lm-eval's tasks fetch theirs, is unreachable here).

usage: fetch_bigbench_task.py bigbench==VERSION TASK_PATH OUT_FILE

TASK_PATH is relative to the package's `bigbench/benchmark_tasks/`. The sdist is
streamed from PyPI (its address from PyPI's JSON API) and only that file is kept;
`pip download` cannot be used, since preparing the sdist's metadata fails.
"""

import json
import sys
import tarfile
import urllib.request
from pathlib import Path


def main():
    package, task_path, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    name, version = package.split("==")
    with urllib.request.urlopen(f"https://pypi.org/pypi/{name}/json") as r:
        files = json.load(r)["releases"].get(version, [])
    urls = [f["url"] for f in files if f["packagetype"] == "sdist"]
    if not urls:
        sys.exit(f"{package}: no sdist on PyPI")
    member = f"{name}-{version}/bigbench/benchmark_tasks/{task_path}"
    with urllib.request.urlopen(urls[0]) as r, tarfile.open(fileobj=r, mode="r|gz") as tar:
        for entry in tar:
            if entry.name == member:
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".partial")
                tmp.write_bytes(tar.extractfile(entry).read())
                tmp.rename(out)
                print(f"{member} -> {out}")
                return
    sys.exit(f"{package}: no {member} in its sdist")


if __name__ == "__main__":
    main()
