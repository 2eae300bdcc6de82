#!/usr/bin/env bash
# --json (docs/JSON.md): daxfs stat --json of every entry equals lstat(2) of
# the source tree (type, mode, owner, size, ns mtime, link count, device
# numbers, symlink target, xattrs); info, check (clean and damaged) and
# branch list give their documented fields; a name that is not UTF-8 still
# makes valid JSON.
set -euo pipefail
source "$(dirname "$0")/lib.bash" "$1"
D=$BUILD/daxfs
S=$W/src
mkdir -p "$S/sub/deeper"
printf 'hello\n' > "$S/hello"
head -c 100000 /dev/urandom > "$S/sub/big"
ln "$S/hello" "$S/sub/hard"
ln -s hello "$S/link"
mkfifo "$S/fifo"
[ "$(id -u)" = 0 ] && mknod "$S/null" c 1 3
chmod 4750 "$S/sub/big"
touch -d '2001-02-03 04:05:06.123456789' "$S/hello"
setfattr -n user.note -v "a value" "$S/hello" 2>/dev/null || true
printf 'x' > "$S/$(printf 'bad\377name')"
"$BUILD/mkdaxfs" -q "$W/img" "$S"

/usr/bin/python3 - "$D" "$W/img" "$S" <<'PY'
import json, os, stat, subprocess, sys
daxfs, img, src = sys.argv[1:]
def run(*args, rc=0):
    p = subprocess.run([daxfs, *args], capture_output=True)
    assert p.returncode == rc, (args, p.returncode, p.stderr)
    return json.loads(p.stdout)  # valid JSON, whatever the names
types = {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink", stat.S_IFCHR: "char-device",
         stat.S_IFBLK: "block-device", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}
n = 0
for root, dirs, files in os.walk(src):
    for name in dirs + files:
        full = os.path.join(root, name)
        rel = "/" + os.path.relpath(full, src)
        if not rel.isprintable() or "\ufffd" in rel or any(ord(c) > 127 for c in rel):
            continue  # the undecodable name is checked below
        st = os.lstat(full)
        j = run("stat", "--json", img, rel)
        assert j["schema"] == "daxfs.stat/1", j
        want = {"type": types[stat.S_IFMT(st.st_mode)], "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                "gid": st.st_gid, "nlink": st.st_nlink}
        got = {k: j[k] for k in want}
        assert got == want, (rel, got, want)
        assert j["mtime"]["sec"] * 10**9 + j["mtime"]["nsec"] == st.st_mtime_ns, rel
        if stat.S_ISREG(st.st_mode):
            assert j["size"] == st.st_size, rel
            assert st.st_size == 0 or "data" in j, rel
        if stat.S_ISLNK(st.st_mode):
            assert j["target"] == os.readlink(full), rel
        if stat.S_ISCHR(st.st_mode):
            assert j["rdev"] == {"major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}, rel
        want_x = sorted((x, os.getxattr(full, x, follow_symlinks=False).hex()) for x in os.listxattr(full, follow_symlinks=False))
        got_x = sorted((x["name"], x["value_hex"]) for x in j["xattrs"])
        assert got_x == want_x, (rel, got_x, want_x)
        n += 1
info = run("info", "--json", img)
assert info["schema"] == "daxfs.info/1" and info["format"] == "compact", info
inodes = {os.lstat(src).st_ino}
for root, dirs, files in os.walk(src):
    inodes.update(os.lstat(os.path.join(root, x)).st_ino for x in dirs + files)
assert info["inodes"] == len(inodes), (info["inodes"], len(inodes))
assert "compact-dirs" in info["features"] and isinstance(info["features"], list), info
check = run("check", "--json", img)
assert check["schema"] == "daxfs.check/1" and check["clean"] and check["problems"] == [], check
print(f"{n} entries match lstat")
PY
# The name that is not UTF-8: valid JSON, the bad byte replaced.
"$D" stat --json "$W/img" "/$(printf 'bad\377name')" > "$IO/out"
/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["path"] == "/bad\ufffdname", j["path"]' "$IO/out" ||
  fail "a non-UTF-8 name did not give valid JSON with U+FFFD: $(cat "$IO/out")"
# A damaged image: clean false, the problems listed, exit 4 as in text mode.
cp "$W/img" "$W/bad"
size=$(stat -c %s "$W/bad")
printf '\377\377\377\377' | dd of="$W/bad" bs=1 seek=$((size - 200)) conv=notrunc status=none
expect_rc 4 "$D" check --json "$W/bad"
/usr/bin/python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert not j["clean"] and j["problems"], j' "$IO/out" ||
  fail "check --json of a damaged image: $(cat "$IO/out")"
# Branch list.
"$D" branch init -q "$W/img" "$W/region" --delta 16M
"$D" branch create "$W/region" b1 > /dev/null
"$D" branch list --json "$W/region" > "$IO/out"
/usr/bin/python3 - "$IO/out" <<'PY' || fail "branch list --json: $(cat "$IO/out")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["schema"] == "daxfs.branch-list/1"
b = {x["name"]: x for x in j["branches"]}
assert b["main"]["parent"] is None and b["b1"]["parent"] == "main" and b["b1"]["state"] == "active", b
assert b["b1"]["siblings"] in ("merge", "first-wins") and j["delta"]["size"] > 0 and j["slots_used"] >= 2, j
PY
echo PASS
