"""Shims that let pip (and programs like it) run on kiln-python's CPython for WASI.

Python imports this module at start-up because it sits in site-packages. Each shim fills a gap
of WASI preview 1 that would otherwise stop pip at import time; none changes what a program
that already works sees. What each one does, and why:

- os.getuid, os.geteuid, os.getgid, os.getegid: WASI has no users, so the build has none of
  these. pip's vendored platformdirs imports getuid at module level. They return 0, the user
  a container's steps run as by default.
- os.umask: WASI has no file mode creation mask. pip asks for it (set, then restore) to work
  out the modes of the files it installs. This one keeps the value it is given, starting at
  0o022, and returns the previous one, as umask(2) does.
- mmap, for pip only: pip's vendored cachecontrol imports mmap at module level but uses it only
  to cache HTTP responses, which a build with no network never downloads. Once that package is
  being imported (and only then), `import mmap` finds a stand-in whose mmap() raises
  OSError(ENOTSUP). Every other program still gets ModuleNotFoundError, as it should, and can
  fall back on its own.
"""

import os
import sys

if not hasattr(os, "getuid"):

    def _root():
        return 0

    os.getuid = os.geteuid = os.getgid = os.getegid = _root

if not hasattr(os, "umask"):
    _umask = 0o022

    def _set_umask(mask):
        global _umask
        previous, _umask = _umask, mask
        return previous

    os.umask = _set_umask


class _PipMmapFinder:
    """Finds a stand-in mmap module while pip's cachecontrol is being imported (see above)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "mmap" or "pip._vendor.cachecontrol" not in sys.modules:
            return None
        import importlib.machinery

        return importlib.machinery.ModuleSpec(name, _PipMmapFinder)

    @staticmethod
    def create_module(spec):
        return None

    @staticmethod
    def exec_module(module):
        import errno

        module.ACCESS_DEFAULT, module.ACCESS_READ, module.ACCESS_WRITE, module.ACCESS_COPY = 0, 1, 2, 3

        def mmap(*args, **kwargs):
            raise OSError(errno.ENOTSUP, "mmap is not available in WASI")

        module.mmap = mmap


sys.meta_path.append(_PipMmapFinder)
