"""kiln's TOML frontend: a declarative build file (`Kilnfile.toml`) in, the stage IR out.

This module owns the TOML build-file schema (README.md beside it documents it): reading the
file with `tomllib`, checking every key and type, `${NAME}` expansion of build arguments,
stage names to indices, `--target`, and diagnostics that point at the line of the offending
key. It is built into a WebAssembly component with componentize-py (`build.sh`) against
`wit/kiln-build.wit` (`kiln:build@0.1.0`, world `frontend`); componentize-py generates the
`wit_world` bindings imported below at build time.

It passes on a `build-graph` whose paths and values are final strings. It leaves to the runner
everything that needs the world: the build context, the base images' files, running steps,
relative paths against the working directory. Its only window on the world is the host's
`resolve-image-config`, used for the base images' SHELL and WORKDIR.

Everything is imported at module level: componentize-py snapshots the interpreter after the
imports run, so a parse starts with them loaded and never looks for a module file.
"""

import difflib
import re
import tomllib

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports import types as t

# The shell a shell-form `run`, `cmd` or `entrypoint` is wrapped in, unless the base image's
# configuration names another.
DEFAULT_SHELL = ["/bin/sh", "-c"]

# What a step may do (exactly one per step) and the options each action takes.
ACTIONS = {
    "run": (),
    "copy": ("to", "from", "chmod", "chown"),
    "env": (),
    "label": (),
    "workdir": (),
    "user": (),
    "cmd": (),
    "entrypoint": (),
    "expose": (),
}
TOP_KEYS = ("args", "stage")
STAGE_KEYS = ("name", "from", "steps")

STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*\Z")
ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# `$${` is a literal `${`; `${...}` is an argument; any other `$` is left alone.
SUBSTITUTION = re.compile(r"\$\$\{|\$\{([^}]*)\}")
TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)\s*$")


class WitWorld(wit_world.WitWorld):
    """The exported `parse` of the `frontend` world."""

    def parse(self, req: t.Request) -> t.BuildGraph:
        result = parse_request(req)
        if isinstance(result, list):
            raise Err(result)
        return result


def parse_request(req):
    """A `BuildGraph`, or the list of diagnostics (errors first) when the file is rejected."""
    try:
        text = bytes(req.contents).decode("utf-8")
    except UnicodeDecodeError as e:
        raw = bytes(req.contents)
        line = raw.count(b"\n", 0, e.start) + 1
        column = len(raw[raw.rfind(b"\n", 0, e.start) + 1 : e.start].decode("utf-8", "replace")) + 1
        return [error("the file is not valid UTF-8", point(line, column), "save it as UTF-8", "not-utf8")]
    try:
        doc = tomllib.loads(text)
    except RecursionError:
        return [
            error("arrays or tables are nested too deeply", None, "nest them less than a few hundred deep", "too-deep")
        ]
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        at = TOML_POSITION.search(message)
        span = None
        if at:
            message = message[: at.start()]
            if at.group(1):
                span = point(int(at.group(1)), int(at.group(2)))
            else:
                lines = text.split("\n")
                span = point(len(lines), len(lines[-1]) + 1)
        return [error(f"invalid TOML: {message}", span, "see https://toml.io for the syntax", "toml-syntax")]
    return Converter(req, doc, Locator(text)).convert()


# ---------------------------------------------------------------------------------------------
# Diagnostics


def point(line, column):
    where = t.Position(line=line, column=column)
    return t.Span(start=where, end=where)


def error(message, span, hint=None, code=None):
    return t.Diagnostic(severity=t.Severity.ERROR, message=message, span=span, hint=hint, code=code)


def warning(message, span, hint=None, code=None):
    return t.Diagnostic(severity=t.Severity.WARNING, message=message, span=span, hint=hint, code=code)


def closest(word, candidates):
    """The candidate closest to `word`, when it is close enough to be a typo."""
    found = difflib.get_close_matches(word.lower(), [c.lower() for c in candidates], n=1, cutoff=0.6)
    if not found:
        return None
    return next(c for c in candidates if c.lower() == found[0])


def did_you_mean(word, candidates, also=""):
    near = closest(word, candidates)
    lead = f'did you mean "{near}"? ' if near else ""
    return f"{lead}{also}"


# ---------------------------------------------------------------------------------------------
# Where keys are: tomllib gives values without positions, so this scans the text once more and
# records, for every key path (`("stage", 1, "steps", 0, "run")`), the tokens it covers. The
# file already parsed, so the scanner only has to follow valid TOML; if it gets lost anyway,
# diagnostics fall back to a shorter path or to no span at all.


def _tokens(text):
    """(kind, start, end) for each token: `nl`, `str`, `bare`, or one of `[]{}=,`."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t\r":
            i += 1
        elif c == "\n":
            yield ("nl", i, i + 1)
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in "[]{}=,":
            yield (c, i, i + 1)
            i += 1
        elif c in "\"'":
            start = i
            if text.startswith(c * 3, i):
                i += 3
                while i < n and not text.startswith(c * 3, i):
                    i += 2 if c == '"' and text[i] == "\\" else 1
                i += 3
                # Up to two quotes may end the contents right before the closing three.
                for _ in range(2):
                    if i < n and text[i] == c:
                        i += 1
            else:
                i += 1
                while i < n and text[i] != c and text[i] != "\n":
                    i += 2 if c == '"' and text[i] == "\\" else 1
                i += 1
            yield ("str", start, min(i, n))
        else:
            start = i
            while i < n and text[i] not in " \t\r\n#[]{}=,\"'":
                i += 1
            yield ("bare", start, i)


class Locator:
    """Spans of the keys, values and tables of one TOML text, by key path."""

    def __init__(self, text):
        self.text = text
        self.line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
        self.toks = list(_tokens(text))
        self.i = 0
        # path -> (first token, last token + 1): the whole `key = value`, table or element.
        self.ranges = {}
        # path -> (first token, last token + 1): what to show as an instruction's text.
        self.bodies = {}
        try:
            self._document()
        except (IndexError, ValueError, RecursionError):
            pass

    # Lookups.

    def span(self, path):
        """The span of `path`, or of the nearest enclosing path the scanner found."""
        path = tuple(path)
        while path:
            if path in self.ranges:
                first, last = self.ranges[path]
                return t.Span(start=self._pos(self.toks[first][1]), end=self._pos(self.toks[last - 1][2] - 1))
            path = path[:-1]
        return None

    def line(self, path):
        span = self.span(path)
        return span.start.line if span else None

    def source(self, path):
        """The text of `path` on one line, as written (comments dropped), or None."""
        path = tuple(path)
        found = self.bodies.get(path) or self.ranges.get(path)
        if not found:
            return None
        return self._render(*found)

    def _pos(self, offset):
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return t.Position(line=lo + 1, column=offset - self.line_starts[lo] + 1)

    def _render(self, first, last):
        out = []
        prev = None
        depth = 0
        separate = False
        for kind, start, end in self.toks[first:last]:
            if kind == "nl":
                separate = separate or (depth == 0 and prev is not None)
                continue
            if separate and prev not in (",", "=", "[", "{"):
                out.append(",")
                prev = ","
            separate = False
            if prev == "," and kind in ("]", "}"):
                # A trailing comma, which TOML allows in arrays.
                out.pop()
            if prev is None or prev == "[" or kind in (",", "]") or (kind == "}" and prev == "{"):
                pass
            else:
                out.append(" ")
            # A multi-line string is shown with its line breaks escaped.
            out.append(self.text[start:end].replace("\r\n", "\\n").replace("\n", "\\n"))
            depth += 1 if kind in "[{" else -1 if kind in "]}" else 0
            prev = kind
        return "".join(out)

    # The scanner.

    def _kind(self):
        return self.toks[self.i][0] if self.i < len(self.toks) else None

    def _skip_newlines(self):
        while self._kind() == "nl":
            self.i += 1

    def _expect(self, kind):
        if self._kind() != kind:
            raise ValueError(kind)
        self.i += 1

    def _key(self, stop):
        parts = []
        while self._kind() not in stop:
            kind, start, end = self.toks[self.i]
            raw = self.text[start:end]
            if kind == "str":
                try:
                    parts.append(tomllib.loads(f"k = {raw}")["k"])
                except tomllib.TOMLDecodeError:
                    parts.append(raw[1:-1])
            elif kind == "bare":
                parts.extend(p for p in raw.split(".") if p)
            else:
                raise ValueError(kind)
            self.i += 1
        return tuple(parts)

    def _document(self):
        table = ()
        arrays = {}
        while self.i < len(self.toks):
            kind = self._kind()
            if kind == "nl":
                self.i += 1
                continue
            first = self.i
            if kind == "[":
                is_array = (
                    self.i + 1 < len(self.toks)
                    and self.toks[self.i + 1][0] == "["
                    and self.toks[self.i + 1][1] == self.toks[self.i][2]
                )
                self.i += 2 if is_array else 1
                parts = self._key({"]"})
                self._expect("]")
                if is_array:
                    self._expect("]")
                path = ()
                for part in parts[:-1]:
                    path += (part,)
                    if path in arrays:
                        path += (arrays[path] - 1,)
                path += parts[-1:]
                if is_array:
                    count = arrays.get(path, 0)
                    arrays[path] = count + 1
                    path += (count,)
                table = path
                self.ranges[table] = (first, self.i)
                continue
            parts = self._key({"="})
            self._expect("=")
            path = table + parts
            self._value(path)
            self.ranges[path] = (first, self.i)
            if table:
                start, _ = self.ranges[table]
                self.ranges[table] = (start, self.i)
                body = self.bodies.get(table, (first, self.i))
                self.bodies[table] = (body[0], self.i)

    def _value(self, path):
        kind = self._kind()
        if kind == "str":
            self.i += 1
        elif kind == "[":
            self.i += 1
            index = 0
            while True:
                self._skip_newlines()
                if self._kind() == "]":
                    self.i += 1
                    return
                first = self.i
                self._value(path + (index,))
                self.ranges[path + (index,)] = (first, self.i)
                index += 1
                self._skip_newlines()
                if self._kind() == ",":
                    self.i += 1
        elif kind == "{":
            opening = self.i
            self.i += 1
            while True:
                self._skip_newlines()
                if self._kind() == "}":
                    self.bodies[path] = (opening + 1, self.i)
                    self.i += 1
                    return
                first = self.i
                parts = self._key({"="})
                self._expect("=")
                self._value(path + parts)
                self.ranges[path + parts] = (first, self.i)
                self._skip_newlines()
                if self._kind() == ",":
                    self.i += 1
        elif kind == "bare":
            # A number, boolean or date; a date and a time may be two tokens.
            while self._kind() == "bare":
                self.i += 1
        else:
            raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# The conversion.


GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def go_quote(s):
    """Go's `%q` of a string, as Docker writes JSON-form commands in the image history."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in GO_ESCAPES:
            out.append(GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def join_path(directory, path):
    """`path` joined onto `directory`, cleaned, the way Docker tracks WORKDIR."""
    combined = path if path.startswith("/") else f"{directory}/{path}"
    parts = []
    for part in combined.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
        else:
            parts.append(part)
    return "/" + "/".join(parts)


def escapes_root(path):
    """Whether a relative path climbs out of the directory it is relative to."""
    depth = 0
    for part in path.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def type_name(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


class Rejected(Exception):
    """A value could not be converted; its diagnostic is already recorded."""


class StageState:
    """What a stage's steps see of the configuration so far: the shell and working directory."""

    def __init__(self, shell=None, workdir="/"):
        self.shell = list(shell or DEFAULT_SHELL)
        self.workdir = workdir

    def copy(self):
        return StageState(self.shell, self.workdir)


class Converter:
    """One parse: the document, its spans, and the diagnostics found so far."""

    def __init__(self, req, doc, locator):
        self.req = req
        self.doc = doc
        self.loc = locator
        self.errors = []
        self.warnings = []
        self.args = {}

    # Reporting.

    def fail(self, message, path, hint=None, code=None):
        self.errors.append(error(message, self.loc.span(path) if path is not None else None, hint, code))
        return Rejected()

    def warn(self, message, path, hint=None, code=None):
        self.warnings.append(warning(message, self.loc.span(path) if path is not None else None, hint, code))

    def check_keys(self, table, allowed, path, where, hint_extra=""):
        ok = True
        for key in table:
            if key not in allowed:
                listing = ", ".join(allowed)
                self.fail(
                    f'unknown key "{key}" {where}',
                    path + (key,),
                    did_you_mean(key, list(allowed), f"the keys here are: {listing}{hint_extra}"),
                    "unknown-key",
                )
                ok = False
        return ok

    # Values.

    def expand(self, value, path):
        """`${NAME}` replaced by the build argument's value; `$${` left as `${`."""

        def substitute(m):
            if m.group(0) == "$${":
                return "${"
            name = m.group(1)
            if not ARG_NAME.match(name):
                raise self.fail(
                    f'bad substitution "${{{name}}}"',
                    path,
                    "write ${NAME} for a build argument, or $${ for a literal ${",
                    "bad-substitution",
                )
            if name not in self.args:
                declared = list(self.args)
                raise self.fail(
                    f'"${{{name}}}" names no build argument',
                    path,
                    did_you_mean(
                        name,
                        declared,
                        f'declare it under [args] ({name} = "default"), '
                        f"or write $${{{name}}} to pass ${{{name}}} on unexpanded",
                    ),
                    "undefined-arg",
                )
            return self.args[name]

        expanded = SUBSTITUTION.sub(substitute, value)
        if "\0" in expanded:
            raise self.fail("a value contains a NUL character", path, "remove the \\u0000", "nul")
        return expanded

    def string(self, value, path, what, example):
        if not isinstance(value, str):
            raise self.fail(
                f"{what} must be a string, not {type_name(value)}", path, f"for example {example}", "wrong-type"
            )
        return self.expand(value, path)

    def strings(self, value, path, what, example, allow_empty=False):
        """A string or an array of strings, as a list."""
        if isinstance(value, str):
            return [self.expand(value, path)]
        if isinstance(value, list) and all(isinstance(v, str) for v in value) and (value or allow_empty):
            return [self.expand(v, path + (i,)) for i, v in enumerate(value)]
        raise self.fail(
            f"{what} must be a string or {'an' if allow_empty else 'a non-empty'} array of strings, "
            f"not {type_name(value)}",
            path,
            f"for example {example}",
            "wrong-type",
        )

    def command(self, value, path, state, what, example, allow_empty=False):
        """(argv, shell_form) from a string (shell form) or an array of strings (exec form)."""
        if isinstance(value, str):
            return state.shell + [self.expand(value, path)], True
        if isinstance(value, list) and all(isinstance(v, str) for v in value) and (value or allow_empty):
            return [self.expand(v, path + (i,)) for i, v in enumerate(value)], False
        raise self.fail(
            f"{what} must be a string (shell form) or {'an' if allow_empty else 'a non-empty'} array of strings "
            f"(exec form), not {type_name(value)}",
            path,
            f"for example {example}",
            "wrong-type",
        )

    def pairs(self, value, path, what, example):
        if not isinstance(value, dict) or not value:
            raise self.fail(
                f"{what} must be a non-empty table, not {type_name(value) if value != {} else 'an empty one'}",
                path,
                f"for example {example}",
                "wrong-type",
            )
        out = []
        for key, v in value.items():
            if what == "env" and (not key or "=" in key):
                raise self.fail(
                    f'"{key}" is not an environment variable name', path + (key,), "use a name without =", "wrong-type"
                )
            if isinstance(v, bool) or not isinstance(v, (str, int)):
                raise self.fail(
                    f'{what} value "{key}" must be a string, not {type_name(v)}',
                    path + (key,),
                    f'write {key} = "..."',
                    "wrong-type",
                )
            out.append(t.KeyValue(key=key, value=self.expand(v, path + (key,)) if isinstance(v, str) else str(v)))
        return out

    def ports(self, value, path):
        items = value if isinstance(value, list) else [value]
        out = []
        for i, item in enumerate(items):
            at = path + (i,) if isinstance(value, list) else path
            if isinstance(item, bool) or not isinstance(item, (int, str)):
                raise self.fail(
                    f"a port must be a number or a string, not {type_name(item)}",
                    at,
                    'for example expose = [8080, "53/udp"]',
                    "wrong-type",
                )
            spec = self.expand(item, at) if isinstance(item, str) else str(item)
            port, _, proto = spec.partition("/")
            proto = proto.lower() or "tcp"
            low, _, high = port.partition("-")
            try:
                low_n = int(low)
                high_n = int(high) if high else low_n
            except ValueError:
                low_n = high_n = -1
            if proto not in ("tcp", "udp", "sctp") or not 0 < low_n <= high_n <= 65535:
                raise self.fail(
                    f'invalid port "{spec}"', at, 'write ports as 80, "80/udp" or "8000-8010/tcp"', "invalid-port"
                )
            out.extend(f"{p}/{proto}" for p in range(low_n, high_n + 1))
        return out

    # References.

    def reference(self, value, path, index, names, what):
        """A stage index (int) or an image reference (str) for a `from` value.

        `names` maps each stage name to its index, `index` is the stage doing the referring:
        only earlier stages can be used.
        """
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.fail(
                f"{what} must be a stage name, a stage index or an image reference, not {type_name(value)}",
                path,
                'for example from = "builder" or from = "alpine:3.20"',
                "wrong-type",
            )
        if isinstance(value, int):
            if 0 <= value < index:
                return value
            raise self.fail(
                f"{what} names stage {value}, but only stages above this one can be used (0 to {index - 1})"
                if index > 0
                else f"{what} names stage {value}, but this is the first stage",
                path,
                "stages are numbered from 0 in file order; a stage can only use the stages above it",
                "stage-reference",
            )
        ref = self.expand(value, path)
        if not ref:
            raise self.fail(
                f"{what} is empty", path, 'name a stage or an image, for example from = "scratch"', "wrong-type"
            )
        found = names.get(ref.lower())
        if found is not None:
            if found < index:
                return found
            where = "this stage itself" if found == index else f"stage {found}, which comes after this one"
            raise self.fail(
                f'{what} names stage "{ref.lower()}": {where}',
                path,
                "a stage can only use the stages above it; move that stage up",
                "stage-reference",
            )
        if not any(c in ref for c in ":/@.") and ref.lower() != "scratch":
            near = closest(ref, [n for n in names])
            if near:
                self.warn(
                    f'"{ref}" is not a stage of this file, so it is taken as an image',
                    path,
                    f'did you mean the stage "{near}"?',
                    "StageNameTypo",
                )
        return ref

    # The whole file.

    def convert(self):
        doc = self.doc
        self.check_keys(doc, TOP_KEYS, (), "at the top level", "; steps go in a stage's steps = [...]")
        self.read_args()
        stages = doc.get("stage")
        if not isinstance(stages, list) or not stages or not all(isinstance(s, dict) for s in stages):
            self.fail(
                "the file has no stages"
                if stages is None
                else f"stage must be an array of tables, not {type_name(stages)}",
                ("stage",) if stages is not None else None,
                'add a stage: [[stage]] with from = "scratch" (or an image) and steps = [...]',
                "no-stages",
            )
            return self.errors + self.warnings

        names = self.read_names(stages)
        plans = []
        for i, stage in enumerate(stages):
            plans.append(self.plan_stage(i, stage, names))

        target = len(stages) - 1
        if self.req.target is not None:
            wanted = self.req.target.lower()
            if wanted in names:
                target = names[wanted]
            else:
                named = list(names)
                hint = (
                    did_you_mean(wanted, named, f"the stages are: {', '.join(named)}")
                    if named
                    else 'this file has no named stages (name one with name = "...")'
                )
                self.fail(f"target stage {go_quote(self.req.target)} could not be found", None, hint, "unknown-target")

        # With errors already, the steps are still converted to find the rest, but no base image
        # is looked up.
        configs = {} if self.errors else self.resolve_bases(plans, self.reachable(target, plans))
        finals = []
        out = []
        for i, plan in enumerate(plans):
            stage, state = self.build_stage(i, plan, configs, finals)
            finals.append(state)
            out.append(stage)
        if self.errors:
            return self.errors + self.warnings
        global_args = [t.ArgBinding(name=k, value=v) for k, v in self.args.items()]
        return t.BuildGraph(stages=out, target=target, global_args=global_args, warnings=self.warnings)

    def read_args(self):
        declared = self.doc.get("args", {})
        if not isinstance(declared, dict):
            self.fail(
                f"args must be a table, not {type_name(declared)}",
                ("args",),
                'write [args] with NAME = "default" lines',
                "wrong-type",
            )
            declared = {}
        for name, value in declared.items():
            path = ("args", name)
            if not ARG_NAME.match(name):
                self.fail(
                    f'"{name}" is not a build argument name',
                    path,
                    "use letters, digits and _, not starting with a digit",
                    "invalid-arg-name",
                )
            elif not isinstance(value, str):
                self.fail(
                    f'build argument "{name}" must default to a string, not {type_name(value)}',
                    path,
                    f'write {name} = "..."',
                    "wrong-type",
                )
            else:
                # Defaults may use the arguments declared above them.
                try:
                    self.args[name] = self.expand(value, path)
                except Rejected:
                    pass
        unused = []
        for kv in self.req.build_args:
            if kv.key in self.args:
                self.args[kv.key] = kv.value
            elif kv.key not in declared and kv.key not in unused:
                unused.append(kv.key)
        if unused:
            self.warn(
                f"build arguments not declared in [args] were ignored: {', '.join(sorted(unused))}",
                None,
                'declare each under [args] with a default (NAME = "")',
                "UnusedBuildArg",
            )

    def read_names(self, stages):
        names = {}
        for i, stage in enumerate(stages):
            name = stage.get("name")
            if name is None:
                continue
            path = ("stage", i, "name")
            if not isinstance(name, str):
                self.fail(
                    f"a stage name must be a string, not {type_name(name)}",
                    path,
                    'for example name = "builder"',
                    "wrong-type",
                )
                continue
            lowered = name.lower()
            if not STAGE_NAME.match(lowered):
                self.fail(
                    f'"{name}" is not a valid stage name',
                    path,
                    "start with a letter; then use letters, digits, -, _ and .",
                    "invalid-stage-name",
                )
            elif lowered in names:
                self.fail(
                    f'stage name "{lowered}" is already used by stage {names[lowered]}',
                    path,
                    f"the first is on line {self.loc.line(('stage', names[lowered], 'name'))}; "
                    "give each stage its own name",
                    "duplicate-stage",
                )
            else:
                names[lowered] = i
        return names

    def plan_stage(self, i, stage, names):
        """The stage's name, base and checked steps; references resolved, values not yet."""
        path = ("stage", i)
        self.check_keys(stage, STAGE_KEYS, path, f"in stage {i}")
        name = stage.get("name")
        name = name.lower() if isinstance(name, str) else None
        base = None
        if "from" not in stage:
            self.fail(
                f"stage {i} has no from",
                path,
                'add from = "scratch", an image (from = "alpine:3.20") or an earlier stage (from = "builder")',
                "missing-key",
            )
        else:
            try:
                ref = self.reference(stage["from"], path + ("from",), i, names, "from")
                base = (
                    t.Base_Stage(ref)
                    if isinstance(ref, int)
                    else t.Base_Scratch()
                    if ref.lower() == "scratch"
                    else t.Base_Image(ref)
                )
            except Rejected:
                pass
        steps = stage.get("steps", [])
        checked = []
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            self.fail(
                f"steps must be an array of tables, not {type_name(steps)}",
                path + ("steps",),
                'write steps = [{ run = "make" }, { copy = ["src"], to = "/src/" }]',
                "wrong-type",
            )
            steps = []
        for j, step in enumerate(steps):
            spath = path + ("steps", j)
            actions = [k for k in step if k in ACTIONS]
            if len(actions) != 1:
                listing = ", ".join(ACTIONS)
                if actions:
                    self.fail(
                        f"step {j} of stage {i} has {len(actions)} actions ({', '.join(actions)}); "
                        "a step does one thing",
                        spath,
                        "split it into one step per action, in the order they should happen",
                        "step-action",
                    )
                else:
                    unknown = [k for k in step if k not in ACTIONS]
                    if unknown:
                        self.fail(
                            f'unknown key "{unknown[0]}" in step {j} of stage {i}',
                            spath + (unknown[0],),
                            did_you_mean(unknown[0], list(ACTIONS), f"a step is one of: {listing}"),
                            "unknown-key",
                        )
                    else:
                        self.fail(
                            f"step {j} of stage {i} is empty", spath, f"a step is one of: {listing}", "step-action"
                        )
                continue
            action = actions[0]
            allowed = (action,) + ACTIONS[action]
            if not self.check_keys(step, allowed, spath, f"in a {action} step"):
                continue
            source = t.CopySource_Context()
            if action == "copy" and "from" in step:
                try:
                    ref = self.reference(step["from"], spath + ("from",), i, names, "copy from")
                except Rejected:
                    continue
                if isinstance(ref, int):
                    source = t.CopySource_Stage(ref)
                elif ref.lower() == "scratch":
                    self.fail(
                        "copy from scratch has nothing to copy",
                        spath + ("from",),
                        "name a stage or an image",
                        "stage-reference",
                    )
                    continue
                else:
                    source = t.CopySource_Image(ref)
            checked.append((j, action, step, source))
        return (name, base, checked)

    def reachable(self, target, plans):
        """The stages the target needs, itself included."""
        seen = set()
        todo = [target]
        while todo:
            i = todo.pop()
            if i in seen:
                continue
            seen.add(i)
            _, base, steps = plans[i]
            if isinstance(base, t.Base_Stage):
                todo.append(base.value)
            for _, _, _, source in steps:
                if isinstance(source, t.CopySource_Stage):
                    todo.append(source.value)
        return seen

    def resolve_bases(self, plans, needed):
        """The configuration of each base image a needed stage starts from (None: unknown)."""
        configs = {}
        for i, (_, base, _) in enumerate(plans):
            if not isinstance(base, t.Base_Image) or i not in needed or base.value in configs:
                continue
            try:
                config = host.resolve_image_config(base.value, None)
            except Err as e:
                self.warn(
                    f"could not read the configuration of {base.value}: {e.value}; "
                    "its SHELL and WORKDIR are not visible to this build file",
                    ("stage", i, "from"),
                    None,
                    "BaseImageUnresolved",
                )
                config = None
            if config is not None and config.on_build:
                self.fail(
                    f"{base.value} has ONBUILD triggers, which this frontend cannot run",
                    ("stage", i, "from"),
                    "build on an image without ONBUILD, or use a Dockerfile",
                    "onbuild-unsupported",
                )
            configs[base.value] = config
        return configs

    def build_stage(self, i, plan, configs, finals):
        name, base, steps = plan
        path = ("stage", i)
        if isinstance(base, t.Base_Stage):
            state = finals[base.value].copy()
        elif isinstance(base, t.Base_Image) and configs.get(base.value) is not None:
            config = configs[base.value]
            state = StageState(config.shell or None, config.working_dir or "/")
        else:
            state = StageState()
        instructions = []
        for j, action, step, source in steps:
            spath = path + ("steps", j)
            try:
                op, created_by = self.step(action, step, source, spath, state)
            except Rejected:
                continue
            text = self.loc.source(spath) or f"{action} = {step[action]!r}"
            span = self.loc.span(spath) or point(1, 1)
            instructions.append(t.Instruction(op=op, span=span, created_by=created_by, text=text))
        from_path = path + ("from",)
        stage = t.Stage(
            name=name,
            base=base,
            platform=None,
            instructions=instructions,
            span=self.loc.span(from_path) or point(1, 1),
            text=self.loc.source(from_path) or f"from = {self.doc['stage'][i].get('from')!r}",
        )
        return stage, state

    def step(self, action, step, source, path, state):
        """The IR op of one step and its `created_by`, as Docker writes the history."""
        value = step[action]
        at = path + (action,)
        if action == "run":
            argv, shell_form = self.command(value, at, state, "run", 'run = "make all" or run = ["make", "all"]')
            op = t.Op_Run(
                t.Run(
                    argv=argv,
                    shell_form=shell_form,
                    build_args=[],
                    mounts=[],
                    network=t.Network.DEFAULT,
                    security=t.Security.SANDBOX,
                )
            )
            return op, "RUN " + " ".join(argv)
        if action == "copy":
            sources = self.strings(value, at, "copy", 'copy = ["src/", "Cargo.toml"], to = "/app/"')
            if "to" not in step:
                raise self.fail(
                    "a copy step needs a destination",
                    path,
                    'add to = "/dest/" (a trailing / means a directory)',
                    "missing-key",
                )
            dest = self.string(step["to"], path + ("to",), "to", 'to = "/app/"')
            if not dest:
                raise self.fail("the copy destination is empty", path + ("to",), 'for example to = "./"', "wrong-type")
            chown = (
                self.string(step["chown"], path + ("chown",), "chown", 'chown = "1000:1000"')
                if "chown" in step
                else None
            )
            chmod = (
                self.string(step["chmod"], path + ("chmod",), "chmod", 'chmod = "0755"') if "chmod" in step else None
            )
            if isinstance(source, t.CopySource_Context):
                for k, s in enumerate(sources):
                    if escapes_root(s):
                        raise self.fail(
                            f"copy source {s} is outside the build context",
                            at + (k,) if isinstance(value, list) else at,
                            "sources are relative to the build context and cannot leave it; "
                            "move the file into the context",
                            "outside-context",
                        )
            op = t.Op_Copy(
                t.CopyFiles(
                    from_=source,
                    sources=sources,
                    inline_sources=[],
                    dest=dest,
                    chown=chown,
                    chmod=chmod,
                    link=False,
                    parents=False,
                    exclude=[],
                    add=None,
                )
            )
            flags = (f" --chown={chown}" if chown else "") + (f" --chmod={chmod}" if chmod else "")
            return op, f"COPY{flags} {' '.join(sources)} {dest}"
        if action in ("env", "label"):
            kvs = self.pairs(value, at, action, f'{action} = {{ NAME = "value" }}')
            change = t.ConfigChange_Env(kvs) if action == "env" else t.ConfigChange_Label(kvs)
            created = " ".join(f"{kv.key}={kv.value}" for kv in kvs)
            return t.Op_Config(change), f"{action.upper()} {created}"
        if action == "workdir":
            directory = self.string(value, at, "workdir", 'workdir = "/src"')
            if not directory:
                raise self.fail("workdir is empty", at, 'for example workdir = "/src"', "wrong-type")
            state.workdir = join_path(state.workdir, directory)
            return t.Op_Config(t.ConfigChange_Workdir(directory)), f"WORKDIR {state.workdir}"
        if action == "user":
            user = self.string(value, at, "user", 'user = "1000:1000"')
            if not user:
                raise self.fail("user is empty", at, 'for example user = "nobody"', "wrong-type")
            return t.Op_Config(t.ConfigChange_User(user)), f"USER {user}"
        if action in ("cmd", "entrypoint"):
            argv, shell_form = self.command(
                value, at, state, action, f'{action} = ["/bin/app", "--serve"]', allow_empty=True
            )
            command = t.Command(argv=argv, shell_form=shell_form)
            change = t.ConfigChange_Cmd(command) if action == "cmd" else t.ConfigChange_Entrypoint(command)
            return t.Op_Config(change), f"{action.upper()} [{' '.join(go_quote(a) for a in argv)}]"
        if action == "expose":
            ports = self.ports(value, at)
            return t.Op_Config(t.ConfigChange_Expose(ports)), "EXPOSE " + " ".join(ports)
        raise AssertionError(action)
