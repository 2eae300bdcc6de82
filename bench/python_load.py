#!/usr/bin/python3
"""Model loading from Python, side by side: time to first tensor and time to
touch every tensor (read every byte) of one model, each run in a fresh
process (first touch of a mapping is part of the cost), best of N.

    sudo /usr/bin/python3 bench/python_load.py [--mib 1024] [--runs 3] [--no-mount]

Methods, all data on tmpfs (/dev/shm):
  daxfs views          daxfs.safetensors.safe_open on the image: numpy views into the mapping
  daxfs views+prefetch the same with prefetch=True (MADV_POPULATE_READ, no copy)
  daxfs torch views    framework="pt": torch tensors viewing the mapping
  np.fromfile          the .safetensors file on tmpfs, np.fromfile per tensor (a private copy)
  numpy.load (.npz)    np.savez of the same arrays, np.load then each array (a copy)
  torch.load (.pt)     torch.save of the same tensors, torch.load (a copy)
  daxfs mount          np.fromfile per tensor through daxfs-mount (cache=direct)
Prints a Markdown table (docs/PERFORMANCE.md, "Python: model loading").
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))

CHILD = r"""
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
method, work = sys.argv[2], sys.argv[3]
import numpy as np
def touch_np(a):
    return int(np.count_nonzero(a.reshape(-1).view(np.uint8)))
def touch_pt(t):
    import torch
    return touch_np(t.reshape(-1).view(torch.uint8).numpy())
t0 = time.perf_counter()   # imports are not part of any method
first = None
total = 0
if method.startswith("daxfs views") or method == "daxfs torch views":
    from daxfs import safetensors as st
    fw = "pt" if "torch" in method else "np"
    if fw == "pt":
        import torch
    t0 = time.perf_counter()
    f = st.safe_open(work + "/model.img", "/model.safetensors", framework=fw,
                     prefetch=method.endswith("prefetch"))
    names = f.keys()
    x = f.get_tensor(names[0]); first = time.perf_counter() - t0
    touch = touch_pt if fw == "pt" else touch_np
    for n in names:
        total += touch(f.get_tensor(n))
elif method in ("np.fromfile", "daxfs mount"):
    path = work + ("/mnt/model.safetensors" if method == "daxfs mount" else "/model.safetensors")
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        hdr = json.loads(fh.read(n))
        hdr.pop("__metadata__", None)
        np_types = {"F16": np.float16, "BF16": np.uint16, "F32": np.float32, "I64": np.int64, "U8": np.uint8}
        arrays = {}
        for i, (name, info) in enumerate(hdr.items()):
            b, e = info["data_offsets"]
            fh.seek(8 + n + b)
            dt = np.dtype(np_types[info["dtype"]])
            a = np.fromfile(fh, dtype=dt, count=(e - b) // dt.itemsize).reshape(info["shape"])
            if i == 0:
                first = time.perf_counter() - t0
            arrays[name] = a
        for a in arrays.values():
            total += touch_np(a)
elif method == "numpy.load (.npz)":
    z = np.load(work + "/model.npz")
    names = list(z.files)
    x = z[names[0]]; first = time.perf_counter() - t0
    total += touch_np(x)
    for n in names[1:]:
        total += touch_np(z[n])
elif method == "torch.load (.pt)":
    import torch
    t0 = time.perf_counter()
    d = torch.load(work + "/model.pt")
    first = time.perf_counter() - t0
    for t in d.values():
        total += touch_pt(t)
elapsed = time.perf_counter() - t0
print(json.dumps({"first": first, "all": elapsed, "checksum": total}))
"""

METHODS = ["daxfs views", "daxfs views+prefetch", "daxfs torch views", "np.fromfile",
           "numpy.load (.npz)", "torch.load (.pt)", "daxfs mount"]


def make_model(mib):
    """~mib MiB: layers of F16/BF16/F32 matrices of 4-16 MiB and odd-sized biases."""
    import numpy as np
    rng = np.random.default_rng(0)
    tensors, dtypes = {}, {}
    total, i = 0, 0
    while total < mib << 20:
        kind = ("F16", "BF16", "F32")[i % 3]
        rows = (1024, 2048, 4096)[i % 3]
        dt = np.float32 if kind == "F32" else np.uint16 if kind == "BF16" else np.float16
        a = rng.integers(1, 2**15, size=(rows, 1024), dtype=np.uint16).view(np.uint8)
        a = a.view(dt).reshape(rows, -1) if kind != "F32" else a.view(np.float32).reshape(rows, -1)
        tensors[f"layers.{i}.weight"] = a
        tensors[f"layers.{i}.bias"] = np.full(1000 + i, 0.5, np.float16)
        if kind == "BF16":
            dtypes[f"layers.{i}.weight"] = "BF16"
        total += a.nbytes + tensors[f"layers.{i}.bias"].nbytes
        i += 1
    return tensors, dtypes


def run(build, method, work):
    r = subprocess.run([sys.executable, "-c", CHILD, os.path.join(build, "python"), method, work],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{method}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--no-mount", action="store_true")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    import numpy as np
    import st_util
    work = tempfile.mkdtemp(prefix="daxfs-pybench.", dir="/dev/shm")
    mnt = os.path.join(work, "mnt")
    mounted = False
    try:
        os.makedirs(os.path.join(work, "src"))
        tensors, dtypes = make_model(args.mib)
        st_util.write(os.path.join(work, "src", "model.safetensors"), tensors, dtypes=dtypes)
        os.link(os.path.join(work, "src", "model.safetensors"), os.path.join(work, "model.safetensors"))
        subprocess.run([os.path.join(args.build, "mkdaxfs"), "-q", os.path.join(work, "model.img"),
                        os.path.join(work, "src")], check=True)
        np.savez(os.path.join(work, "model.npz"), **tensors)
        methods = args.methods.split(",")
        try:
            import torch
            pt = {}
            for k, v in tensors.items():
                if dtypes.get(k) == "BF16":
                    pt[k] = torch.from_numpy(v.view(np.int16).copy()).view(torch.bfloat16)
                else:
                    pt[k] = torch.from_numpy(v.copy())
            torch.save(pt, os.path.join(work, "model.pt"))
            del pt
        except ImportError:
            methods = [m for m in methods if "torch" not in m]
        size = os.path.getsize(os.path.join(work, "model.safetensors"))
        ntensors = len(tensors)
        del tensors
        if "daxfs mount" in methods and not args.no_mount:
            os.makedirs(mnt)
            subprocess.run([os.path.join(args.build, "daxfs-mount"), os.path.join(work, "model.img"), mnt],
                           check=True)
            mounted = True
        else:
            methods = [m for m in methods if m != "daxfs mount"]
        results = {}
        for m in methods:
            runs = [run(args.build, m, work) for _ in range(args.runs)]
            results[m] = (min(r["first"] for r in runs), min(r["all"] for r in runs), runs[0]["checksum"])
        sums = {v[2] for v in results.values()}
        print(f"Model: {size / 2**20:.0f} MiB in {ntensors} tensors (F16, BF16, F32); "
              f"best of {args.runs} fresh processes; checksums {'agree' if len(sums) == 1 else 'DIFFER'}\n")
        print("| method | time to first tensor | time to touch every tensor | GB/s |")
        print("|---|---|---|---|")
        for m, (first, allt, _) in results.items():
            ft = f"{first * 1e3:.3f} ms" if first < 0.01 else f"{first * 1e3:.0f} ms"
            print(f"| {m} | {ft} | {allt * 1e3:.0f} ms | {size / allt / 1e9:.2f} |")
    finally:
        if mounted:
            subprocess.run(["umount", mnt])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
