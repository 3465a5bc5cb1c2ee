"""build.py SRC OUT.pyz: packs the package directories of SRC into an executable zip (a zipapp).

zipapp itself would store each file's modification time, which the build context passes on
from the checkout; this writes every entry with one fixed date, in sorted order, so the same
sources always give the same bytes. Python runs OUT.pyz through its __main__.py.
"""

import pathlib
import sys
import zipfile

FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold


def main(src, out):
    src, out = pathlib.Path(src), pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)
    with zipfile.ZipFile(out, "w") as archive:
        for path in files:
            entry = zipfile.ZipInfo(path.relative_to(src).as_posix(), FIXED_DATE)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, path.read_bytes())
        # What `python3 OUT.pyz` runs: the package's own __main__.
        main_entry = zipfile.ZipInfo("__main__.py", FIXED_DATE)
        archive.writestr(main_entry, "from wordfreq.__main__ import main\nmain()\n")
    print(f"{out}: {len(files)} modules")


if __name__ == "__main__":
    main(*sys.argv[1:])
