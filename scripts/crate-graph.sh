#!/usr/bin/env bash
# The workspace's crate graph, read from the Cargo.toml files: for every workspace member,
# its [dependencies] on other sparseswaps-* crates (dev-dependencies left out; optional
# ones marked). Prints a mermaid graph and the same edges as a markdown list.
#
#   scripts/crate-graph.sh                 print the graph
#   scripts/crate-graph.sh --write FILE    replace the text between the markers
#                                          <!-- crate-graph:begin --> / <!-- crate-graph:end -->
#   scripts/crate-graph.sh --check FILE    exit 1 when FILE's graph is out of date
#
# Needs only python3 (3.11+, for tomllib) from the standard library.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-print}"
file="${2:-}"
if [[ "$mode" != print && ( "$mode" != --write && "$mode" != --check || -z "$file" ) ]]; then
    echo "usage: $0 [--write FILE | --check FILE]" >&2
    exit 2
fi
exec python3 - "$mode" "$file" <<'PY'
import sys, tomllib, pathlib

mode, target = sys.argv[1], sys.argv[2]
root = tomllib.loads(pathlib.Path("Cargo.toml").read_text())
members = root["workspace"]["members"]

crates = []  # (package name, path, publish, {dep: optional})
for path in members:
    manifest = tomllib.loads((pathlib.Path(path) / "Cargo.toml").read_text())
    pkg = manifest["package"]
    deps = {}
    for name, spec in manifest.get("dependencies", {}).items():
        if name.startswith("sparseswaps-"):
            deps[name] = isinstance(spec, dict) and bool(spec.get("optional", False))
    crates.append((pkg["name"], path, pkg.get("publish", True), deps))
crates.sort(key=lambda c: c[1])  # by path: stable whatever the order of `members`

def short(name):
    return name.removeprefix("sparseswaps-")

def node(name):
    return short(name).replace("-", "_")

lines = ["```mermaid", "graph TD"]
for name, path, publish, _ in crates:
    note = " (publish = false)" if publish is False else ""
    lines.append(f'    {node(name)}["{short(name)}<br/>{path}{note}"]')
for name, _, _, deps in crates:
    for dep, optional in sorted(deps.items()):
        arrow = "-.->|optional|" if optional else "-->"
        lines.append(f"    {node(name)} {arrow} {node(dep)}")
lines.append("```")
lines.append("")
for name, path, _, deps in crates:
    listed = ", ".join(
        f"`{short(d)}`" + (" (optional)" if o else "") for d, o in sorted(deps.items())
    )
    lines.append(f"- `{short(name)}` (`{path}`) → {listed or 'no workspace crate'}")
graph = "\n".join(lines) + "\n"

if mode == "print":
    sys.stdout.write(graph)
    sys.exit(0)

begin, end = "<!-- crate-graph:begin -->", "<!-- crate-graph:end -->"
p = pathlib.Path(target)
text = p.read_text()
if begin not in text or end not in text:
    sys.exit(f"{target}: no {begin} / {end} markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
new = f"{head}{begin}\n{graph}{end}{tail}"
if mode == "--check":
    if new != text:
        sys.exit(f"{target}: the crate graph is out of date; run scripts/crate-graph.sh --write {target}")
    sys.exit(0)
p.write_text(new)
PY
