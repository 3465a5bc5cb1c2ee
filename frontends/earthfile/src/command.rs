//! Statements to typed commands: which commands and flags kiln supports, their arguments in
//! place, and a diagnostic (with a hint) for everything else.
//!
//! Owns each command's flag table (Earthly's `ast/commandflag`), the flag syntax
//! (`--flag`, `--flag=value`, `--flag value`, `--` to stop), the positional shape of each
//! command, the exec (JSON) versus shell form, and the list of Earthfile commands kiln does
//! not run, each with what to do instead. Values stay raw here; [`crate::convert`] expands them
//! in the scope of the target that runs the command.

use kiln_ir::{Diagnostic, Span};

use crate::lexer::{Statement, Word};

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

struct FlagDef {
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

const RUN_FLAGS: &[FlagDef] = &[
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

const COPY_FLAGS: &[FlagDef] = &[
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

const FROM_FLAGS: &[FlagDef] = &[
    def("platform", Kind::Value, Support::Yes),
    def("build-arg", Kind::Many, Support::Yes),
    def("allow-privileged", Kind::Bool, Support::Yes),
    def("pass-args", Kind::Bool, Support::Yes),
];

const SAVE_ARTIFACT_FLAGS: &[FlagDef] = &[
    def("keep-ts", Kind::Bool, Support::Ignored(FILE_TIMES)),
    def("keep-own", Kind::Bool, Support::Yes),
    def("if-exists", Kind::Bool, Support::No(MUST_EXIST)),
    def("force", Kind::Bool, Support::Yes),
    def("symlink-no-follow", Kind::Bool, Support::No(FOLLOWS_LINKS)),
];

const CACHE_IS_LOCAL: &str = "kiln's cache is local and keyed by content; it needs no cache images";

const SAVE_IMAGE_FLAGS: &[FlagDef] = &[
    def("push", Kind::Bool, Support::Yes),
    def("cache-hint", Kind::Bool, Support::Ignored(CACHE_IS_LOCAL)),
    def("cache-from", Kind::Many, Support::Ignored(CACHE_IS_LOCAL)),
    def("no-manifest-list", Kind::Bool, Support::Yes),
    def("insecure", Kind::Bool, Support::Yes),
    def("without-earthly-labels", Kind::Bool, Support::Yes),
];

const ARG_FLAGS: &[FlagDef] = &[def("required", Kind::Bool, Support::Yes), def("global", Kind::Bool, Support::Yes)];

const HEALTHCHECK_FLAGS: &[FlagDef] = &[
    def("interval", Kind::Value, Support::Yes),
    def("timeout", Kind::Value, Support::Yes),
    def("start-period", Kind::Value, Support::Yes),
    def("start-interval", Kind::Value, Support::Yes),
    def("retries", Kind::Value, Support::Yes),
];

const BUILD_FLAGS: &[FlagDef] = &[
    def("platform", Kind::Many, Support::Yes),
    def("build-arg", Kind::Many, Support::Yes),
    def("allow-privileged", Kind::Bool, Support::Yes),
    def("pass-args", Kind::Bool, Support::Yes),
    def("auto-skip", Kind::Bool, Support::Yes),
];

/// Every command keyword of the Earthfile language (for "did you mean" and upper-case hints).
pub const KEYWORDS: [&str; 44] = [
    "FROM",
    "FROM DOCKERFILE",
    "LOCALLY",
    "COPY",
    "SAVE ARTIFACT",
    "SAVE IMAGE",
    "RUN",
    "EXPOSE",
    "VOLUME",
    "ENV",
    "ARG",
    "SET",
    "LET",
    "LABEL",
    "BUILD",
    "WORKDIR",
    "USER",
    "CMD",
    "ENTRYPOINT",
    "GIT CLONE",
    "ADD",
    "STOPSIGNAL",
    "ONBUILD",
    "HEALTHCHECK",
    "SHELL",
    "DO",
    "COMMAND",
    "FUNCTION",
    "IMPORT",
    "VERSION",
    "CACHE",
    "HOST",
    "PROJECT",
    "PIPELINE",
    "TRIGGER",
    "WITH DOCKER",
    "IF",
    "ELSE",
    "ELSE IF",
    "END",
    "TRY",
    "CATCH",
    "FINALLY",
    "FOR",
];

/// Earthfile commands kiln does not run: why (may be empty) and what to do instead.
fn unsupported(keyword: &str) -> Option<(&'static str, &'static str)> {
    const NO_LANGUAGE: &str = "it is not part of the Earthfile language";
    Some(match keyword {
        "LOCALLY" => (
            "kiln runs every step in a WebAssembly sandbox, never on the host",
            "run host commands outside kiln, before or after the build",
        ),
        "FROM DOCKERFILE" => (
            "kiln reads one build file per build",
            "build the Dockerfile with kiln first (`kiln build -t NAME -f DIR/Dockerfile DIR`), then use FROM NAME",
        ),
        "GIT CLONE" => (
            "kiln steps have no network",
            "clone the repository into the build context before running kiln, then COPY it",
        ),
        "IMPORT" => (
            "kiln builds the targets of this Earthfile only",
            "copy the targets you need into this Earthfile, or build the other Earthfile on its own and use its image",
        ),
        "DO" | "FUNCTION" | "COMMAND" => {
            ("kiln has no functions", "write the function's commands out where DO calls it")
        }
        "CACHE" => {
            ("", "give the RUN commands that need the directory a cache mount: RUN --mount=type=cache,target=PATH ...")
        }
        "HOST" => ("kiln steps have no network, so there is no host to name", "remove HOST"),
        "PROJECT" => ("kiln has no Earthly Cloud project", "remove PROJECT"),
        "PIPELINE" | "TRIGGER" => {
            ("kiln does not run Earthly CI pipelines", "remove it and run kiln from your CI instead")
        }
        "ADD" => (NO_LANGUAGE, "use COPY"),
        "SHELL" => (
            "it is not part of the Earthfile language; RUN always uses /bin/sh -c",
            "name the interpreter in the command, e.g. RUN bash -c '...'",
        ),
        "ONBUILD" => (NO_LANGUAGE, "remove it; a target that needs the commands can run them itself"),
        "WITH DOCKER" => (
            "kiln cannot run containers inside a build",
            "build the images with kiln, and run what WITH DOCKER ran outside the build",
        ),
        "IF" => (
            "",
            "put the condition in the RUN's shell (RUN if ...; then ...; fi), or choose between targets with --target",
        ),
        "FOR" => ("", "put the loop in the RUN's shell (RUN for x in ...; do ...; done), or write one target per item"),
        "TRY" => ("", "handle the failure in the RUN's shell (RUN cmd || ...)"),
        "WAIT" => ("", "remove WAIT and its END: kiln finishes each step before the next"),
        _ => return None,
    })
}

/// One flag as given.
#[derive(Debug, Clone)]
pub struct Flag {
    /// Its name, without dashes.
    pub name: &'static str,
    /// Its raw value (`None` for a boolean given as `--flag`).
    pub value: Option<String>,
    /// The flag (and its value, when it is the next word).
    pub span: Span,
}

/// The flags of one command.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    list: Vec<Flag>,
}

impl Flags {
    /// Whether a boolean flag is on.
    pub fn on(&self, name: &str) -> bool {
        self.list
            .iter()
            .rev()
            .find(|f| f.name == name)
            .is_some_and(|f| f.value.as_deref().is_none_or(|v| v.eq_ignore_ascii_case("true")))
    }

    /// The last value of a flag.
    pub fn value(&self, name: &str) -> Option<(&str, Span)> {
        self.list.iter().rev().find(|f| f.name == name).and_then(|f| f.value.as_deref().map(|v| (v, f.span)))
    }

    /// Every value of a repeatable flag, in order.
    pub fn values(&self, name: &str) -> Vec<(&str, Span)> {
        self.list.iter().filter(|f| f.name == name).filter_map(|f| f.value.as_deref().map(|v| (v, f.span))).collect()
    }
}

/// A RUN, CMD, ENTRYPOINT or VOLUME argument list.
#[derive(Debug, Clone)]
pub enum Form<'a> {
    /// `["prog", "arg"]`: the strings, as JSON gives them.
    Exec(Vec<String>),
    /// Anything else: the words as written.
    Shell(&'a [Word]),
}

impl Form<'_> {
    /// The words as written, joined by single spaces (what Earthly hands to `/bin/sh -c`).
    pub fn joined(words: &[Word]) -> String {
        words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// `FROM`.
#[derive(Debug, Clone)]
pub struct From<'a> {
    /// Flags.
    pub flags: Flags,
    /// The image or target reference.
    pub base: &'a Word,
    /// `--NAME=value` arguments after a target reference.
    pub args: &'a [Word],
}

/// `RUN`.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// Flags.
    pub flags: Flags,
    /// The command.
    pub form: Form<'a>,
}

/// One source of a COPY: a context path or an artifact reference (with its arguments when
/// written `(+target/path --NAME=value)`).
#[derive(Debug, Clone)]
pub struct CopySource {
    /// The path or reference, raw.
    pub text: String,
    /// `--NAME=value` arguments inside the parentheses, raw.
    pub args: Vec<(String, Span)>,
    /// Where it is.
    pub span: Span,
}

/// `COPY`.
#[derive(Debug, Clone)]
pub struct Copy<'a> {
    /// Flags.
    pub flags: Flags,
    /// Sources.
    pub sources: Vec<CopySource>,
    /// Destination.
    pub dest: &'a Word,
}

/// `SAVE ARTIFACT src [dest] [AS LOCAL path]`.
#[derive(Debug, Clone)]
pub struct SaveArtifact<'a> {
    /// Flags.
    pub flags: Flags,
    /// What to save.
    pub src: &'a Word,
    /// Where in the target's artifacts.
    pub dest: Option<&'a Word>,
    /// `AS LOCAL` path on the host.
    pub local: Option<&'a Word>,
}

/// `SAVE IMAGE`.
#[derive(Debug, Clone)]
pub struct SaveImage<'a> {
    /// Flags.
    pub flags: Flags,
    /// Image names.
    pub names: &'a [Word],
}

/// `ARG`.
#[derive(Debug, Clone)]
pub struct Arg<'a> {
    /// Flags.
    pub flags: Flags,
    /// The name.
    pub name: &'a Word,
    /// The default value, raw.
    pub default: Option<&'a Word>,
}

/// `LET` and `SET`.
#[derive(Debug, Clone)]
pub struct Assign<'a> {
    /// The name.
    pub name: &'a Word,
    /// The value, raw.
    pub value: &'a Word,
}

/// `ENV`.
#[derive(Debug, Clone)]
pub struct Env<'a> {
    /// The name.
    pub key: &'a Word,
    /// The value, raw (the legacy `ENV KEY value` form joins the words).
    pub value: String,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone)]
pub struct Healthcheck<'a> {
    /// Flags.
    pub flags: Flags,
    /// `None` for `HEALTHCHECK NONE`, else the CMD.
    pub cmd: Option<Form<'a>>,
}

/// A supported command.
#[derive(Debug, Clone)]
pub enum Command<'a> {
    /// FROM.
    From(From<'a>),
    /// RUN.
    Run(Run<'a>),
    /// COPY.
    Copy(Copy<'a>),
    /// SAVE ARTIFACT.
    SaveArtifact(SaveArtifact<'a>),
    /// SAVE IMAGE.
    SaveImage(SaveImage<'a>),
    /// ARG.
    Arg(Arg<'a>),
    /// LET.
    Let(Assign<'a>),
    /// SET.
    Set(Assign<'a>),
    /// ENV.
    Env(Env<'a>),
    /// LABEL: raw keys and values.
    Label(Vec<(String, String)>),
    /// WORKDIR.
    Workdir(&'a Word),
    /// USER.
    User(&'a Word),
    /// CMD.
    Cmd(Form<'a>),
    /// ENTRYPOINT.
    Entrypoint(Form<'a>),
    /// EXPOSE.
    Expose(&'a [Word]),
    /// VOLUME.
    Volume(Form<'a>),
    /// HEALTHCHECK.
    Healthcheck(Healthcheck<'a>),
    /// STOPSIGNAL.
    StopSignal(&'a Word),
}

/// A command and the warnings its flags gave.
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    /// The command.
    pub command: Command<'a>,
    /// Warnings (flags that change nothing in kiln).
    pub warnings: Vec<Diagnostic>,
}

fn error(message: impl Into<String>, span: Span, hint: impl Into<String>, code: &str) -> Diagnostic {
    Diagnostic::error(message, Some(span)).with_hint(hint).with_code(code)
}

fn usage(s: &Statement, message: impl Into<String>, hint: impl Into<String>) -> Vec<Diagnostic> {
    vec![error(message, s.span, hint, "invalid-arguments")]
}

/// Parse leading flags; returns the flags and the remaining words.
fn flags<'a>(
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

/// The exec form, when the words are a JSON list of strings.
fn exec_form(words: &[Word]) -> Option<Vec<String>> {
    let text = Form::joined(words);
    if !text.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(&text).ok()
}

fn form(words: &[Word]) -> Form<'_> {
    match exec_form(words) {
        Some(argv) => Form::Exec(argv),
        None => Form::Shell(words),
    }
}

/// Whether `name` is a valid variable name.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn name_word<'a>(s: &'a Statement, words: &'a [Word]) -> Result<&'a Word, Vec<Diagnostic>> {
    match words {
        [name] if valid_name(&name.text) => Ok(name),
        [name] => Err(vec![error(
            format!("invalid variable name {:?}", name.text),
            name.span,
            "names start with a letter or _ and hold letters, digits and _",
            "invalid-arguments",
        )]),
        [] => Err(usage(s, format!("{} needs a name", s.keyword), format!("write {} NAME=value", s.keyword))),
        [_, extra, ..] => Err(vec![error(
            format!("unexpected {:?} after the name in {}", extra.text, s.keyword),
            extra.span,
            format!("write {} NAME=value; quote a value that has spaces", s.keyword),
            "invalid-arguments",
        )]),
    }
}

/// A `BUILD` statement's error: kiln builds one target per run.
fn build_error(s: &Statement) -> Diagnostic {
    let mut sink = Vec::new();
    let target = match flags(s, BUILD_FLAGS, &s.words, &mut sink) {
        Ok((_, rest)) => rest.first().map(|w| w.text.clone()),
        Err(_) => None,
    };
    let hint = match target {
        Some(t) if t.starts_with('+') => {
            format!("build it on its own: `kiln build --target {t} -f Earthfile .` (one kiln build per target)")
        }
        _ => "run one `kiln build --target +TARGET -f Earthfile .` per target you need".to_string(),
    };
    error(
        format!(
            "kiln does not support BUILD: a build exports the image of one target{}",
            match &s.words.last() {
                Some(w) if w.text.starts_with('+') => format!(", not {} as well", w.text),
                _ => String::new(),
            }
        ),
        s.span,
        hint,
        "unsupported-command",
    )
}

/// The diagnostic for a command kiln does not run, or `None` when it is supported (its
/// flags may still be unsupported; [`parse`] says).
pub fn unsupported_command(s: &Statement) -> Option<Diagnostic> {
    if s.keyword == "BUILD" {
        return Some(build_error(s));
    }
    if let Some((why, hint)) = unsupported(&s.keyword) {
        let message = if why.is_empty() {
            format!("kiln does not support {}", s.keyword)
        } else {
            format!("kiln does not support {}: {why}", s.keyword)
        };
        return Some(error(message, s.span, hint, "unsupported-command"));
    }
    if !KEYWORDS.contains(&s.keyword.as_str()) {
        let upper = s.keyword.to_ascii_uppercase();
        let hint = if KEYWORDS.contains(&upper.as_str()) {
            format!("Earthfile commands are upper case: {upper}")
        } else if let Some(close) = crate::suggest::closest(&s.keyword, &KEYWORDS) {
            format!("did you mean {close}?")
        } else {
            "a recipe line starts with a command such as FROM, RUN, COPY or SAVE ARTIFACT".to_string()
        };
        return Some(error(format!("unknown command {}", s.keyword), s.keyword_span, hint, "unknown-command"));
    }
    None
}

/// Parse one statement into a supported command.
///
/// # Errors
/// The command or one of its flags is not supported, or its arguments do not fit it.
pub fn parse(s: &Statement) -> Result<Parsed<'_>, Vec<Diagnostic>> {
    if let Some(d) = unsupported_command(s) {
        return Err(vec![d]);
    }
    let mut warnings = Vec::new();
    let w = &s.words[..];
    let command = match s.keyword.as_str() {
        "FROM" => {
            let (flags, rest) = flags(s, FROM_FLAGS, w, &mut warnings)?;
            match rest {
                [] => {
                    return Err(usage(s, "FROM needs an image or a target", "write FROM alpine:3.20 or FROM +target"));
                }
                [_, as_kw, ..] if as_kw.text.eq_ignore_ascii_case("AS") => {
                    return Err(vec![error(
                        "Earthfiles have no FROM ... AS: each target is its own stage",
                        as_kw.span,
                        "start a new target (name: followed by its indented recipe) and refer to it as +name",
                        "invalid-arguments",
                    )]);
                }
                [base, args @ ..] => {
                    if let Some(bad) = args.iter().find(|a| !a.text.starts_with("--")) {
                        return Err(vec![error(
                            format!("unexpected {:?} after the base of FROM", bad.text),
                            bad.span,
                            "a target reference takes arguments as --NAME=value",
                            "invalid-arguments",
                        )]);
                    }
                    Command::From(From { flags, base, args })
                }
            }
        }
        "RUN" => {
            let (flags, rest) = flags(s, RUN_FLAGS, w, &mut warnings)?;
            if rest.is_empty() && !flags.on("entrypoint") {
                return Err(usage(s, "RUN needs a command", "write RUN make, or RUN [\"make\", \"all\"]"));
            }
            Command::Run(Run { flags, form: form(rest) })
        }
        "COPY" => {
            let (flags, rest) = flags(s, COPY_FLAGS, w, &mut warnings)?;
            let mut sources = Vec::new();
            let mut k = 0;
            while k < rest.len() {
                let word = &rest[k];
                if let Some(inner) = word.text.strip_prefix('(') {
                    // `(+target/path --NAME=value ...)`
                    let mut args = Vec::new();
                    let mut text = inner.to_string();
                    let mut end = word.span.end;
                    let mut closed = text.ends_with(')');
                    if closed {
                        text.pop();
                    }
                    while !closed {
                        k += 1;
                        let Some(next) = rest.get(k) else {
                            return Err(vec![error(
                                "unclosed ( in COPY",
                                word.span,
                                "write (+target/path --NAME=value) with the closing parenthesis",
                                "invalid-arguments",
                            )]);
                        };
                        let mut arg = next.text.clone();
                        if arg.ends_with(')') {
                            arg.pop();
                            closed = true;
                        }
                        end = next.span.end;
                        if !arg.is_empty() {
                            args.push((arg, next.span));
                        }
                    }
                    sources.push(CopySource { text, args, span: Span { start: word.span.start, end } });
                } else {
                    sources.push(CopySource { text: word.text.clone(), args: Vec::new(), span: word.span });
                }
                k += 1;
            }
            let Some(last) = sources.pop() else {
                return Err(usage(s, "COPY needs a source and a destination", "write COPY src dest"));
            };
            if sources.is_empty() || !last.args.is_empty() {
                return Err(usage(s, "COPY needs a source and a destination", "write COPY src dest"));
            }
            let dest = rest.last().filter(|d| d.span == last.span).ok_or_else(|| {
                usage(s, "the destination of COPY cannot be in parentheses", "write COPY (+target/path --A=b) dest")
            })?;
            Command::Copy(Copy { flags, sources, dest })
        }
        "SAVE ARTIFACT" => {
            let (flags, rest) = flags(s, SAVE_ARTIFACT_FLAGS, w, &mut warnings)?;
            let as_at = rest.iter().position(|w| w.text == "AS");
            let (positional, local) = match as_at {
                Some(at) => {
                    let tail = &rest[at + 1..];
                    match tail {
                        [local_kw, path] if local_kw.text == "LOCAL" => (&rest[..at], Some(path)),
                        _ => {
                            return Err(usage(
                                s,
                                "SAVE ARTIFACT ... AS takes LOCAL and a path",
                                "write SAVE ARTIFACT src [dest] AS LOCAL path",
                            ));
                        }
                    }
                }
                None => (rest, None),
            };
            match positional {
                [src] => Command::SaveArtifact(SaveArtifact { flags, src, dest: None, local }),
                [src, dest] => Command::SaveArtifact(SaveArtifact { flags, src, dest: Some(dest), local }),
                _ => {
                    return Err(usage(
                        s,
                        "SAVE ARTIFACT takes a source and an optional destination",
                        "write SAVE ARTIFACT src [dest] [AS LOCAL path]",
                    ));
                }
            }
        }
        "SAVE IMAGE" => {
            let (flags, names) = flags(s, SAVE_IMAGE_FLAGS, w, &mut warnings)?;
            Command::SaveImage(SaveImage { flags, names })
        }
        "ARG" => {
            let (flags, rest) = flags(s, ARG_FLAGS, w, &mut warnings)?;
            let name = name_word(s, rest)?;
            if flags.on("required") && s.assignment.is_some() {
                return Err(usage(
                    s,
                    "ARG --required takes no default value",
                    "pass the value with --build-arg instead, or drop --required",
                ));
            }
            Command::Arg(Arg { flags, name, default: s.assignment.as_ref() })
        }
        "LET" | "SET" => {
            let name = name_word(s, w)?;
            let Some(value) = s.assignment.as_ref() else {
                return Err(usage(
                    s,
                    format!("{} needs a value", s.keyword),
                    format!("write {} NAME=value", s.keyword),
                ));
            };
            let assign = Assign { name, value };
            if s.keyword == "LET" { Command::Let(assign) } else { Command::Set(assign) }
        }
        "ENV" => match (w, &s.assignment) {
            ([key], Some(value)) => Command::Env(Env { key, value: value.text.clone() }),
            ([key, rest @ ..], None) => Command::Env(Env { key, value: Form::joined(rest) }),
            _ => return Err(usage(s, "ENV takes a name and a value", "write ENV NAME=value")),
        },
        "LABEL" => {
            let mut pairs = Vec::new();
            let mut k = 0;
            while k < w.len() {
                let word = &w[k].text;
                if let Some((key, value)) = split_unquoted_eq(word) {
                    if value.is_empty() && w.get(k + 1).is_some_and(|n| !n.text.contains('=')) && word.ends_with('=') {
                        // `key= value`
                        pairs.push((key, w[k + 1].text.clone()));
                        k += 2;
                        continue;
                    }
                    pairs.push((key, value));
                    k += 1;
                } else if w.get(k + 1).is_some_and(|n| n.text == "=") && w.get(k + 2).is_some() {
                    pairs.push((word.clone(), w[k + 2].text.clone()));
                    k += 3;
                } else {
                    return Err(vec![error(
                        format!("LABEL {word:?} has no value"),
                        w[k].span,
                        "write LABEL key=value (quote values that have spaces)",
                        "invalid-arguments",
                    )]);
                }
            }
            if pairs.is_empty() {
                return Err(usage(s, "LABEL needs key=value pairs", "write LABEL key=value"));
            }
            Command::Label(pairs)
        }
        "WORKDIR" | "USER" | "STOPSIGNAL" => match w {
            [one] => match s.keyword.as_str() {
                "WORKDIR" => Command::Workdir(one),
                "USER" => Command::User(one),
                _ => Command::StopSignal(one),
            },
            _ => {
                return Err(usage(
                    s,
                    format!("{} takes one argument", s.keyword),
                    "quote a value that has spaces".to_string(),
                ));
            }
        },
        "CMD" => Command::Cmd(form(w)),
        "ENTRYPOINT" => Command::Entrypoint(form(w)),
        "EXPOSE" => {
            if w.is_empty() {
                return Err(usage(s, "EXPOSE needs a port", "write EXPOSE 8080 or EXPOSE 53/udp"));
            }
            Command::Expose(w)
        }
        "VOLUME" => {
            if w.is_empty() {
                return Err(usage(s, "VOLUME needs a path", "write VOLUME /data"));
            }
            Command::Volume(form(w))
        }
        "HEALTHCHECK" => {
            let (flags, rest) = flags(s, HEALTHCHECK_FLAGS, w, &mut warnings)?;
            match rest {
                [none] if none.text.eq_ignore_ascii_case("NONE") => {
                    Command::Healthcheck(Healthcheck { flags, cmd: None })
                }
                [cmd, args @ ..] if cmd.text.eq_ignore_ascii_case("CMD") && !args.is_empty() => {
                    Command::Healthcheck(Healthcheck { flags, cmd: Some(form(args)) })
                }
                _ => {
                    return Err(usage(
                        s,
                        "HEALTHCHECK takes NONE or CMD and a command",
                        "write HEALTHCHECK --interval=30s CMD check-health",
                    ));
                }
            }
        }
        // The parser consumes VERSION, END and the blocks; anything else is listed above.
        other => {
            return Err(usage(
                s,
                format!("{other} is not allowed here"),
                "VERSION goes on the first line; END closes a block",
            ));
        }
    };
    Ok(Parsed { command, warnings })
}

/// Split `key=value` at the first `=` outside quotes.
pub fn split_unquoted_eq(word: &str) -> Option<(String, String)> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in word.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match (c, quote) {
            ('\\', _) => escaped = true,
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('=', None) => return Some((word[..i].to_string(), word[i + 1..].to_string())),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::{Item, lex};

    /// A statement that lives for the test (commands borrow their statement).
    fn statement(text: &str) -> &'static Statement {
        match lex(text).unwrap().remove(0) {
            Item::Statement(s) => Box::leak(Box::new(s)),
            Item::Header { .. } => panic!("header"),
        }
    }

    fn err(text: &str) -> Diagnostic {
        parse(statement(text)).unwrap_err().remove(0)
    }

    #[test]
    fn flags_in_every_spelling() {
        let s = statement("RUN --network=none --secret A=b --secret C --mount type=cache,target=/c -- --help");
        let p = parse(s).unwrap();
        let Command::Run(run) = p.command else { panic!() };
        assert_eq!(run.flags.value("network").unwrap().0, "none");
        assert_eq!(run.flags.values("secret").iter().map(|v| v.0).collect::<Vec<_>>(), ["A=b", "C"]);
        assert_eq!(run.flags.values("mount")[0].0, "type=cache,target=/c");
        let Form::Shell(words) = run.form else { panic!() };
        assert_eq!(Form::joined(words), "--help");
    }

    #[test]
    fn exec_and_shell_forms() {
        let p = parse(statement(r#"RUN ["echo", "a b"]"#)).unwrap();
        assert!(matches!(p.command, Command::Run(Run { form: Form::Exec(ref v), .. }) if v == &["echo", "a b"]));
        let p = parse(statement(r#"CMD echo "a  b" $X"#)).unwrap();
        let Command::Cmd(Form::Shell(words)) = p.command else { panic!() };
        assert_eq!(Form::joined(words), "echo \"a  b\" $X");
    }

    #[test]
    fn unknown_and_unsupported_flags() {
        let d = err("RUN --netwrk=none x");
        assert_eq!(d.message, "unknown flag --netwrk for RUN");
        assert!(d.hint.unwrap().starts_with("did you mean --network?"));
        let d = err("RUN --push ./deploy.sh");
        assert_eq!(d.message, "kiln does not support RUN --push");
        assert_eq!(d.code.as_deref(), Some("unsupported-flag"));
        assert_eq!((d.span.unwrap().start.column, d.span.unwrap().end.column), (5, 10));
        let p = parse(statement("RUN --no-cache make")).unwrap();
        assert_eq!(p.warnings[0].code.as_deref(), Some("ignored-flag"));
    }

    #[test]
    fn copy_sources_with_arguments() {
        let s = statement("COPY --dir (+build/bin --GOOS=linux --X=1) +other/a ./");
        let Command::Copy(copy) = parse(s).unwrap().command else { panic!() };
        assert!(copy.flags.on("dir"));
        assert_eq!(copy.sources[0].text, "+build/bin");
        assert_eq!(copy.sources[0].args.iter().map(|a| a.0.as_str()).collect::<Vec<_>>(), ["--GOOS=linux", "--X=1"]);
        assert_eq!(copy.sources[1].text, "+other/a");
        assert_eq!(copy.dest.text, "./");
        assert_eq!(err("COPY onlyone").message, "COPY needs a source and a destination");
    }

    #[test]
    fn save_artifact_shapes() {
        let Command::SaveArtifact(a) =
            parse(statement("SAVE ARTIFACT out/app /bin/ AS LOCAL dist/app")).unwrap().command
        else {
            panic!()
        };
        assert_eq!(
            (a.src.text.as_str(), a.dest.unwrap().text.as_str(), a.local.unwrap().text.as_str()),
            ("out/app", "/bin/", "dist/app")
        );
        assert_eq!(err("SAVE ARTIFACT a AS b").message, "SAVE ARTIFACT ... AS takes LOCAL and a path");
        assert_eq!(err("SAVE ARTIFACT a b c").message, "SAVE ARTIFACT takes a source and an optional destination");
    }

    #[test]
    fn from_shapes() {
        let Command::From(f) = parse(statement("FROM --platform linux/arm64 +base --X=1")).unwrap().command else {
            panic!()
        };
        assert_eq!(f.flags.value("platform").unwrap().0, "linux/arm64");
        assert_eq!(f.base.text, "+base");
        assert_eq!(f.args[0].text, "--X=1");
        assert_eq!(err("FROM alpine AS build").message, "Earthfiles have no FROM ... AS: each target is its own stage");
    }

    #[test]
    fn variables() {
        assert_eq!(err("ARG 1X=a").message, "invalid variable name \"1X\"");
        assert_eq!(err("ARG --required X=a").message, "ARG --required takes no default value");
        assert_eq!(err("LET X").message, "LET needs a value");
        let Command::Env(e) = parse(statement("ENV A b c")).unwrap().command else { panic!() };
        assert_eq!(e.value, "b c");
        let Command::Label(pairs) = parse(statement(r#"LABEL a=1 "b c"="d e" f = g"#)).unwrap().command else {
            panic!()
        };
        assert_eq!(
            pairs,
            [
                ("a".to_string(), "1".to_string()),
                ("\"b c\"".to_string(), "\"d e\"".to_string()),
                ("f".to_string(), "g".to_string())
            ]
        );
    }

    #[test]
    fn unknown_commands() {
        let d = err("run echo hi");
        assert_eq!(d.message, "unknown command run");
        assert_eq!(d.hint.as_deref(), Some("Earthfile commands are upper case: RUN"));
        assert_eq!(err("COPPY a b").hint.as_deref(), Some("did you mean COPY?"));
    }

    #[test]
    fn build_says_what_to_do_instead() {
        let d = err("BUILD --platform=linux/amd64 +docker");
        assert!(d.message.starts_with("kiln does not support BUILD"), "{}", d.message);
        assert!(d.hint.unwrap().contains("kiln build --target +docker -f Earthfile ."));
    }
}
