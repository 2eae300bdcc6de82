#!/usr/bin/env bash
# The installed C++ library: `cmake --install --component dev` gives
# libdaxfs.so.0.1 (SONAME: the minor version while 0.x), libdaxfs.a, the public headers (each compiles on
# its own), daxfs.pc and the CMake package; an out-of-tree program built
# with find_package(daxfs) and one built with pkg-config both read a file of
# a real image zero-copy.
set -euo pipefail
source "$(dirname "$0")/lib.bash" "$1"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ -e "$BUILD/libdaxfs.so" ] || { echo "SKIP: no libdaxfs.so in $BUILD"; exit 77; }
# A sanitized library needs its runtime first in every program that loads it.
if grep -q '^DAXFS_SANITIZE:STRING=.\+' "$BUILD/CMakeCache.txt"; then echo "SKIP: sanitized build"; exit 77; fi
command -v pkg-config >/dev/null || { echo "SKIP: no pkg-config"; exit 77; }
P=$W/prefix
cmake --install "$BUILD" --prefix "$P" --component dev > "$IO/out" || fail "cmake --install: $(cat "$IO/out")"
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt"); lib=$P/${libdir:-lib}
[ "$(readelf -d "$lib/libdaxfs.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')" = libdaxfs.so.0.1 ] || fail "SONAME"
[ -f "$lib/libdaxfs.a" ] || fail "no static library"
for h in "$P"/include/daxfs/*.h; do
  echo "#include <daxfs/$(basename "$h")>" | g++ -std=c++20 -fsyntax-only -Wall -Wextra -Werror -I"$P/include" -x c++ - ||
    fail "$(basename "$h") does not compile on its own"
done
mkdir -p "$W/src/d"; printf 'zero-copy from an installed libdaxfs\n' > "$W/src/d/f"
"$BUILD/mkdaxfs" -q "$W/img" "$W/src"
cmake -S "$SRC/tests/install/consumer" -B "$W/cbuild" -G Ninja -DCMAKE_PREFIX_PATH="$P" > "$IO/out" 2>&1 ||
  fail "find_package(daxfs): $(cat "$IO/out")"
cmake --build "$W/cbuild" > "$IO/out" 2>&1 || fail "building against daxfs::daxfs: $(cat "$IO/out")"
[ "$(LD_LIBRARY_PATH=$lib "$W/cbuild/daxfs_consumer" "$W/img" /d/f)" = "$(cat "$W/src/d/f")" ] ||
  fail "the find_package program read other bytes"
export PKG_CONFIG_PATH=$lib/pkgconfig
# shellcheck disable=SC2046
g++ -std=c++20 -o "$W/pc_consumer" "$SRC/tests/install/consumer/main.cc" $(pkg-config --cflags --libs daxfs) ||
  fail "building with pkg-config --cflags --libs daxfs"
[ "$(LD_LIBRARY_PATH=$lib "$W/pc_consumer" "$W/img" /d/f)" = "$(cat "$W/src/d/f")" ] ||
  fail "the pkg-config program read other bytes"
# Exports, both ways: every function of the public headers links from the
# shared library, and of daxfs's own names the library exports only those
# include/daxfs marks DAXFS_EXPORT (instances of std:: templates are
# exported weak, as from any C++ library).
# shellcheck disable=SC2046
g++ -std=c++20 -Wall -Wextra -Werror -o "$W/api_exports" "$SRC/tests/install/api_exports.cc" \
  $(pkg-config --cflags --libs daxfs) > "$IO/out" 2>&1 || fail "a public function is not exported: $(cat "$IO/out")"
LD_LIBRARY_PATH=$lib "$W/api_exports" > "$IO/out" || fail "api_exports: $(cat "$IO/out")"
sed -n 's/.*\(class\|struct\) DAXFS_EXPORT \([A-Za-z_0-9]*\).*/\2/p; s/^DAXFS_EXPORT [^(]*[^A-Za-z_0-9(]\([A-Za-z_0-9]*\)(.*/\1/p' \
  "$P"/include/daxfs/*.h | sort -u > "$W/api"
[ "$(wc -l < "$W/api")" -ge 30 ] || fail "found only $(wc -l < "$W/api") DAXFS_EXPORT names in the headers"
nm -DC --defined-only "$lib/libdaxfs.so" | cut -d' ' -f3- |
  sed 's/^\(typeinfo name for\|typeinfo for\|vtable for\|VTT for\|guard variable for\) //' |
  sed -n 's/^daxfs::\(safetensors::\)\{0,1\}\([A-Za-z_0-9]*\).*/\2/p' | sort -u > "$W/exported"
extra=$(comm -13 "$W/api" "$W/exported")
[ -z "$extra" ] || fail "libdaxfs.so exports internal names: $extra"
missing=$(comm -23 "$W/api" "$W/exported")
[ -z "$missing" ] || fail "libdaxfs.so does not export: $missing"
echo PASS
