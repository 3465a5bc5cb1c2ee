"""Shims that let pip (and programs like it) run on kiln-python's CPython for WASI.

Python imports this module at start-up because it sits in site-packages. Each shim fills a gap
of WASI preview 1 that would otherwise stop pip at import time; none changes what a program
that already works sees. What each one does, and why:

- os.getuid: WASI has no users, so the build has no getuid. pip's vendored platformdirs
  imports it at module level. It returns 0, the user a container's steps run as by default.
  geteuid stays missing on purpose: with it, tarfile would take the program for root and call
  os.chown, which WASI does not have either.
- os.umask: WASI has no file mode creation mask. pip asks for it (set, then restore) to work
  out the modes of the files it installs. This one keeps the value it is given, starting at
  0o022, and returns the previous one, as umask(2) does.
- the working directory: kiln gives a WASI program its WORKDIR by instrumenting wasi-libc in
  the module, which needs a name section this interpreter does not have, so Python starts at /
  and kiln warns. kiln still sets PWD, and this wasi-libc has chdir, so Python moves there.
  The script of `python3 script.py` is found before this module runs: a relative script path
  is still taken from /.
- mmap, for pip only: pip's vendored libraries import mmap at module level (cachecontrol to
  cache HTTP responses, rich for progress bars over files) but pip never gets as far as using
  it here. Once pip's vendored libraries are being imported (and only then), `import mmap`
  finds a stand-in whose mmap() raises OSError(ENOTSUP). Every other program still gets
  ModuleNotFoundError, as it should, and can fall back on its own.
"""

import os
import sys

if not hasattr(os, "getuid"):

    def _getuid():
        return 0

    os.getuid = _getuid

if not hasattr(os, "umask"):
    _umask = 0o022

    def _set_umask(mask):
        global _umask
        previous, _umask = _umask, mask
        return previous

    os.umask = _set_umask

_pwd = os.environ.get("PWD", "")
if _pwd.startswith("/") and _pwd != "/" and os.getcwd() == "/":
    try:
        os.chdir(_pwd)
    except OSError:
        pass  # a PWD that is not a directory: stay at /, as before
del _pwd


class _PipMmapFinder:
    """Finds a stand-in mmap module while pip's vendored libraries are imported (see above)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "mmap" or "pip._vendor" not in sys.modules:
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
