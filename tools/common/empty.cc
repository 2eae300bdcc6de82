// libdaxfs.so is made of libdaxfs.a's objects (linked whole); a shared
// library target needs one source of its own.
