//! kiln's Dockerfile frontend: Dockerfile text in, stage IR out.
//!
//! The language is BuildKit's Dockerfile frontend as it stands today, layer by layer:
//!
//! - [`parser`]: physical lines to an instruction tree (directives, continuations, comments,
//!   heredocs, JSON vs shell form), with BuildKit's golden-file dump;
//! - [`instructions`]: the tree to typed instructions (argument counts, flags, mounts);
//! - [`shell`]: word expansion (`$V`, `${V:-w}`, `${V#p}`, ...) and word splitting;
//! - [`convert`]: stages, ARG/ENV scoping, expansion, `--from`, `--target`, ONBUILD, to
//!   the [`kiln_ir`] types.
//!
//! [`parse`] runs all of them. The crate is a plain library (tested natively) and, built for
//! `wasm32-wasip2`, the `kiln:build` frontend component kiln embeds. It reads no files and
//! asks the host for one thing only: base-image configurations, through [`ImageResolver`].

#![deny(unsafe_code)]

pub mod convert;
pub mod directives;
pub mod duration;
pub mod expose;
pub mod flags;
pub mod instructions;
pub mod mounts;
pub mod parser;
pub mod platform;
pub mod shell;
pub mod strconv;
mod suggest;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
#[allow(unsafe_code, reason = "wit-bindgen's export glue for the component boundary")]
mod component;

use kiln_ir::{BuildGraph, Diagnostic, ImageResolver, Position, Request, Span};

/// Parse a Dockerfile into the stage IR.
///
/// # Errors
/// Every problem found, errors first, each with its place in the file and a hint where one
/// helps. Warnings found along the way follow the errors.
pub fn parse(request: &Request, resolver: &dyn ImageResolver) -> Result<BuildGraph, Vec<Diagnostic>> {
    match parse_uncapped(request, resolver) {
        Ok(mut graph) => {
            graph.warnings = cap(std::mem::take(&mut graph.warnings));
            Ok(graph)
        }
        Err(diagnostics) => Err(cap(diagnostics)),
    }
}

/// Most diagnostics of one kind shown: past these, more of the same teach nothing, and a
/// file of a hundred thousand broken lines would otherwise print a million lines.
pub const MAX_SHOWN: usize = 50;

/// Keep the first [`MAX_SHOWN`] errors and the first [`MAX_SHOWN`] warnings of each rule, in
/// order, and say how many more there were.
fn cap(diagnostics: Vec<Diagnostic>) -> Vec<Diagnostic> {
    let mut shown: std::collections::BTreeMap<(bool, Option<String>), usize> = std::collections::BTreeMap::new();
    let mut out = Vec::new();
    let mut hidden: Vec<((bool, Option<String>), usize)> = Vec::new();
    for d in diagnostics {
        let is_error = d.severity == kiln_ir::Severity::Error;
        // Errors are counted together, warnings by rule.
        let key = (is_error, if is_error { None } else { d.code.clone() });
        let count = shown.entry(key.clone()).or_default();
        *count += 1;
        if *count <= MAX_SHOWN {
            out.push(d);
        } else {
            match hidden.iter_mut().find(|(k, _)| *k == key) {
                Some((_, n)) => *n += 1,
                None => hidden.push((key, 1)),
            }
        }
    }
    for ((is_error, code), n) in hidden {
        if is_error {
            out.push(
                Diagnostic::error(format!("{n} more errors are not shown"), None)
                    .with_hint("fix the ones above and build again"),
            );
        } else {
            let rule = code.unwrap_or_default();
            out.push(Diagnostic::warning(format!("{n} more {rule} warnings are not shown"), None).with_code(rule));
        }
    }
    // Errors first, as the callers order them.
    out.sort_by_key(|d| d.severity != kiln_ir::Severity::Error);
    out
}

fn parse_uncapped(request: &Request, resolver: &dyn ImageResolver) -> Result<BuildGraph, Vec<Diagnostic>> {
    let text = match std::str::from_utf8(&request.contents) {
        Ok(text) => text,
        Err(e) => {
            let at = Position::of_byte(&request.contents, e.valid_up_to());
            return Err(vec![
                Diagnostic::error("the file is not valid UTF-8", Some(Span { start: at, end: at }))
                    .with_hint("save the Dockerfile as UTF-8")
                    .with_code("InvalidUtf8"),
            ]);
        }
    };
    let lines = convert::Lines::new(text);
    let parsed = parser::parse(text).map_err(|e| {
        let span = (e.start_line > 0).then(|| lines.span(e.start_line, e.end_line));
        let mut d = Diagnostic::error(e.message, span);
        d.hint = e.hint;
        vec![d]
    })?;
    let located = instructions::parse_all(&parsed.children).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| {
                let mut d = Diagnostic::error(e.message, Some(lines.span(e.start_line, e.end_line)));
                d.hint = e.hint;
                d
            })
            .collect::<Vec<_>>()
    })?;
    convert::convert(&parsed, &located, request, resolver, &lines)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use kiln_ir::{BuildGraph, NoImages, Request, Severity};

    use super::*;

    fn parse_text(text: &str) -> Result<BuildGraph, Vec<Diagnostic>> {
        let request = Request {
            file_name: "Dockerfile".into(),
            contents: text.as_bytes().to_vec(),
            build_args: Vec::new(),
            target: None,
            build_platform: "linux/amd64".into(),
            target_platform: "linux/amd64".into(),
        };
        parse(&request, &NoImages)
    }

    /// Parse, and fail if it took long: each of these was quadratic (or worse) once.
    fn timed(text: &str) -> Result<BuildGraph, Vec<Diagnostic>> {
        let start = Instant::now();
        let result = parse_text(text);
        // Native and optimised this is well under a second; the bound leaves room for a
        // debug build on a busy machine, and is far below what quadratic work took.
        assert!(start.elapsed() < Duration::from_secs(30), "took {:?}", start.elapsed());
        result
    }

    fn lines(n: usize, line: impl Fn(usize) -> String) -> String {
        let mut text = String::from("FROM scratch\n");
        for i in 0..n {
            text.push_str(&line(i));
            text.push('\n');
        }
        text
    }

    #[test]
    fn a_hundred_thousand_variables_parse_in_linear_time() {
        for text in [
            lines(100_000, |i| format!("ENV k{i}=v")),
            lines(100_000, |i| format!("ENV k{i}=${{k{}}}", i.saturating_sub(1))),
            lines(100_000, |i| format!("ARG a{i}=v")),
            lines(100_000, |i| format!("ARG a{}=v", i % 1000)),
        ] {
            let graph = timed(&text).unwrap();
            assert_eq!(graph.stages[0].instructions.len(), 100_000);
        }
    }

    #[test]
    fn many_undefined_variables_warn_in_linear_time_and_are_capped() {
        let graph = timed(&lines(100_000, |i| format!("ENV k{i}=$undefined{i}"))).unwrap();
        let undefined: Vec<_> = graph.warnings.iter().filter(|w| w.code.as_deref() == Some("UndefinedVar")).collect();
        assert_eq!(undefined.len(), MAX_SHOWN + 1);
        assert_eq!(
            undefined[MAX_SHOWN].message,
            format!("{} more UndefinedVar warnings are not shown", 100_000 - MAX_SHOWN)
        );
        // Suggestions still work while they are cheap.
        let graph = timed("FROM scratch\nENV VERSION=1\nLABEL v=$VERSON\n").unwrap();
        assert!(graph.warnings[0].message.contains("did you mean $VERSION?"), "{:?}", graph.warnings);
    }

    #[test]
    fn a_hundred_thousand_errors_are_capped() {
        let errors = timed(&lines(100_000, |_| "FORM x".into())).unwrap_err();
        assert_eq!(errors.len(), MAX_SHOWN + 1);
        assert!(errors.iter().all(|d| d.severity == Severity::Error));
        assert_eq!(errors[MAX_SHOWN].message, format!("{} more errors are not shown", 100_000 - MAX_SHOWN));
    }

    #[test]
    fn a_workdir_longer_than_linux_accepts_is_an_error_on_its_line() {
        let errors = timed(&lines(100_000, |i| format!("WORKDIR d{}", i % 10))).unwrap_err();
        let first = &errors[0];
        assert!(first.message.contains("bytes long, more than the 4095 Linux accepts"), "{first:?}");
        // "/d0" is 3 bytes: the 1366th WORKDIR (line 1367) is the first past 4095.
        assert_eq!(first.span.unwrap().start.line, 1367);
    }

    #[test]
    fn nul_bytes_in_paths_are_errors_on_their_line() {
        for (text, what) in [
            ("FROM scratch\nCOPY a\0b /x\n", "COPY path contains a NUL byte"),
            ("FROM scratch\nADD a /x\0\n", "ADD path contains a NUL byte"),
            ("FROM scratch\nWORKDIR /a\0b\n", "WORKDIR contains a NUL byte"),
            ("FROM scratch\nRUN --mount=type=tmpfs,target=/a\0 true\n", "--mount target contains a NUL byte"),
        ] {
            let errors = parse_text(text).unwrap_err();
            assert_eq!(errors[0].message, what, "{text:?}");
            assert_eq!(errors[0].span.unwrap().start.line, 2, "{text:?}");
        }
    }

    #[test]
    fn a_cycle_is_reported_at_the_instruction_that_closes_it() {
        let errors = parse_text("FROM scratch AS a\nCOPY --from=a /x /y\n").unwrap_err();
        assert_eq!(errors[0].message, "circular dependency detected on stage: a");
        assert_eq!(errors[0].span.unwrap().start.line, 2);
        assert_eq!(errors[0].hint.as_deref(), Some("stage a uses itself here; a stage cannot copy from itself"));
        let errors = parse_text(
            "FROM scratch AS a\nCOPY --from=b /x /y\nFROM scratch AS b\nRUN --mount=from=a,target=/m true\n",
        )
        .unwrap_err();
        assert_eq!(errors[0].message, "circular dependency detected on stage: a");
        assert_eq!(errors[0].span.unwrap().start.line, 4);
    }
}
