"""safetensors files as zero-copy numpy arrays / torch tensors, without the
safetensors package.

    from daxfs import safetensors
    tensors = safetensors.load_file("/dev/shm/models.img", "/llama/model.safetensors")
    with safetensors.safe_open(img, "/llama/model.safetensors", framework="pt") as f:
        w = f.get_tensor("lm_head.weight")

Arrays and tensors point straight into the image's shared mapping (no copy;
every process on the host shares the same pages) and keep it alive. They are
read-only (numpy arrays have writeable=False; torch has no read-only
tensors: do not write to them, the mapping is PROT_READ).

The header is parsed and checked by libdaxfs's C++ parser (daxfs/safetensors.h):
a malformed file raises SafetensorsError (a ValueError) saying what is
wrong; nothing is read outside the file. Opening touches only the header,
whatever the model's size; tensor bytes are read when used (or all at once,
without copying, with prefetch=True).

dtypes: numpy gets every dtype it has (BOOL, U8..U64, I8..I64, F16, F32, F64,
C64); BF16 comes as a uint16 view of the raw bits and F8_* as uint8 views
(numpy has no such types). torch gets its own bfloat16 and, where the
installed torch has them, uint16/32/64 and float8 types (float8 as uint8
raw bits otherwise); U16/U32/U64 on a torch without unsigned types (1.13)
raise TypeError naming the tensor. F4 and F6 (packed
sub-byte types) raise TypeError in both.
"""

import os
import warnings

import numpy as np

from . import _daxfs
from ._daxfs import SafetensorsError

__all__ = ["load_file", "load", "safe_open", "parse", "SafetensorsError"]

_NUMPY = {
    "BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
    "F16": np.float16, "I32": np.int32, "U32": np.uint32, "F32": np.float32,
    "C64": np.complex64, "F64": np.float64, "I64": np.int64, "U64": np.uint64,
    # raw bits: numpy has no such floating-point types
    "BF16": np.uint16, "F8_E5M2": np.uint8, "F8_E4M3": np.uint8, "F8_E8M0": np.uint8,
}

_torch = None
_TORCH = None


def _torch_types():
    global _torch, _TORCH
    if _TORCH is None:
        import torch
        names = {
            "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
            "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32",
            "F32": "float32", "C64": "complex64", "F64": "float64", "I64": "int64",
            "U64": "uint64", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
            "F8_E8M0": "float8_e8m0fnu",
        }
        table = {}
        for st, tn in names.items():
            t = getattr(torch, tn, None)
            if isinstance(t, torch.dtype):
                table[st] = t
        # No float8 in this torch: raw bits, as numpy gets them.
        for st in ("F8_E5M2", "F8_E4M3", "F8_E8M0"):
            table.setdefault(st, torch.uint8)
        _torch, _TORCH = torch, table
    return _torch, _TORCH


def _framework(framework):
    if framework in ("np", "numpy"):
        return "np"
    if framework in ("pt", "torch", "pytorch"):
        return "pt"
    raise ValueError(f"framework must be 'numpy' or 'torch', not {framework!r}")


def _make_np(buf, name, dtype, shape, offset, nbytes):
    npt = _NUMPY.get(dtype)
    if npt is None:
        raise TypeError(f"tensor {name!r}: dtype {dtype} has no numpy equivalent")
    count = nbytes // np.dtype(npt).itemsize
    return np.frombuffer(buf, dtype=npt, count=count, offset=offset).reshape(shape)


def _make_pt(buf, name, dtype, shape, offset, nbytes):
    torch, table = _torch_types()
    tt = table.get(dtype)
    if tt is None:
        raise TypeError(f"tensor {name!r}: dtype {dtype} is not supported by torch "
                        f"{torch.__version__} (framework='numpy' gives a raw view)")
    if nbytes == 0:
        return torch.empty(shape, dtype=tt)
    count = nbytes // torch.empty((), dtype=tt).element_size()
    with warnings.catch_warnings():
        # "The given buffer is not writable": known; the mapping is read-only.
        warnings.simplefilter("ignore", UserWarning)
        t = torch.frombuffer(buf, dtype=tt, count=count, offset=offset)
    return t.reshape(shape)


class _Header:
    def __init__(self, buf, header):
        self.buf = buf  # the file's bytes: a daxfs Mapping or any buffer
        self.header_length, self.data_offset, tensors, self.metadata = header
        self.tensors = {t[0]: t for t in tensors}

    def make(self, name, fw):
        name, dtype, shape, offset, nbytes = self.tensors[name]
        maker = _make_np if fw == "np" else _make_pt
        return maker(self.buf, name, dtype, shape, offset, nbytes)


def _open(source, path):
    from . import Image
    if path is None:
        # `source` is the file's bytes (bytes, mmap, memoryview, ...)
        return _Header(source, _daxfs.parse_safetensors(source))
    if not isinstance(source, Image):
        source = Image(source)
    p = os.fsencode(path)
    if not p.startswith(b"/"):
        p = b"/" + p
    mapping, header = source._i().safetensors(p)
    return _Header(mapping, header)


class safe_open:  # noqa: N801 (named like safetensors.safe_open)
    """Lazy access, like safetensors.safe_open: keys(), get_tensor(name),
    metadata(). source: a daxfs.Image or a region descriptor, with `path`
    the file inside it; or, with path=None, any buffer holding the file."""

    def __init__(self, source, path=None, framework="numpy", prefetch=False):
        self._fw = _framework(framework)
        self._h = _open(source, path)
        if prefetch and hasattr(self._h.buf, "prefetch"):
            self._h.buf.prefetch(self._h.data_offset, 2**64 - 1, True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def keys(self):
        return list(self._h.tensors)

    def __contains__(self, name):
        return name in self._h.tensors

    def __len__(self):
        return len(self._h.tensors)

    def metadata(self):
        return dict(self._h.metadata)

    def get_tensor(self, name):
        if name not in self._h.tensors:
            raise KeyError(name)
        return self._h.make(name, self._fw)

    def dtype(self, name):
        """The safetensors dtype name ("F32", "BF16", ...)."""
        return self._h.tensors[name][1]

    def shape(self, name):
        return self._h.tensors[name][2]

    def offsets(self, name):
        """(file offset, byte length) of a tensor's data."""
        t = self._h.tensors[name]
        return t[3], t[4]


def load_file(source, path, framework="numpy", prefetch=False):
    """dict name -> numpy array (framework="numpy") or torch tensor
    (framework="torch"), each a view into the image, in header order.
    prefetch=True fills the page tables for all tensor data first
    (MADV_POPULATE_READ), which makes touching every tensor afterwards
    faster than the faults would (no copy either way)."""
    f = safe_open(source, path, framework=framework, prefetch=prefetch)
    return {name: f.get_tensor(name) for name in f.keys()}


def load(data, framework="numpy"):
    """Like load_file, for a safetensors file held in any buffer (bytes,
    mmap, memoryview): views into that buffer."""
    return load_file(data, None, framework=framework)


def parse(data):
    """The checked header of a safetensors file held in any buffer:
    {"header_length", "data_offset", "metadata", "tensors": {name: (dtype,
    shape, file_offset, nbytes)}}. Raises SafetensorsError when malformed."""
    hl, do, tensors, meta = _daxfs.parse_safetensors(data)
    return {"header_length": hl, "data_offset": do, "metadata": meta,
            "tensors": {t[0]: t[1:] for t in tensors}}
