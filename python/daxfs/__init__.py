"""Zero-copy access to daxfs images from Python.

    import daxfs, numpy as np
    img = daxfs.Image("/dev/shm/models.img")        # or shm:/x, memfd:/run/daxfs.sock, ...
    mv = img.view("/llama/tokenizer.bin")           # read-only memoryview into the mapping
    arr = np.frombuffer(mv, dtype=np.uint8)         # shares memory with the image
    weights = daxfs.safetensors.load_file(img, "/llama/model.safetensors")

Views, arrays and tensors made from an image keep its mapping alive after
the Image object is dropped. Everything is read-only: the mapping is
PROT_READ, so writing through a torch tensor made from it (torch cannot
mark tensors read-only) kills the process with SIGSEGV.
"""

import io
import os
import stat as _stat

from . import _daxfs
from ._daxfs import SafetensorsError

__all__ = ["Image", "File", "SafetensorsError", "open", "safetensors"]


def _path(path):
    path = os.fsencode(path)
    if b"\0" in path:  # as os.stat and open() do; a C path would end there
        raise ValueError("embedded null byte")
    if not path.startswith(b"/"):
        path = b"/" + path
    return path


def _stat_result(t):
    ino, mode, nlink, uid, gid, size, blocks, mtime, mtime_nsec, rmaj, rmin = t
    mtime_ns = mtime * 1_000_000_000 + mtime_nsec
    mtime_f = mtime + mtime_nsec / 1e9
    return os.stat_result(
        (mode, ino, 0, nlink, uid, gid, size, mtime, mtime, mtime),
        {"st_atime": mtime_f, "st_mtime": mtime_f, "st_ctime": mtime_f,
         "st_atime_ns": mtime_ns, "st_mtime_ns": mtime_ns, "st_ctime_ns": mtime_ns,
         "st_blksize": 4096, "st_blocks": blocks, "st_rdev": os.makedev(rmaj, rmin)})


class Image:
    """A daxfs image opened read-only from a region descriptor.

    spec: anything the daxfs tools accept: a path, shm:/NAME,
    hugetlbfs:PATH, dax:/dev/daxX.Y, phys:ADDR+SIZE, resource:PATH, fd:N,
    memfd:SOCKET (a `daxfs serve` socket). verify=True checks the metadata
    checksum at open.
    """

    def __init__(self, spec, *, verify=False):
        spec = os.fsencode(spec)
        if b"\0" in spec:
            raise ValueError("embedded null byte")
        self._img = _daxfs.Image(spec, verify)
        self.spec = spec

    # Context manager: close() drops this object's reference; views made
    # from the image keep the mapping alive until they are gone too.
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._img = None

    @property
    def closed(self):
        return self._img is None

    def _i(self):
        if self._img is None:
            raise ValueError("I/O operation on a closed daxfs image")
        return self._img

    def __repr__(self):
        return f"<daxfs.Image {self.spec!r}{' closed' if self._img is None else ''}>"

    @property
    def info(self):
        """Superblock summary: sizes, inode and file counts, label, features."""
        return self._i().info()

    @property
    def mapping(self):
        """(address, size) of the whole region as mapped into this process."""
        m = self._i().region_mapping()
        return m.address, len(m)

    def check(self):
        """Raises OSError(EIO) if memory behind the region was lost (see README, SIGBUS)."""
        self._i().check_region()

    def stat(self, path):
        """os.stat_result of `path` (symlinks are not followed)."""
        return _stat_result(self._i().stat(_path(path)))

    lstat = stat

    def exists(self, path):
        try:
            self._i().resolve(_path(path))
            return True
        except OSError:
            return False

    def isdir(self, path):
        try:
            return _stat.S_ISDIR(self.stat(path).st_mode)
        except OSError:
            return False

    def isfile(self, path):
        try:
            return _stat.S_ISREG(self.stat(path).st_mode)
        except OSError:
            return False

    def _scandir(self, path):
        return self._i().scandir(_path(path))

    def listdir(self, path="/"):
        """Names in directory `path` (str, or bytes when `path` is bytes), sorted."""
        names = [n for n, _, _ in self._scandir(path)]
        return names if isinstance(path, bytes) else [os.fsdecode(n) for n in names]

    def walk(self, top="/", topdown=True):
        """Like os.walk: yields (dirpath, dirnames, filenames); symlinks are not followed."""
        as_bytes = isinstance(top, bytes)
        dec = (lambda b: b) if as_bytes else os.fsdecode
        sep = b"/" if as_bytes else "/"
        dirs, files = [], []
        for name, _, mode in self._scandir(top):
            (dirs if _stat.S_ISDIR(mode) else files).append(dec(name))
        if topdown:
            yield top, dirs, files
        for d in dirs:
            child = top + d if top.endswith(sep) else top + sep + d
            yield from self.walk(child, topdown)
        if not topdown:
            yield top, dirs, files

    def readlink(self, path):
        t = self._i().readlink(_path(path))
        return t if isinstance(path, bytes) else os.fsdecode(t)

    def view(self, path):
        """A read-only memoryview of a regular file's bytes, pointing into the
        shared mapping (no copy). It keeps the image mapped while it (or any
        array made from it) lives."""
        return memoryview(self._i().mapping(_path(path)))

    def open(self, path, mode="rb"):
        """A read-only binary file object (io.RawIOBase) over a regular file."""
        if mode not in ("r", "rb"):
            raise ValueError(f"daxfs images are read-only: mode {mode!r}")
        return File(self, path)

    def read_bytes(self, path):
        """The file's contents as bytes (a copy)."""
        data = bytes(self.view(path))
        self.check()
        return data

    def prefetch(self, path, wait=True):
        """Fills the page tables for a file's data now (MADV_POPULATE_READ)
        so later reads take no page faults; wait=False only starts reading
        ahead (MADV_WILLNEED). No copy is made."""
        self._i().mapping(_path(path)).prefetch(0, 2**64 - 1, wait)

    def load_safetensors(self, path, framework="numpy", prefetch=False):
        """dict name -> array/tensor viewing the tensors of a .safetensors file."""
        from . import safetensors
        return safetensors.load_file(self, path, framework=framework, prefetch=prefetch)


def open(spec, *, verify=False):  # noqa: A001 (module-level like tarfile.open)
    """Opens an image: same as Image(spec)."""
    return Image(spec, verify=verify)


class File(io.RawIOBase):
    """A regular file of an image as a read-only, seekable binary file.

    readinto() copies out of the mapping (one memcpy, nothing else); for zero
    copy use .view() or Image.view().
    """

    def __init__(self, image, path):
        super().__init__()
        self._image = image
        self.name = path
        self._view = image.view(path)
        self._pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def writable(self):
        return False

    def view(self):
        """The whole file as a read-only memoryview into the mapping."""
        self._checkClosed()
        return self._view

    def readinto(self, b):
        self._checkClosed()
        with memoryview(b) as dst:
            dst = dst.cast("B")
            n = max(0, min(len(dst), len(self._view) - self._pos))
            if n:
                dst[:n] = self._view[self._pos:self._pos + n]
                self._pos += n
                self._image.check()
            return n

    def readall(self):
        self._checkClosed()
        data = bytes(self._view[self._pos:])
        self._pos += len(data)
        self._image.check()
        return data

    def seek(self, offset, whence=io.SEEK_SET):
        self._checkClosed()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = len(self._view) + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if pos < 0:
            raise OSError(22, "negative seek position")
        self._pos = pos
        return pos

    def tell(self):
        self._checkClosed()
        return self._pos

    def fileno(self):
        raise io.UnsupportedOperation("a daxfs file has no descriptor")

    def close(self):
        if not self.closed:
            self._view = None
        super().close()


from . import safetensors  # noqa: E402  (the submodule uses Image)
