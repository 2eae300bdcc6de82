#!/usr/bin/env bash
# Writable main shared by two mounts (two containers or agents on one
# region): open(O_CREAT) without O_EXCL of a name the other mount creates
# at the same moment opens that file, never EEXIST (names of main are not
# cached, so the name can appear between the kernel's lookup and its
# create); with O_EXCL exactly one of the two wins; a user racing root for
# a name never gets write access to root's file (the kernel takes the file
# for one it created and checks nothing: the mount does).
source "$(dirname "$0")/lib.bash" "$1"
[ -x /usr/bin/python3 ] || skip "no /usr/bin/python3"
make_branch_region "$WORK/region"
chmod 755 "$WORK"
mount_image "$WORK/region" "$WORK/a" -o main=writable,allow_other
mount_image "$WORK/region" "$WORK/b" -o main=writable,allow_other
mkdir "$WORK/a/shared"; chmod 1777 "$WORK/a/shared"

cat > "$WORK/race.py" <<'PY'
import errno, os, sys, multiprocessing as mp
a, b, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def worker(mnt, as_user, bar, q):
    if as_user:
        os.setgid(65534); os.setuid(65534)
    out = []
    flags = os.O_CREAT | os.O_WRONLY | (os.O_EXCL if mode == "excl" else 0)
    for i in range(n):
        bar.wait()
        try:
            fd = os.open(f"{mnt}/shared/r{i}", flags, 0o644)
            os.write(fd, b"x")
            out.append((i, "ok", os.fstat(fd).st_uid))
            os.close(fd)
        except OSError as e:
            out.append((i, errno.errorcode[e.errno], None))
    q.put((mnt, out))
q, bar = mp.Queue(), mp.Barrier(2)
ps = [mp.Process(target=worker, args=(a, False, bar, q)),
      mp.Process(target=worker, args=(b, mode == "user", bar, q))]
for p in ps: p.start()
res = dict(q.get() for _ in ps)
for p in ps: p.join()
ra, rb = res[a], res[b]
bad = []
for (i, x, _), (_, y, uid) in zip(ra, rb):
    if mode == "plain" and (x, y) != ("ok", "ok"):
        bad.append((i, x, y))
    if mode == "excl" and sorted((x, y)) != ["EEXIST", "ok"]:
        bad.append((i, x, y))
    if mode == "user" and x != "ok" or mode == "user" and y == "ok" and uid != 65534 or \
            mode == "user" and y not in ("ok", "EACCES"):
        bad.append((i, x, y, uid))
if bad:
    sys.exit(f"{mode}: {len(bad)} of {n} races went wrong, e.g. {bad[:5]}")
print(f"{mode}: {n} races, {sum(1 for _, y, _ in rb if y != 'ok')} lost by the second mount")
PY
/usr/bin/python3 "$WORK/race.py" "$WORK/a" "$WORK/b" plain 300 || fail "O_CREAT races"
rm -f "$WORK/a/shared/"*
/usr/bin/python3 "$WORK/race.py" "$WORK/a" "$WORK/b" excl 300 || fail "O_CREAT|O_EXCL races"
rm -f "$WORK/a/shared/"*
/usr/bin/python3 "$WORK/race.py" "$WORK/a" "$WORK/b" user 300 || fail "races with another user"
[ "$(ls "$WORK/a/shared" | wc -l)" = 300 ] || fail "files missing after the races"
"$DAXFS" branch check "$WORK/region" -q || fail "check after the races"
echo PASS
