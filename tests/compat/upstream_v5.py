#!/usr/bin/env python3
"""An independent model of the upstream daxfs v5 tools, written from
../shared/reference/upstream-daxfs-v5.md (the facts about upstream's
mkdaxfs and kernel module), used to test compatibility in both directions:

  upstream_v5.py write SRC IMG   build an image the way upstream mkdaxfs does
                                 (readdir order, one block per symlink,
                                 ALIGN(271 * n) per directory, 272 stride and
                                 its spill, nlink copied from the source)
  upstream_v5.py read IMG SRC    read IMG with the upstream module's rules
                                 (linear scans, size / 271 entries at stride
                                 272, data at base + data_offset, symlink up
                                 to NUL) and compare every entry with SRC
"""
import os
import stat
import struct
import sys

BLOCK = 4096
SUPER_MAGIC, BASE_MAGIC = 0x64617835, 0x64646135


def align(v, a=BLOCK):
    return (v + a - 1) // a * a


def write(src, img):
    entries = []  # (path, lstat, parent_index) in upstream's scan order
    inos, links = [], {}

    def scan(path, parent):
        st = os.lstat(path)
        idx = len(entries)
        entries.append((path, st, parent))
        if stat.S_ISDIR(st.st_mode):
            for de in os.scandir(path):  # readdir order, unsorted
                scan(de.path, idx)

    scan(src, -1)
    ino_of = []
    for path, st, _ in entries:
        key = (st.st_dev, st.st_ino)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in links:
            ino_of.append(links[key])
            continue
        inos.append(len(ino_of))
        ino_of.append(len(inos))
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            links[key] = len(inos)
    n = len(inos)
    children = {i: [] for i in range(len(entries))}
    for i, (_, _, parent) in enumerate(entries):
        if parent >= 0:
            children[parent].append(i)
    data_start = align(BLOCK + 64 * n)
    cursor = data_start
    layout = {}  # ino -> (size, data_offset)
    done = set()
    for i, (path, st, _) in enumerate(entries):
        ino = ino_of[i]
        if ino in done:
            continue
        done.add(ino)
        m = st.st_mode
        if stat.S_ISREG(m):
            layout[ino] = (st.st_size, cursor)
            cursor += align(st.st_size)
        elif stat.S_ISLNK(m):
            t = os.readlink(path).encode()
            layout[ino] = (len(t), cursor)
            cursor += align(len(t) + 1)
        elif stat.S_ISDIR(m) and children[i]:
            cnt = len(children[i])
            layout[ino] = (cnt * 271, cursor)
            cursor += align(cnt * 271)
        else:
            layout[ino] = (0, 0)
    base_size = cursor
    total = BLOCK + base_size
    buf = bytearray(total + 64)  # room for the last directory's spill
    struct.pack_into('<IIIIQQQ', buf, 0, SUPER_MAGIC, 5, 0, BLOCK, total, BLOCK, base_size)
    struct.pack_into('<Q', buf, 64, n + 1)
    b = BLOCK
    struct.pack_into('<IIIIQQIIQ', buf, b, BASE_MAGIC, 5, 0, BLOCK, base_size, BLOCK, n, 1, data_start)
    written = set()
    for i, (path, st, _) in enumerate(entries):  # inode table
        ino = ino_of[i]
        if ino in written:
            continue
        written.add(ino)
        size, off = layout[ino]
        struct.pack_into('<IIIIQQI', buf, b + BLOCK + 64 * (ino - 1), ino, st.st_mode, st.st_uid,
                         st.st_gid, size, off, st.st_nlink)
    for i, (path, st, _) in enumerate(entries):  # dirent arrays (may spill)
        if stat.S_ISDIR(st.st_mode) and children[i]:
            _, off = layout[ino_of[i]]
            for k, c in enumerate(children[i]):
                name = os.path.basename(entries[c][0]).encode()
                struct.pack_into('<IIH', buf, b + off + 272 * k, ino_of[c], entries[c][1].st_mode, len(name))
                buf[b + off + 272 * k + 16:b + off + 272 * k + 16 + len(name)] = name
    for i, (path, st, _) in enumerate(entries):  # symlink targets, then data
        if stat.S_ISLNK(st.st_mode):
            t = os.readlink(path).encode() + b'\0'
            off = layout[ino_of[i]][1]
            buf[b + off:b + off + len(t)] = t
    for i, (path, st, _) in enumerate(entries):
        if stat.S_ISREG(st.st_mode) and st.st_size:
            off = layout[ino_of[i]][1]
            with open(path, 'rb') as f:
                buf[b + off:b + off + st.st_size] = f.read()
    with open(img, 'wb') as f:
        f.write(bytes(buf[:total]))


def read(img, src):
    data = open(img, 'rb').read()
    magic, version, _, _, total, base_off, base_size = struct.unpack_from('<IIIIQQQ', data, 0)
    assert magic == SUPER_MAGIC and version == 5, 'superblock'
    assert total <= len(data)
    b = base_off
    bmagic, _, _, _, _, ioff, count, root, _ = struct.unpack_from('<IIIIQQIIQ', data, b)
    assert bmagic == BASE_MAGIC, 'base superblock'

    def inode(ino):
        return struct.unpack_from('<IIIIQQI', data, b + ioff + 64 * (ino - 1))

    problems = []

    def walk(ino, path):
        i = inode(ino)
        if i[0] != ino:
            problems.append(f'{path}: inode number {i[0]} != {ino}')
        st = os.lstat(path)
        mode, uid, gid, size, off = i[1], i[2], i[3], i[4], i[5]
        if mode != st.st_mode or uid != st.st_uid or gid != st.st_gid:
            problems.append(f'{path}: mode/uid/gid {mode:o}/{uid}/{gid} vs {st.st_mode:o}/{st.st_uid}/{st.st_gid}')
        if stat.S_ISREG(mode):
            want = open(path, 'rb').read()
            if size != len(want) or data[b + off:b + off + size] != want:
                problems.append(f'{path}: contents differ')
            # The module's MAP_SHARED fault maps the image page itself when a
            # file's data is page-aligned (else it copies and zero-fills), so
            # what follows EOF in that page must be zeros, as POSIX promises.
            if size and (b + off) % BLOCK == 0:
                tail = data[b + off + size:b + align(off + size)]
                if tail.strip(b'\0'):
                    problems.append(f'{path}: bytes after EOF in its last page are not zero (mmap would show them)')
        elif stat.S_ISLNK(mode):
            end = data.index(b'\0', b + off)
            if data[b + off:end] != os.readlink(path).encode():
                problems.append(f'{path}: symlink target differs')
        elif stat.S_ISDIR(mode):
            names = set()
            for k in range(size // 271):  # the kernel's count and stride
                e = b + off + 272 * k
                cino, cmode, nlen = struct.unpack_from('<IIH', data, e)
                name = data[e + 16:e + 16 + nlen].decode('utf-8', 'surrogateescape')
                names.add(name)
                if cmode != inode(cino)[1]:
                    problems.append(f'{path}/{name}: dirent mode differs from inode')
                walk(cino, os.path.join(path, name))
            if names != set(os.listdir(path)):
                problems.append(f'{path}: names differ: {sorted(names ^ set(os.listdir(path)))}')

    walk(root, src)
    for p in problems:
        print('upstream-read:', p)
    return 1 if problems else 0


if __name__ == '__main__':
    if len(sys.argv) != 4 or sys.argv[1] not in ('write', 'read'):
        print(__doc__)
        sys.exit(2)
    if sys.argv[1] == 'write':
        write(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(read(sys.argv[2], sys.argv[3]))
