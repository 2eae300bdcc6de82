"""Fixtures: one image (on tmpfs) holding generated safetensors files of
several dtypes and shapes, a large model, malformed files and an ordinary
tree; the daxfs tools come from the build tree (DAXFS_BUILD_DIR)."""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import st_util  # noqa: E402

BUILD = os.environ.get("DAXFS_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
sys.path.insert(0, os.path.join(BUILD, "python"))

# The large model: MiB of tensor data (DAXFS_TEST_MODEL_MIB to change).
MODEL_MIB = int(os.environ.get("DAXFS_TEST_MODEL_MIB", "256"))


def tool(name):
    return os.path.join(BUILD, name)


def small_tensors():
    rng = np.random.default_rng(1)
    t = {
        "bool": rng.integers(0, 2, (3, 5)).astype(np.bool_),
        "u8": rng.integers(0, 256, (7,), dtype=np.uint8),
        "i8": rng.integers(-128, 128, (2, 3, 4), dtype=np.int8),
        "i16": rng.integers(-30000, 30000, (9,), dtype=np.int16),
        "u16": rng.integers(0, 65535, (3, 3), dtype=np.uint16),
        "f16": rng.standard_normal((4, 4)).astype(np.float16),
        "i32": rng.integers(-2**31, 2**31 - 1, (5,), dtype=np.int32),
        "u32": rng.integers(0, 2**32 - 1, (2, 2), dtype=np.uint32),
        "f32": rng.standard_normal((6, 7)).astype(np.float32),
        "c64": (rng.standard_normal(5) + 1j * rng.standard_normal(5)).astype(np.complex64),
        "f64": rng.standard_normal((3, 1, 2)).astype(np.float64),
        "i64": rng.integers(-2**62, 2**62, (4,), dtype=np.int64),
        "u64": rng.integers(0, 2**63, (4,), dtype=np.uint64),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    return t


def bf16_bits(values):
    """float32 -> bfloat16 raw bits (round to nearest even), as uint16."""
    b = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)


def big_tensors(mib):
    """About `mib` MiB of tensors with odd sizes in between (so later tensors
    are not page-aligned), filled cheaply but not trivially."""
    out = {}
    per = mib // 4
    for i in range(4):
        n = per * (1 << 20) // 4
        a = np.arange(n, dtype=np.uint32)
        a *= 2654435761  # Knuth hash: every value differs, no zero pages
        a ^= i
        out[f"layers.{i}.weight"] = a.view(np.float32).reshape(-1, 1024)
        out[f"layers.{i}.bias"] = np.full(1000 + i, i + 0.5, dtype=np.float16)
    return out


@pytest.fixture(scope="session")
def workdir():
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    d = tempfile.mkdtemp(prefix="daxfs-py.", dir=base)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Model:
    pass


BAD = {
    # name: (file bytes, substring of the error)
    "truncated": (b"\x10\x00\x00", "truncated: 3 bytes"),
    "length_past_end": (st_util.raw("{}", length=4096), "header length 4096 is larger than the file"),
    "offsets_past_end": (st_util.raw({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"x" * 8),
                         "past the end of the data"),
    "overlap": (st_util.raw({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                             "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}, b"x" * 6), "overlap"),
    "out_of_order": (st_util.raw({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 2]}}, b"x" * 4),
                     "out of order"),
    "gap": (st_util.raw({"a": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}}, b"x" * 4), "gap of 2 bytes"),
    "absurd_shape": (st_util.raw({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4]}}, b"x" * 4),
                     "absurd shape"),
    "size_mismatch": (st_util.raw({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"x" * 8),
                      "shape and dtype give 12 bytes"),
    "non_utf8": (st_util.raw(b'{"a\xff\xfe":{}}'), "invalid UTF-8"),
    "bad_json": (st_util.raw(b'{"a":{"dtype":"U8",}}'), "header JSON"),
    "unknown_dtype": (st_util.raw({"a": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}}, b"x" * 16),
                      "unknown dtype"),
    "not_safetensors": (b"\x7fELF" + b"\x00" * 60, "larger than the file"),
}


@pytest.fixture(scope="session")
def model(workdir):
    m = Model()
    src = os.path.join(workdir, "src")
    os.makedirs(os.path.join(src, "models", "bad"))
    os.makedirs(os.path.join(src, "docs", "deep", "er"))
    m.small = small_tensors()
    st_util.write(os.path.join(src, "models", "small.safetensors"), m.small,
                  metadata={"format": "np", "note": "généré"})
    m.bf16_f32 = np.linspace(-3, 3, 24, dtype=np.float32).reshape(4, 6)
    m.raw16 = {"bf": bf16_bits(m.bf16_f32), "f8": np.arange(16, dtype=np.uint8)}
    st_util.write(os.path.join(src, "models", "bf16.safetensors"), m.raw16,
                  dtypes={"bf": "BF16", "f8": "F8_E4M3"})
    m.big_path = os.path.join(src, "models", "big.safetensors")
    big = big_tensors(MODEL_MIB)
    m.big_header = st_util.write(m.big_path, big)
    m.big_names = list(big)
    m.big_sha = {k: hashlib.sha256(v).hexdigest() for k, v in big.items()}
    m.big_shapes = {k: v.shape for k, v in big.items()}
    del big
    m.big_size = os.path.getsize(m.big_path)
    for name, (data, _) in BAD.items():
        with open(os.path.join(src, "models", "bad", name + ".safetensors"), "wb") as f:
            f.write(data)
    with open(os.path.join(src, "docs", "readme.txt"), "w") as f:
        f.write("hello daxfs\n")
    with open(os.path.join(src, "docs", "deep", "er", "blob.bin"), "wb") as f:
        f.write(bytes(range(256)) * 100)
    os.symlink("docs/readme.txt", os.path.join(src, "link"))
    m.src = src
    m.image = os.path.join(workdir, "model.img")
    subprocess.run([tool("mkdaxfs"), "-q", m.image, src], check=True)
    return m
