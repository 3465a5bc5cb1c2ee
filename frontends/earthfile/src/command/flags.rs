//! Each command's flag table (Earthly's `ast/commandflag`), whether kiln supports, ignores
//! or refuses each flag and why, and the flag syntax (`--flag`, `--flag=value`,
//! `--flag value`, `--` to stop) that reads them off a statement's words.
//!
//! It owns flags only: it must never look at positional arguments or decide what a flag
//! means for the build.

use super::*;

/// How a flag's value is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--flag` (or `--flag=true|false`).
    Bool,
    /// `--flag=value` or `--flag value`; the last one wins.
    Value,
    /// Like `Value`, but every occurrence counts.
    Many,
}

/// What kiln does with a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Support {
    /// Mapped to the IR.
    Yes,
    /// Accepted with a warning saying why it changes nothing.
    Ignored(&'static str),
    /// An error, with this hint.
    No(&'static str),
}

pub(super) struct FlagDef {
    name: &'static str,
    kind: Kind,
    support: Support,
}

const fn def(name: &'static str, kind: Kind, support: Support) -> FlagDef {
    FlagDef { name, kind, support }
}

const NOT_INTERACTIVE: &str =
    "kiln builds are not interactive; build the image, then explore it with `kiln run IMAGE sh`";
const NO_CLOUD: &str = "kiln steps have no network and no cloud credentials; do this outside kiln, after the build";
const NO_DOCKER: &str = "kiln cannot run containers inside a build; build the images with kiln and run them outside it";
const FILE_TIMES: &str = "kiln always sets file times to SOURCE_DATE_EPOCH, so that layers are reproducible";
const ONE_PLATFORM: &str =
    "kiln builds every target for the one platform of the build; choose it with `kiln build --platform`";
const MUST_EXIST: &str =
    "kiln needs every source to exist; remove --if-exists and make sure the path is there (or save its directory)";
const FOLLOWS_LINKS: &str = "kiln copies the file a symbolic link points to; remove --symlink-no-follow";

pub(super) const RUN_FLAGS: &[FlagDef] = &[
    def(
        "push",
        Kind::Bool,
        Support::No("kiln has no push phase; run commands that publish things outside kiln, after the build"),
    ),
    def(
        "no-cache",
        Kind::Bool,
        Support::Ignored("kiln reruns a step when its inputs change; `kiln build --no-cache` reruns every step"),
    ),
    def("entrypoint", Kind::Bool, Support::Yes),
    def("privileged", Kind::Bool, Support::Yes),
    def("secret", Kind::Many, Support::Yes),
    def("ssh", Kind::Bool, Support::Yes),
    def("mount", Kind::Many, Support::Yes),
    def("network", Kind::Value, Support::Yes),
    def("raw-output", Kind::Bool, Support::Yes),
    def("interactive", Kind::Bool, Support::No(NOT_INTERACTIVE)),
    def("interactive-keep", Kind::Bool, Support::No(NOT_INTERACTIVE)),
    def("with-docker", Kind::Bool, Support::No(NO_DOCKER)),
    def("aws", Kind::Bool, Support::No(NO_CLOUD)),
    def("oidc", Kind::Value, Support::No(NO_CLOUD)),
];

pub(super) const COPY_FLAGS: &[FlagDef] = &[
    def("dir", Kind::Bool, Support::Yes),
    def("keep-ts", Kind::Bool, Support::Ignored(FILE_TIMES)),
    def("keep-own", Kind::Bool, Support::Yes),
    def("if-exists", Kind::Bool, Support::No(MUST_EXIST)),
    def("symlink-no-follow", Kind::Bool, Support::No(FOLLOWS_LINKS)),
    def(
        "from",
        Kind::Value,
        Support::No(
            "Earthfiles have no COPY --from: save the files with SAVE ARTIFACT in a target, then COPY +target/path",
        ),
    ),
    def("platform", Kind::Value, Support::No(ONE_PLATFORM)),
    def("build-arg", Kind::Many, Support::Yes),
    def("allow-privileged", Kind::Bool, Support::Yes),
    def("pass-args", Kind::Bool, Support::Yes),
    def("chown", Kind::Value, Support::Yes),
    def("chmod", Kind::Value, Support::Yes),
];

pub(super) const FROM_FLAGS: &[FlagDef] = &[
    def("platform", Kind::Value, Support::Yes),
    def("build-arg", Kind::Many, Support::Yes),
    def("allow-privileged", Kind::Bool, Support::Yes),
    def("pass-args", Kind::Bool, Support::Yes),
];

pub(super) const SAVE_ARTIFACT_FLAGS: &[FlagDef] = &[
    def("keep-ts", Kind::Bool, Support::Ignored(FILE_TIMES)),
    def("keep-own", Kind::Bool, Support::Yes),
    def("if-exists", Kind::Bool, Support::No(MUST_EXIST)),
    def("force", Kind::Bool, Support::Yes),
    def("symlink-no-follow", Kind::Bool, Support::No(FOLLOWS_LINKS)),
];

const CACHE_IS_LOCAL: &str = "kiln's cache is local and keyed by content; it needs no cache images";

pub(super) const SAVE_IMAGE_FLAGS: &[FlagDef] = &[
    def("push", Kind::Bool, Support::Yes),
    def("cache-hint", Kind::Bool, Support::Ignored(CACHE_IS_LOCAL)),
    def("cache-from", Kind::Many, Support::Ignored(CACHE_IS_LOCAL)),
    def("no-manifest-list", Kind::Bool, Support::Yes),
    def("insecure", Kind::Bool, Support::Yes),
    def("without-earthly-labels", Kind::Bool, Support::Yes),
];

pub(super) const ARG_FLAGS: &[FlagDef] =
    &[def("required", Kind::Bool, Support::Yes), def("global", Kind::Bool, Support::Yes)];

pub(super) const HEALTHCHECK_FLAGS: &[FlagDef] = &[
    def("interval", Kind::Value, Support::Yes),
    def("timeout", Kind::Value, Support::Yes),
    def("start-period", Kind::Value, Support::Yes),
    def("start-interval", Kind::Value, Support::Yes),
    def("retries", Kind::Value, Support::Yes),
];

pub(super) const BUILD_FLAGS: &[FlagDef] = &[
    def("platform", Kind::Many, Support::Yes),
    def("build-arg", Kind::Many, Support::Yes),
    def("allow-privileged", Kind::Bool, Support::Yes),
    def("pass-args", Kind::Bool, Support::Yes),
    def("auto-skip", Kind::Bool, Support::Yes),
];

/// Parse leading flags; returns the flags and the remaining words.
pub(super) fn flags<'a>(
    s: &'a Statement,
    defs: &[FlagDef],
    words: &'a [Word],
    warnings: &mut Vec<Diagnostic>,
) -> Result<(Flags, &'a [Word]), Vec<Diagnostic>> {
    let mut out = Flags::default();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let text = word.text.as_str();
        if text == "--" {
            i += 1;
            break;
        }
        let Some(body) = text.strip_prefix("--").filter(|b| !b.is_empty()) else { break };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(def) = defs.iter().find(|d| d.name == name) else {
            let known: Vec<&str> = defs.iter().map(|d| d.name).collect();
            let close =
                crate::suggest::closest(name, &known).map(|c| format!("did you mean --{c}? ")).unwrap_or_default();
            let list = if known.is_empty() {
                format!("{} takes no flags", s.keyword)
            } else {
                format!("{} takes {}", s.keyword, known.iter().map(|k| format!("--{k}")).collect::<Vec<_>>().join(", "))
            };
            errors.push(error(
                format!("unknown flag --{name} for {}", s.keyword),
                word.span,
                format!("{close}{list}"),
                "unknown-flag",
            ));
            i += 1;
            continue;
        };
        let mut span = word.span;
        let value = match (def.kind, inline) {
            (Kind::Bool, v) => {
                if let Some(v) = &v
                    && !v.eq_ignore_ascii_case("true")
                    && !v.eq_ignore_ascii_case("false")
                {
                    errors.push(error(
                        format!("--{name} takes no value (or true/false), not {v:?}"),
                        word.span,
                        format!("write --{name} alone"),
                        "invalid-flag",
                    ));
                }
                v
            }
            (_, Some(v)) => Some(v),
            (_, None) => match words.get(i + 1) {
                Some(next) => {
                    i += 1;
                    span = Span { start: word.span.start, end: next.span.end };
                    Some(next.text.clone())
                }
                None => {
                    errors.push(error(
                        format!("--{name} needs a value"),
                        word.span,
                        format!("write --{name}=VALUE"),
                        "invalid-flag",
                    ));
                    None
                }
            },
        };
        match def.support {
            Support::Yes => {}
            Support::Ignored(why) => warnings.push(
                Diagnostic::warning(format!("{} --{name} is ignored: {why}", s.keyword), Some(span))
                    .with_hint(format!("remove --{name}"))
                    .with_code("ignored-flag"),
            ),
            Support::No(hint) => errors.push(error(
                format!("kiln does not support {} --{name}", s.keyword),
                span,
                hint,
                "unsupported-flag",
            )),
        }
        out.list.push(Flag { name: def.name, value, span });
        i += 1;
    }
    if errors.is_empty() { Ok((out, &words[i..])) } else { Err(errors) }
}
