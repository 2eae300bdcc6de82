"""A model-loading process for the sharing test and the benchmark.

    loader.py MODE IMAGE_OR_FILE [PATH_IN_IMAGE]

MODE daxfs: load_file() views into the image; tmpfs: np.fromfile of the
file into private memory, then views of that. Every tensor is touched
(every byte read). Prints "ready", waits for a line on stdin, loads and
touches, prints "touched", waits for a line (so that every loader holds
its tensors when they are counted), prints "loaded PSS_DELTA ANON_DELTA
CHECKSUM" (bytes, from /proc/self/smaps_rollup), waits for a line, exits."""
import os
import re
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
build = os.environ.get("DAXFS_BUILD_DIR") or os.path.join(here, "..", "..", "build")
sys.path.insert(0, os.path.join(build, "python"))
from daxfs import safetensors as st  # noqa: E402


def rollup():
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m:
                out[m.group(1)] = int(m.group(2)) * 1024
    return out


mode, src = sys.argv[1], sys.argv[2]
print("ready", flush=True)
sys.stdin.readline()
before = rollup()
if mode == "daxfs":
    tensors = st.load_file(src, sys.argv[3])
else:
    tensors = st.load(np.fromfile(src, dtype=np.uint8))
total = sum(int(np.count_nonzero(t.reshape(-1).view(np.uint8))) for t in tensors.values())
print("touched", flush=True)
sys.stdin.readline()
after = rollup()
print("loaded", after["Pss"] - before["Pss"], after["Anonymous"] - before["Anonymous"], total, flush=True)
sys.stdin.readline()
