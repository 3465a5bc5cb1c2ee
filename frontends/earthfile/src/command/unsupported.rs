//! The Earthfile commands kiln does not run (LOCALLY, WITH DOCKER, IMPORT, BUILD, ...),
//! each with what to do instead, and the diagnostic for an unknown keyword with the closest
//! known one as a hint.
//!
//! It owns the refusals only; it must never parse the commands kiln does run.

use super::flags::BUILD_FLAGS;
use super::*;

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
