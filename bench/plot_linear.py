#!/usr/bin/env python3
"""Plots `ark bench linear` CSV output: weight GB/s and GFLOP/s against M, one line per shape (and scheme/mode).

usage: plot_linear.py results.csv plot.png
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")  # files only; no display on benchmark machines
import matplotlib.pyplot as plt  # noqa: E402


def main(csv_path: str, png_path: str) -> None:
    series = defaultdict(list)
    bandwidth = None
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            key = f"{row['in_features']}x{row['out_features']} {row['scheme']} {row['mode']}"
            series[key].append((int(row["m"]), float(row["weight_gbs"]), float(row["gflops"])))
            bandwidth = float(row["bandwidth_gbs"])
    if not series:
        sys.exit(f"{csv_path}: no rows")
    fig, (ax_bw, ax_fl) = plt.subplots(1, 2, figsize=(15, 6))
    for key, points in sorted(series.items()):
        points.sort()
        ms = [p[0] for p in points]
        ax_bw.plot(ms, [p[1] for p in points], marker="o", label=key)
        ax_fl.plot(ms, [p[2] for p in points], marker="o", label=key)
    if bandwidth:
        ax_bw.axhline(bandwidth, color="black", linestyle="--", label=f"measured read bandwidth {bandwidth:.1f} GB/s")
    for ax, title, unit in ((ax_bw, "packed weight bandwidth", "GB/s"), (ax_fl, "throughput", "GFLOP/s")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("M (rows)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_bw.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
