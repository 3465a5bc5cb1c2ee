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
