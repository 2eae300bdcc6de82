#!/usr/bin/python3
"""Draws each benchmark table (CSV from md_tables.py) as a PNG chart.

  plot.py OUTDIR FILE.csv...

One panel per numeric column, one bar per row (the first column names the
peer or scenario). Columns that are ratios (their header says "vs", "/" or
"ratio", or the table's caption says "Ratios") get a line at 1.0, the
reference. Needs matplotlib (python3-matplotlib).
"""
import csv
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def number(text):
    """A cell's value; "552 ms (1.94x)" gives its ratio, 1.94."""
    m = re.search(r"\(\**([0-9][0-9.]*)x\**\)", text)
    if m:
        return float(m.group(1))
    m = re.fullmatch(r"\**(-?[0-9][0-9,]*\.?[0-9]*)\s*(x|%|MB|MiB|GB|s)?\**", text.strip())
    return float(m.group(1).replace(",", "")) if m else None


def is_ratio_cell(text):
    return re.search(r"\(\**[0-9][0-9.]*x\**\)", text) is not None


def draw(path, out):
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        title = first[2:].strip() if first.startswith("# ") else os.path.basename(path)
        rows = list(csv.reader(f if first.startswith("# ") else [first] + f.readlines()))
    if len(rows) < 2:
        return None
    header, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    cols = [c for c in range(1, len(header)) if sum(number(r[c]) is not None for r in body) >= max(1, len(body) // 2)]
    if not cols or not body:
        return None
    ratio_table = "ratio" in title.lower()
    fig, axes = plt.subplots(1, len(cols), figsize=(3.2 * len(cols) + 1.5, 0.45 * len(body) + 1.6), squeeze=False)
    labels = [r[0] for r in body]
    for ax, c in zip(axes[0], cols):
        values = [number(r[c]) or 0.0 for r in body]
        ax.barh(range(len(body)), values, color="#4878a8")
        ax.set_yticks(range(len(body)))
        ax.set_yticklabels(labels if ax is axes[0][0] else [""] * len(body), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(header[c], fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        h = header[c].lower()
        if ratio_table or " vs" in h or "/" in h or "ratio" in h or any(is_ratio_cell(r[c]) for r in body):
            ax.axvline(1.0, color="#c04040", linewidth=1)
    fig.suptitle(title[:110], fontsize=9)
    fig.tight_layout()
    name = os.path.join(out, os.path.splitext(os.path.basename(path))[0] + ".png")
    fig.savefig(name, dpi=90)
    plt.close(fig)
    return name


def main(argv):
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    os.makedirs(argv[0], exist_ok=True)
    for path in argv[1:]:
        name = draw(path, argv[0])
        if name:
            print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
