#!/usr/bin/env bash
# Checks the documentation against the tree, for CI:
# - the README's test command (the first ```sh block that runs `cargo test`) is the one
#   .ci/run runs;
# - every relative link in a tracked Markdown file resolves inside the clone (file and
#   #anchor), and nothing points outside it (`../shared/...`, absolute paths);
# - the crate graph in docs/architecture.md is current (scripts/crate-graph.sh --check).
# Exits 1 with one line per problem. Needs bash, git and python3 (3.11+).
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
python3 - <<'PY' || status=1
import pathlib, re, subprocess, sys

problems = []

# 1. The README's test command equals .ci/run's.
readme = pathlib.Path("README.md").read_text()
blocks = re.findall(r"```sh\n(.*?)```", readme, re.S)
tests = [l.strip() for b in blocks for l in b.splitlines() if l.strip().startswith("cargo test")]
# A CI line may go on after the command (`cargo test --workspace || rc=$?`): compare
# the command itself, up to the first shell operator or comment.
ci = [re.split(r"\s*(?:\|\||&&|;|\||#|>)", l.strip())[0]
      for l in pathlib.Path(".ci/run").read_text().splitlines()
      if l.strip().startswith("cargo test")]
if not tests:
    problems.append("README.md: no `cargo test` command in a ```sh block")
elif tests[0] not in ci:
    problems.append(f"README.md: test command '{tests[0]}' is not what .ci/run runs ({ci})")

# 2. Links resolve inside the clone.
def slug(heading):
    h = re.sub(r"[`*_]", "", heading.strip().lower())
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")

root = pathlib.Path(".").resolve()
files = subprocess.run(["git", "ls-files", "*.md"], capture_output=True, text=True,
                       check=True).stdout.split()
for f in files:
    if f.startswith("fuzz/corpus/"):
        continue
    p = pathlib.Path(f)
    text = re.sub(r"```.*?```", "", p.read_text(), flags=re.S)  # links in code are not links
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = m.group(1)
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (p.parent / path).resolve() if path else p.resolve()
        if path.startswith("/") or not dest.is_relative_to(root):
            problems.append(f"{f}: link {target} points outside the repository")
            continue
        if not dest.exists():
            problems.append(f"{f}: link {target}: no such file")
            continue
        if anchor and dest.suffix == ".md":
            heads = {slug(l.lstrip("#")) for l in dest.read_text().splitlines()
                     if l.startswith("#")}
            if anchor not in heads:
                problems.append(f"{f}: link {target}: no heading #{anchor}")
grep = subprocess.run(["git", "grep", "-n", "-I", r"\.\./shared/"], capture_output=True,
                      text=True).stdout
for line in grep.splitlines():
    if not line.startswith("scripts/check-docs.sh:"):
        problems.append(f"{line}: points outside the repository")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
scripts/crate-graph.sh --check docs/architecture.md || status=1
if [[ $status == 0 ]]; then echo "docs: ok"; fi
exit $status
