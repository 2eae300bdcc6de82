#!/usr/bin/python3
"""Markdown tables (as the bench scripts print them) to CSV files.

  md_tables.py FILE.md OUTDIR [--section TITLE]...

Every table in FILE (or in the "## " sections whose title starts with one of
the given titles) becomes OUTDIR/<section-slug>-<n>.csv; the line of text
just above a table (if any) is kept as a "# " comment on the CSV's first line
(the plots use it as their subtitle).
"""
import csv
import os
import re
import sys


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def tables(lines):
    """(section, caption, rows) for every table. The section is the "## "
    heading (its name is stable; "### " lines often carry run details);
    the caption is the text just above the table, if any."""
    section, caption, rows = "", "", []
    for line in lines + [""]:
        if line.startswith("## "):
            section = line[3:].strip()
            caption = ""
        elif line.startswith("###"):
            caption = line.lstrip("#").strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                rows.append(cells)
            continue
        if rows:
            yield section, caption, rows
            rows = []
            caption = ""
        if line.strip() and not line.startswith("#"):
            caption = line.strip()


def main(argv):
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 2
    path, out = argv[0], argv[1]
    wanted = [argv[i + 1] for i, a in enumerate(argv) if a == "--section" and i + 1 < len(argv)]
    os.makedirs(out, exist_ok=True)
    count = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for section, caption, rows in tables(lines):
        if wanted and not any(section.startswith(w) for w in wanted):
            continue
        key = slug(section) or "tables"
        count[key] = count.get(key, 0) + 1
        name = os.path.join(out, f"{key}-{count[key]}.csv")
        with open(name, "w", newline="", encoding="utf-8") as f:
            f.write(f"# {section}: {caption}\n")
            csv.writer(f).writerows(rows)
        print(name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
