// DAXFS_EXPORT marks what libdaxfs.so exports: the classes and functions
// declared in include/daxfs. The library is built with hidden visibility,
// so everything else (src/) stays internal and may change in any release.
#pragma once

#define DAXFS_EXPORT __attribute__((visibility("default")))
