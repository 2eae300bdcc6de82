"""Writes safetensors files by hand (the safetensors package is not used):
8-byte little-endian header length, JSON header, then the tensors' bytes."""
import json
import struct

import numpy as np

# numpy dtype -> safetensors dtype
ST_DTYPE = {
    np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "U8", np.dtype(np.int8): "I8",
    np.dtype(np.int16): "I16", np.dtype(np.uint16): "U16", np.dtype(np.float16): "F16",
    np.dtype(np.int32): "I32", np.dtype(np.uint32): "U32", np.dtype(np.float32): "F32",
    np.dtype(np.complex64): "C64", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64",
    np.dtype(np.uint64): "U64",
}


def header_bytes(header, align=8):
    """The JSON header padded with spaces so that data starts `align`-aligned."""
    h = json.dumps(header, separators=(",", ":")).encode()
    pad = (-(8 + len(h))) % align
    return h + b" " * pad


def write(path, tensors, metadata=None, dtypes=None, align=8):
    """tensors: dict name -> numpy array, written in order. dtypes: optional
    name -> safetensors dtype override (e.g. "BF16" for uint16 raw bits)."""
    header, offset = {}, 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        n = a.nbytes
        dt = (dtypes or {}).get(name) or ST_DTYPE[a.dtype]
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [offset, offset + n]}
        offset += n
    h = header_bytes(header, align)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for a in tensors.values():
            f.write(np.ascontiguousarray(a).tobytes())
    return 8 + len(h)


def raw(header_obj_or_bytes, data=b"", length=None):
    """A file from a header (dict, str or bytes) and data, with an optional
    forged header length."""
    h = header_obj_or_bytes
    if isinstance(h, dict):
        h = json.dumps(h).encode()
    elif isinstance(h, str):
        h = h.encode()
    n = len(h) if length is None else length
    return struct.pack("<Q", n) + h + data
