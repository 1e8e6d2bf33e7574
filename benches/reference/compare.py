"""Runs the Rust engine and the NumPy reference side by side on the same layer files.

Usage: compare.py SPARSESWAPS_BIN LAYER_DIR [--rows N] [--sparsity 0.5] [--max-swaps 100]

Each layer file holds `weight` [d_out, d_in] and `gram` [d_in, d_in] (as written by a
pipeline with `save_grams = true`). Both engines start from the same Wanda mask (made by
the Rust tool with --max-swaps 0) and refine it; the table gives warm and final relative
error of both, pairs evaluated (exhaustive and bounded), engine seconds and ratios.
"""

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

from sparseswaps_ref import refine


def ours(binary, layer, mask_spec, out, search, sparsity, max_swaps):
    rep = out + ".json"
    subprocess.run(
        [binary, "refine-layer", "--weight", layer + ":weight", "--gram", layer + ":gram",
         "--sparsity", str(sparsity), "--warm-start", mask_spec, "--max-swaps", str(max_swaps),
         "--search", search, "--out", out, "--report", rep],
        check=True, stdout=subprocess.DEVNULL)
    with open(rep) as f:
        return json.load(f)["report"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("layers")
    ap.add_argument("--rows", type=int, default=0, help="use only the first N rows of each layer")
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--max-swaps", type=int, default=100)
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.layers, "*.safetensors")))
    if not files:
        sys.exit(f"no layer files in {a.layers}")
    tmp = tempfile.mkdtemp(prefix="ss-compare-")
    hdr = (f"{'layer':38} {'shape':>11} {'warm rel':>9} {'ours rel':>9} {'ref rel':>9} "
           f"{'pairs exh':>11} {'bounded':>10} {'ratio':>7} {'ours s':>7} {'ref s':>8} {'speed':>7}")
    print(hdr)
    ratios, speeds, worse = [], [], []
    for f in files:
        t = load_file(f)
        W, G = t["weight"], t["gram"]
        if a.rows:
            W = W[: a.rows]
        name = os.path.basename(f)[: -len(".safetensors")]
        layer = os.path.join(tmp, name + ".safetensors")
        save_file({"weight": np.ascontiguousarray(W), "gram": G}, layer)
        warm = os.path.join(tmp, name + ".warm.safetensors")
        ours(a.binary, layer, "wanda", warm, "exhaustive", a.sparsity, 0)
        spec = "mask:" + warm + ":mask"
        ex = ours(a.binary, layer, spec, os.path.join(tmp, "ex.safetensors"), "exhaustive", a.sparsity, a.max_swaps)
        bd = ours(a.binary, layer, spec, os.path.join(tmp, "bd.safetensors"), "bounded", a.sparsity, a.max_swaps)
        mask = load_file(warm)["mask"].astype(bool)
        rw, rf, re_, rswaps, rpairs, rsec = refine(W, G, mask, max_swaps=a.max_swaps)
        ref_rel = rf / re_
        ratio = ex["pairs_evaluated"] / max(bd["pairs_evaluated"], 1)
        speed = rsec / max(bd["seconds"], 1e-9)
        ratios.append(ratio)
        speeds.append(speed)
        worse.append(bd["final_relative"] - ref_rel)
        print(f"{name:38} {W.shape[0]:>5}x{W.shape[1]:<5} {bd['warm_relative']:9.5f} {bd['final_relative']:9.5f} "
              f"{ref_rel:9.5f} {ex['pairs_evaluated']:11.3e} {bd['pairs_evaluated']:10.3e} {ratio:7.0f} "
              f"{bd['seconds']:7.2f} {rsec:8.2f} {speed:6.1f}x")
        sys.stdout.flush()
    print()
    print(f"pairs evaluated, exhaustive / bounded: median {statistics.median(ratios):.0f}x, worst {min(ratios):.0f}x")
    print(f"reference seconds / ours (bounded): median {statistics.median(speeds):.1f}x, worst {min(speeds):.1f}x")
    print(f"our final relative error minus the reference's: max {max(worse):+.2e} "
          f"({'not worse on any layer' if max(worse) <= 1e-12 else 'WORSE on some layer'}, 1e-12 rounding allowance)")


if __name__ == "__main__":
    main()
