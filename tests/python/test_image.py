"""The daxfs package's image API against the source tree it was built from."""
import errno
import gc
import io
import os
import socket
import stat
import subprocess
import time

import numpy as np
import pytest

import daxfs
from conftest import tool


def mapped(addr):
    """True if `addr` lies in a mapping of this process."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return True
    return False


def test_listdir_stat_walk_match_source(model):
    img = daxfs.Image(model.image)
    assert img.listdir("/") == sorted(os.listdir(model.src))
    assert img.listdir(b"/models") == sorted(os.listdir(os.fsencode(model.src + "/models")))
    ours = {(root, tuple(sorted(d)), tuple(sorted(f))) for root, d, f in img.walk("/")}
    theirs = set()
    for root, d, f in os.walk(model.src):
        rel = "/" + os.path.relpath(root, model.src)
        rel = "/" if rel == "/." else rel
        links = [x for x in d if os.path.islink(os.path.join(root, x))]
        theirs.add((rel, tuple(sorted(set(d) - set(links))), tuple(sorted(f + links))))
    assert ours == theirs
    for rel in ["docs/readme.txt", "models/small.safetensors", "docs", "link"]:
        a, b = img.stat(rel), os.lstat(os.path.join(model.src, rel))
        assert (a.st_mode, a.st_size, a.st_uid, a.st_gid, a.st_mtime_ns) == \
               (b.st_mode, b.st_size if not stat.S_ISDIR(b.st_mode) else a.st_size, b.st_uid, b.st_gid, b.st_mtime_ns)
    assert stat.S_ISLNK(img.stat("/link").st_mode)
    assert img.readlink("/link") == "docs/readme.txt"
    assert img.isdir("/docs") and img.isfile("/docs/readme.txt") and not img.exists("/nope")
    assert img.info["inode_count"] > 10


def test_errors_are_oserrors(model):
    img = daxfs.Image(model.image)
    with pytest.raises(FileNotFoundError):
        img.stat("/no/such")
    with pytest.raises(FileNotFoundError):
        img.view("/missing")
    with pytest.raises(IsADirectoryError):
        img.view("/docs")
    with pytest.raises(NotADirectoryError):
        img.listdir("/docs/readme.txt")
    with pytest.raises(OSError):
        img.view("/link")  # a symlink is not followed
    with pytest.raises(FileNotFoundError):
        daxfs.Image(model.image + ".missing")
    with pytest.raises(OSError) as e:
        daxfs.Image(os.path.join(model.src, "docs", "readme.txt"))  # not an image
    assert e.value.errno in (errno.EINVAL, errno.EUCLEAN)
    with pytest.raises(ValueError):
        img.open("/docs/readme.txt", "wb")
    img.close()
    with pytest.raises(ValueError):
        img.listdir("/")


def test_names_python_rejects_or_cannot_decode(model):
    """An embedded NUL is ValueError, as for os.stat, not a lookup of what
    precedes it; a missing name that is not UTF-8 is FileNotFoundError
    carrying the name (surrogate-escaped), not UnicodeDecodeError."""
    img = daxfs.Image(model.image)
    for call in (img.stat, img.view, img.listdir, img.open):
        with pytest.raises(ValueError):
            call("/docs\0x")
    with pytest.raises(ValueError):
        daxfs.Image(model.image + "\0x")
    with pytest.raises(FileNotFoundError) as e:
        img.stat(b"/no\xffsuch")
    assert os.fsencode(e.value.filename) == b"/no\xffsuch"
    with pytest.raises(OSError) as e:
        img.stat("t" * 256)
    assert e.value.errno == errno.ENAMETOOLONG


def test_open_readinto_seek(model):
    img = daxfs.Image(model.image)
    path = "docs/deep/er/blob.bin"
    want = open(os.path.join(model.src, path), "rb").read()
    with img.open(path) as f:
        assert isinstance(f, io.RawIOBase) and f.readable() and f.seekable() and not f.writable()
        assert f.read(10) == want[:10]
        buf = bytearray(1000)
        assert f.readinto(buf) == 1000 and bytes(buf) == want[10:1010]
        assert f.seek(-5, io.SEEK_END) == len(want) - 5
        assert f.read() == want[-5:]
        assert f.read(3) == b""
        f.seek(100)
        assert f.tell() == 100
        assert f.seek(7, io.SEEK_CUR) == 107 and f.read(2) == want[107:109]
        f.seek(len(want) + 10)
        assert f.read(1) == b""
        with pytest.raises(OSError):
            f.seek(-1)
        f.seek(0)
        arr = np.empty(300, np.uint8)
        assert f.readinto(arr) == 300 and arr.tobytes() == want[:300]
    with pytest.raises(ValueError):
        f.read()
    # Buffered and text wrappers work on top.
    assert io.BufferedReader(img.open(path)).read() == want
    assert io.TextIOWrapper(io.BufferedReader(img.open("docs/readme.txt"))).read() == "hello daxfs\n"
    assert img.read_bytes(path) == want


def test_view_is_zero_copy_and_read_only(model):
    img = daxfs.Image(model.image)
    v = img.view("/docs/deep/er/blob.bin")
    assert v.readonly and v.format == "B" and v.nbytes == 25600
    with pytest.raises(TypeError):
        v[0] = 1
    a = np.frombuffer(v, np.uint8)
    assert not a.flags.writeable
    base, size = img.mapping
    assert base <= a.ctypes.data and a.ctypes.data + a.nbytes <= base + size
    # Two views of the file are the same memory, not copies.
    assert np.frombuffer(img.view("/docs/deep/er/blob.bin"), np.uint8).ctypes.data == a.ctypes.data
    # A file of 4 KiB or more starts page-aligned.
    assert a.ctypes.data % 4096 == 0
    assert bytes(img.view("/docs/readme.txt")) == b"hello daxfs\n"


def test_view_outlives_image(model):
    img = daxfs.Image(model.image)
    v = img.view("/docs/deep/er/blob.bin")
    a = np.frombuffer(v, np.uint8)
    addr = a.ctypes.data
    del img, v
    gc.collect()
    assert mapped(addr)
    assert a.tobytes() == bytes(range(256)) * 100
    del a
    gc.collect()
    assert not mapped(addr)  # the last reference unmapped it: nothing leaks


def test_memfd_socket(model, workdir):
    sock = os.path.join(workdir, "serve.sock")
    srv = subprocess.Popen([tool("daxfs"), "serve", model.image, sock, "-q"])
    try:
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        img = daxfs.Image("memfd:" + sock)
        assert img.listdir("/docs") == ["deep", "readme.txt"]
        v = img.view("/docs/readme.txt")
    finally:
        srv.terminate()
        srv.wait(timeout=10)
    assert bytes(v) == b"hello daxfs\n"  # the memfd outlives the server


def test_prefetch(model):
    img = daxfs.Image(model.image)
    img.prefetch("/models/small.safetensors")
    img.prefetch("/docs/readme.txt", wait=False)
    with pytest.raises(IsADirectoryError):
        img.prefetch("/docs")


def test_object_store_image_reads_views_and_prefetches(model, workdir):
    """An object-store image (mkdaxfs --objects): the same bytes and tensors,
    views pinned to their object's mapping, prefetch on that mapping."""
    img_path = os.path.join(workdir, "objects.img")
    subprocess.run([tool("mkdaxfs"), "-q", "--objects", os.path.join(workdir, "objs"), img_path, model.src],
                   check=True)
    img = daxfs.open(img_path)
    assert "objects" in img.info["features"]
    for rel in ["docs/readme.txt", "docs/deep/er/blob.bin", "models/small.safetensors"]:
        with open(os.path.join(model.src, rel), "rb") as f:
            want = f.read()
        assert img.read_bytes(rel) == want
        view = img.view(rel)
        img.prefetch(rel)
        assert bytes(view) == want
    tensors = img.load_safetensors("models/small.safetensors")
    for name, arr in model.small.items():
        np.testing.assert_array_equal(tensors[name], arr)
