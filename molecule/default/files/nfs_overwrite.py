#!/usr/bin/env python3
"""Overwrite an existing file over NFS with libnfs, as the URL's uid and gid.

    nfs_overwrite.py 'nfs://SERVER/EXPORT/FILE?version=4&uid=0&gid=0' TEXT

Opens FILE with O_WRONLY|O_TRUNC (never creates it) and writes TEXT, the way a program
on a mounted share replaces a file's contents. nfs-cp cannot do this: it creates its
destination exclusively and fails with NFS4ERR_EXIST on any existing file, whoever asks.
Exit 0 when the file was overwritten; 1 with libnfs's error on stderr when the server
refused. libnfs 4.0 (Debian 12's libnfs13) API.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys


class NfsUrl(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


def main() -> int:
    url, text = sys.argv[1], sys.argv[2].encode()
    lib = ctypes.CDLL(ctypes.util.find_library("nfs") or "libnfs.so.13")
    lib.nfs_init_context.restype = ctypes.c_void_p
    lib.nfs_get_error.restype = ctypes.c_char_p
    lib.nfs_get_error.argtypes = [ctypes.c_void_p]
    lib.nfs_parse_url_full.restype = ctypes.POINTER(NfsUrl)
    lib.nfs_parse_url_full.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nfs_mount.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    handle_p = ctypes.POINTER(ctypes.c_void_p)
    lib.nfs_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, handle_p]
    # libnfs 4.0: nfs_pwrite(nfs, fh, offset, count, buf)
    lib.nfs_pwrite.restype = ctypes.c_int
    lib.nfs_pwrite.argtypes = [
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_uint64,
        ctypes.c_uint64,
        ctypes.c_char_p,
    ]
    lib.nfs_close.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

    nfs = lib.nfs_init_context()
    parsed = lib.nfs_parse_url_full(nfs, url.encode())
    if not parsed:
        print(f"bad URL {url}: {lib.nfs_get_error(nfs).decode()}", file=sys.stderr)
        return 2
    if lib.nfs_mount(nfs, parsed.contents.server, parsed.contents.path) != 0:
        print(f"mount failed: {lib.nfs_get_error(nfs).decode()}", file=sys.stderr)
        return 1
    handle = ctypes.c_void_p()
    if lib.nfs_open(nfs, parsed.contents.file, os.O_WRONLY | os.O_TRUNC, ctypes.byref(handle)) != 0:
        print(f"open for writing refused: {lib.nfs_get_error(nfs).decode()}", file=sys.stderr)
        return 1
    written = lib.nfs_pwrite(nfs, handle, 0, len(text), text)
    closed = lib.nfs_close(nfs, handle)
    if written != len(text) or closed != 0:
        error = lib.nfs_get_error(nfs).decode()
        print(f"write refused ({written}, close {closed}): {error}", file=sys.stderr)
        return 1
    print(f"overwrote {url} with {len(text)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
