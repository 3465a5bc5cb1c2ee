//! Statements to typed commands: which commands and flags kiln supports, their arguments in
//! place, and a diagnostic (with a hint) for everything else.
//!
//! Owns each command's flag table (Earthly's `ast/commandflag`), the flag syntax
//! (`--flag`, `--flag=value`, `--flag value`, `--` to stop), the positional shape of each
//! command, the exec (JSON) versus shell form, and the list of Earthfile commands kiln does
//! not run, each with what to do instead. Values stay raw here; [`crate::convert`] expands them
//! in the scope of the target that runs the command.
//!
//! The flag tables and flag syntax are in `flags`, the commands kiln refuses in
//! `unsupported`; the typed commands and each command's positional shape stay here.

use kiln_ir::{Diagnostic, Span};

use crate::lexer::{Statement, Word};

mod flags;
mod unsupported;

use flags::{
    ARG_FLAGS, COPY_FLAGS, FROM_FLAGS, HEALTHCHECK_FLAGS, RUN_FLAGS, SAVE_ARTIFACT_FLAGS, SAVE_IMAGE_FLAGS, flags,
};
pub use unsupported::unsupported_command;

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
mod tests;
