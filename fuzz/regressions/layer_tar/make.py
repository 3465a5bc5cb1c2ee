#!/usr/bin/env python3
"""Writes the slow layer_tar reproducers into this directory (see README.md).

    python3 make.py            # the committed sizes
    python3 make.py 4          # every count times 4, for a longer stall
"""
import gzip
import io
import sys
import tarfile

scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1


def layer(entries):
    """A gzip'd GNU tar of empty entries (name, type), byte-for-byte reproducible."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mtime = 0
            tar.addfile(info, io.BytesIO(b""))
    return gzip.compress(buf.getvalue(), compresslevel=9, mtime=0)


def write(name, entries):
    with open(name, "wb") as f:
        f.write(layer(entries))


REG, DIR = tarfile.REGTYPE, tarfile.DIRTYPE
depth = 1600 * scale
write("slow-deep-path-1600.tar.gz", [("a/" * depth + "f", REG)])
write("slow-deep-paths-20x1600.tar.gz", [("a/" * depth + f"f{i}", REG) for i in range(20 * scale)])
n = 1000 * scale
write("slow-opaque-markers-1000.tar.gz", [("d", DIR)] + [(f"d/f{i}", REG) for i in range(n)] + [("d/.wh..wh..opq", REG)] * n)
n = 10000 * scale
write("slow-whiteouts-10000.tar.gz", [(f"f{i}", DIR) for i in range(n)] + [(f".wh.f{i}", REG) for i in range(n)])
