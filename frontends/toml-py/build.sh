#!/usr/bin/env bash
# Builds the TOML frontend (app.py) into a WebAssembly component, frontends/toml.wasm, with
# componentize-py against wit/kiln-build.wit (world `frontend`).
#
# Usage: frontends/toml-py/build.sh
# The first run makes a virtual environment under the target directory
# (${CARGO_TARGET_DIR:-target}/toml-py-venv) and installs componentize-py from PyPI into it; a
# run with the component newer than its inputs does nothing. PYTHON names the interpreter that
# makes the environment (default python3, 3.9 or newer; the component carries its own CPython).
set -euo pipefail
cd "$(dirname "$0")/../.."

COMPONENTIZE_PY_VERSION=0.25.1
app=frontends/toml-py/app.py
wit=wit/kiln-build.wit
out=frontends/toml.wasm

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
venv="$target/toml-py-venv"
mkdir -p "$target"

# One build at a time: tests may start this script from several processes at once.
exec 9>"$target/toml-py-build.lock"
if command -v flock >/dev/null; then
    flock 9
fi

if [ -f "$out" ] && [ "$out" -nt "$app" ] && [ "$out" -nt "$wit" ] && [ "$out" -nt "$0" ]; then
    exit 0
fi

componentize="$venv/bin/componentize-py"
if [ "$("$componentize" --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
    echo "toml-py: installing componentize-py $COMPONENTIZE_PY_VERSION into $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi

# componentize-py runs the app once to snapshot it and leaves __pycache__ beside it, so the app
# is staged in the target directory; only that directory is searched for modules (no
# site-packages of any environment).
src="$target/toml-py-src"
rm -rf "$src"
mkdir -p "$src"
cp "$app" "$src/app.py"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
env -u VIRTUAL_ENV "$componentize" --quiet -d "$wit" -w frontend componentize --python-path "$src" app -o "$tmp"
mv "$tmp" "$out"
echo "toml-py: built $out ($(wc -c <"$out") bytes)" >&2
