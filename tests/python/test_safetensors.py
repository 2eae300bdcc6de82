"""safetensors files inside an image as numpy arrays and torch tensors that
are views into the shared mapping."""
import hashlib
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import daxfs
from daxfs import safetensors as st
from conftest import BAD, BUILD, HERE, bf16_bits

try:
    import torch
except ImportError:  # torch is optional at run time
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not importable")


def in_mapping(img, addr, nbytes):
    base, size = img.mapping
    return base <= addr and addr + nbytes <= base + size


def smaps_rollup():
    out = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            m = re.match(r"(\w+):\s+(\d+) kB", line)
            if m:
                out[m.group(1)] = int(m.group(2)) * 1024
    return out


def vma_rss(addr):
    """Rss and Anonymous bytes of the mapping of this process holding addr."""
    with open("/proc/self/smaps") as f:
        inside = False
        rss = anon = 0
        for line in f:
            m = re.match(r"([0-9a-f]+)-([0-9a-f]+) ", line)
            if m:
                inside = int(m.group(1), 16) <= addr < int(m.group(2), 16)
                continue
            if inside and line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            if inside and line.startswith("Anonymous:"):
                anon = int(line.split()[1]) * 1024
    return rss, anon


def touch(arr):
    """Reads every byte of an array (numpy, or torch through numpy)."""
    if torch is not None and isinstance(arr, torch.Tensor):
        arr = arr.reshape(-1).view(torch.uint8).numpy()
    return int(np.count_nonzero(arr.reshape(-1).view(np.uint8)))


def test_small_numpy_values_and_memory(model):
    img = daxfs.Image(model.image)
    d = st.load_file(img, "/models/small.safetensors")
    assert list(d) == list(model.small)
    for name, want in model.small.items():
        got = d[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want)
        assert not got.flags.writeable
        if got.nbytes:
            assert in_mapping(img, got.ctypes.data, got.nbytes), name
    with st.safe_open(img, "models/small.safetensors") as f:
        assert f.metadata() == {"format": "np", "note": "généré"}
        assert f.dtype("f32") == "F32" and f.shape("f32") == (6, 7)
        assert "u8" in f and len(f) == len(model.small)
        with pytest.raises(KeyError):
            f.get_tensor("nope")


def test_bf16_and_f8_numpy_raw_bits(model):
    img = daxfs.Image(model.image)
    d = st.load_file(img, "/models/bf16.safetensors")
    assert d["bf"].dtype == np.uint16 and d["bf"].shape == (4, 6)
    np.testing.assert_array_equal(d["bf"], model.raw16["bf"])
    assert d["f8"].dtype == np.uint8
    np.testing.assert_array_equal(d["f8"], model.raw16["f8"])


@needs_torch
def test_torch_values_and_memory(model):
    img = daxfs.Image(model.image)
    f = st.safe_open(img, "/models/small.safetensors", framework="pt")
    unsupported = {n for n in ("u16", "u32", "u64") if not hasattr(torch, {"u16": "uint16", "u32": "uint32", "u64": "uint64"}[n])}
    for name, want in model.small.items():
        if name in unsupported:
            continue
        got = f.get_tensor(name)
        assert isinstance(got, torch.Tensor) and tuple(got.shape) == want.shape, name
        np.testing.assert_array_equal(got.numpy(), want)
        if want.nbytes:
            assert in_mapping(img, got.data_ptr(), want.nbytes), name
    d = st.load_file(img, "/models/bf16.safetensors", framework="torch")
    assert d["bf"].dtype == torch.bfloat16
    assert in_mapping(img, d["bf"].data_ptr(), 48)
    np.testing.assert_allclose(d["bf"].float().numpy(), model.bf16_f32, rtol=1 / 128)
    # The same bits as torch's own conversion.
    assert torch.equal(d["bf"], torch.from_numpy(model.bf16_f32).to(torch.bfloat16))
    if not hasattr(torch, "float8_e4m3fn"):
        assert d["f8"].dtype == torch.uint8
        np.testing.assert_array_equal(d["f8"].numpy(), model.raw16["f8"])


@needs_torch
def test_torch_unsupported_dtype_is_a_clear_error(model):
    if hasattr(torch, "uint16"):
        pytest.skip("this torch has uint16")
    with pytest.raises(TypeError, match="tensor 'u16': dtype U16 is not supported by torch"):
        st.load_file(model.image, "/models/small.safetensors", framework="torch")


def test_big_model_values_shared_and_lazy(model):
    img = daxfs.Image(model.image)
    t0 = time.perf_counter()
    d = st.load_file(img, "/models/big.safetensors")
    first = time.perf_counter() - t0
    assert first < 0.05, f"opening took {first * 1e3:.1f} ms"
    some = next(iter(d.values()))
    # Lazy: only the header's pages (and the kernel's fault-around) are mapped.
    rss, anon = vma_rss(some.ctypes.data)
    assert rss <= 1 << 20, f"{rss} bytes resident after opening"
    before = smaps_rollup()
    for name, a in d.items():
        assert in_mapping(img, a.ctypes.data, a.nbytes)
        assert a.shape == model.big_shapes[name]
        assert hashlib.sha256(a).hexdigest() == model.big_sha[name], name
    after = smaps_rollup()
    rss, anon = vma_rss(some.ctypes.data)
    # Every byte is now resident in this process, as the image's shared
    # pages (file-backed Rss), and nothing was copied into private memory.
    assert rss >= model.big_size - (1 << 20)
    assert anon == 0
    assert after["Anonymous"] - before["Anonymous"] < model.big_size * 0.02
    # The same through torch.
    if torch is not None:
        t = st.load_file(img, "/models/big.safetensors", framework="pt")
        for name, a in d.items():
            assert t[name].data_ptr() == a.ctypes.data


def test_fromfile_copies_by_contrast(model):
    """The accounting above distinguishes: reading the file from tmpfs into
    arrays adds its size as private (anonymous) memory."""
    before = smaps_rollup()
    buf = np.fromfile(model.big_path, dtype=np.uint8)
    after = smaps_rollup()
    assert after["Anonymous"] - before["Anonymous"] >= model.big_size * 0.95
    d = st.load(buf)  # views into that private buffer
    name = model.big_names[0]
    assert hashlib.sha256(d[name]).hexdigest() == model.big_sha[name]


def test_prefetch_populates_without_copy(model):
    img = daxfs.Image(model.image)
    d = st.load_file(img, "/models/big.safetensors", prefetch=True)
    a = next(iter(d.values()))
    rss, anon = vma_rss(a.ctypes.data)
    assert rss >= model.big_size - (1 << 20) and anon == 0


def test_arrays_outlive_image(model):
    img = daxfs.Image(model.image)
    d = st.load_file(img, "/models/small.safetensors")
    del img
    import gc
    gc.collect()
    np.testing.assert_array_equal(d["f64"], model.small["f64"])
    if torch is not None:
        t = st.safe_open(model.image, "/models/small.safetensors", framework="pt").get_tensor("i64")
        gc.collect()
        np.testing.assert_array_equal(t.numpy(), model.small["i64"])


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_headers_raise(model, name):
    data, needle = BAD[name]
    img = daxfs.Image(model.image)
    path = f"/models/bad/{name}.safetensors"
    with pytest.raises(st.SafetensorsError, match=re.escape(needle)) as e:
        st.load_file(img, path)
    assert path in str(e.value)
    assert isinstance(e.value, ValueError)
    # The same from a plain buffer.
    with pytest.raises(st.SafetensorsError, match=re.escape(needle)):
        st.load(data)
    with pytest.raises(st.SafetensorsError):
        st.parse(bytearray(data))


def test_not_a_file(model):
    with pytest.raises(IsADirectoryError):
        st.load_file(model.image, "/models")
    with pytest.raises(FileNotFoundError):
        st.load_file(model.image, "/models/none.safetensors")
    with pytest.raises(ValueError, match="framework"):
        st.load_file(model.image, "/models/small.safetensors", framework="jax")


def test_parse_reports_header(model):
    with open(os.path.join(model.src, "models", "small.safetensors"), "rb") as f:
        data = f.read()
    h = st.parse(data)
    assert h["data_offset"] == 8 + h["header_length"]
    assert h["data_offset"] % 8 == 0  # st_util pads like the safetensors library
    assert h["tensors"]["f32"][:2] == ("F32", (6, 7))


def test_random_corruptions_never_crash(model):
    """Flipped and truncated bytes of a valid file: parsed or refused, in a
    child process so that a crash would show as a failure, not kill pytest."""
    code = r"""
import sys, random
sys.path[:0] = sys.argv[1:3]
from daxfs import safetensors as st
data = open(sys.argv[3], 'rb').read()
rng = random.Random(7)
ok = bad = 0
for i in range(3000):
    b = bytearray(data)
    if i % 3 == 0:
        b = b[:rng.randrange(len(b))]
    for _ in range(rng.randrange(1, 4)):
        if b:
            b[rng.randrange(min(len(b), 8 + 400))] = rng.randrange(256)
    try:
        st.load(bytes(b)); ok += 1
    except (st.SafetensorsError, TypeError):
        bad += 1
print(ok, bad)
"""
    path = os.path.join(model.src, "models", "small.safetensors")
    r = subprocess.run([sys.executable, "-c", code, os.path.join(BUILD, "python"), HERE, path],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    ok, bad = map(int, r.stdout.split())
    assert bad > 1000
