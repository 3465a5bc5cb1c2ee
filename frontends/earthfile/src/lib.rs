//! kiln's Earthfile frontend: Earthly's Earthfile language in, stage IR out.
//!
//! Earthly is no longer maintained; this crate lets its users build their Earthfiles with
//! kiln. The language is Earthly's, VERSION 0.6 to 0.8, layer by layer:
//!
//! - `lexer`: lines, words, quotes, comments and continuations, as Earthly's lexer cuts them;
//! - `parser`: VERSION, the base recipe, targets, and blocks;
//! - `command`: each command's flags and arguments, and a diagnostic with a hint for
//!   everything kiln does not support;
//! - `reference`: `+target` and `+target/artifact` references;
//! - `convert`: targets instantiated on demand to stages, the base recipe, ARG scoping and
//!   overrides, artifacts, and target selection, to the [`kiln_ir`] types.
//!
//! [`parse`] runs all of them. The crate is a plain library (tested natively) and, built for
//! `wasm32-wasip2` with the `component` feature, the `kiln:build` frontend component kiln
//! embeds. It reads no files and asks the host for one thing only: base-image
//! configurations, through [`ImageResolver`]. Word expansion, `--mount` values, EXPOSE,
//! durations and platforms come from the Dockerfile frontend's library (`kiln-dockerfile`),
//! since Earthly expands words with the same BuildKit shell lexer.
//!
//! What kiln does with the parts of the language that have no place in its IR:
//!
//! - `SAVE IMAGE name` cannot name the image (the IR has no tag): a warning says to pass
//!   `-t name` to `kiln build`.
//! - `BUILD +target` is an error: a kiln build exports one target's image; the hint gives the
//!   `kiln build --target` command for the target BUILD names.
//! - `SAVE ARTIFACT ... AS LOCAL` saves the artifact as usual and warns that kiln writes
//!   nothing to the host during a build, suggesting `-o type=local`.
//! - Commands kiln cannot run (LOCALLY, WITH DOCKER, IMPORT, FUNCTION/DO, IF/FOR/TRY/WAIT,
//!   GIT CLONE, CACHE, HOST, PROJECT, remote and other-Earthfile references, ...) are errors
//!   with a hint in the targets the build needs, and warnings in the others.

#![deny(unsafe_code)]
#![deny(missing_docs)]

mod command;
mod convert;
mod lexer;
mod parser;
mod reference;
mod suggest;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
#[allow(unsafe_code, reason = "wit-bindgen's export glue for the component boundary")]
mod component;

pub use convert::{MAX_DEPTH, MAX_INSTANCES, MAX_STAGES};
pub use parser::VERSIONS;

use kiln_ir::{BuildGraph, Diagnostic, ImageResolver, Position, Request, Span};

/// The largest Earthfile kiln reads, in bytes.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Parse an Earthfile into the stage IR.
///
/// The target is `request.target` (`+name` or `name`), or `+build` when none is given.
/// `request.build_args` override the ARGs of that target and of the targets it references.
///
/// # Errors
/// Every problem found, errors first, each with its place in the file and a hint where one
/// helps; the warnings found along the way follow them.
///
/// # Example
/// ```
/// use kiln_ir::{NoImages, Request};
///
/// let earthfile = "VERSION 0.8\n\
///                  build:\n    FROM scratch\n    COPY hello.txt /\n";
/// let request = Request {
///     file_name: "Earthfile".into(),
///     contents: earthfile.as_bytes().to_vec(),
///     build_args: Vec::new(),
///     target: None,
///     build_platform: "linux/amd64".into(),
///     target_platform: "linux/amd64".into(),
/// };
/// let graph = kiln_earthfile::parse(&request, &NoImages).unwrap();
/// assert_eq!(graph.stages[graph.target as usize].name.as_deref(), Some("build"));
/// ```
pub fn parse(request: &Request, host: &dyn ImageResolver) -> Result<BuildGraph, Vec<Diagnostic>> {
    if request.contents.len() > MAX_FILE_BYTES {
        return Err(vec![
            Diagnostic::error(
                format!("the Earthfile is {} bytes; kiln reads at most {MAX_FILE_BYTES}", request.contents.len()),
                None,
            )
            .with_hint("split it, or check that -f names the right file")
            .with_code("file-too-large"),
        ]);
    }
    let text = match std::str::from_utf8(&request.contents) {
        Ok(text) => text,
        Err(e) => {
            let at = Position::of_byte(&request.contents, e.valid_up_to());
            return Err(vec![
                Diagnostic::error("the file is not valid UTF-8", Some(Span { start: at, end: at }))
                    .with_hint("save the Earthfile as UTF-8")
                    .with_code("invalid-utf8"),
            ]);
        }
    };
    if let Some(nul) = text.find('\0') {
        let at = Position::of_byte(text.as_bytes(), nul);
        return Err(vec![
            Diagnostic::error("the file contains a NUL character", Some(Span { start: at, end: at }))
                .with_hint("an Earthfile is text; check that -f names the right file")
                .with_code("nul-character"),
        ]);
    }
    let file = parser::parse(text)?;
    convert::convert(&file, request, host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{NoImages, Severity};
    use proptest::prelude::*;

    fn request(text: &str) -> Request {
        Request {
            file_name: "Earthfile".into(),
            contents: text.as_bytes().to_vec(),
            build_args: Vec::new(),
            target: None,
            build_platform: "linux/amd64".into(),
            target_platform: "linux/amd64".into(),
        }
    }

    /// Lines Earthfiles are made of, and a few that break them.
    const LINES: [&str; 24] = [
        "VERSION 0.8",
        "FROM alpine:3.20",
        "ARG --global A=1",
        "build:",
        "x:",
        "    FROM +x",
        "    FROM scratch",
        "    RUN echo \"a b\" \\",
        "    RUN echo $(date) 'q",
        "    COPY +x/y .",
        "    COPY (+x/y --A=2) /z/",
        "    COPY --dir a b ./",
        "    SAVE ARTIFACT /y",
        "    SAVE ARTIFACT out/* d/ AS LOCAL o",
        "    ARG B=$A",
        "    LET C=$B",
        "    SET C=2",
        "    IF true",
        "    END",
        "    BUILD +x",
        "# comment",
        "",
        "\t  ",
        "    WORKDIR /w",
    ];

    proptest! {
        #[test]
        fn any_text_gives_a_result_and_valid_ir(lines in proptest::collection::vec(0..LINES.len(), 0..24), noise in ".{0,40}") {
            let mut text: String = lines.iter().map(|&i| LINES[i]).collect::<Vec<_>>().join("\n");
            text.push_str(&noise);
            let line_count = text.split('\n').count() as u32;
            let first = parse(&request(&text), &NoImages);
            prop_assert_eq!(&first, &parse(&request(&text), &NoImages));
            match first {
                Ok(graph) => {
                    prop_assert!(graph.validate().is_ok(), "{:?}", graph.validate());
                    prop_assert!(graph.warnings.iter().all(|w| w.severity == Severity::Warning));
                }
                Err(diagnostics) => {
                    prop_assert!(diagnostics.iter().any(|d| d.severity == Severity::Error));
                    for d in diagnostics.iter().filter_map(|d| d.span) {
                        prop_assert!(d.start.line >= 1 && d.start.column >= 1 && d.end.line <= line_count);
                        prop_assert!(d.start <= d.end);
                    }
                }
            }
        }
    }

    #[test]
    fn not_utf8_and_nul() {
        let mut req = request("VERSION 0.8\nbuild:\n    RUN x\n");
        req.contents[23] = 0xff;
        let d = parse(&req, &NoImages).unwrap_err();
        assert_eq!(d[0].code.as_deref(), Some("invalid-utf8"));
        assert_eq!(d[0].span.unwrap().start, Position { line: 3, column: 5 });
        let d = parse(&request("VERSION 0.8\nbuild:\n    RUN \0\n"), &NoImages).unwrap_err();
        assert_eq!(d[0].code.as_deref(), Some("nul-character"));
        assert_eq!(d[0].span.unwrap().start, Position { line: 3, column: 9 });
    }
}
