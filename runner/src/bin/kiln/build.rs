//! `kiln parse` and `kiln build`: flags to requests, the library's errors to what people
//! read (the build file's line quoted, the hint, what was not tagged) and exit codes.

use std::process::ExitCode;
use std::sync::Arc;

use kiln::diagnostics;
use kiln::pipeline::{self, BuildError, ParseError, Session};
use kiln::progress::Progress;

use crate::args::{BuildArgs, ParseArgs};
use crate::render::{Mode, Terminal};
use crate::{error, flag_error, usage};

/// Show why parsing failed; the exit code.
fn parse_failed(e: &ParseError) -> ExitCode {
    if let ParseError::Rejected { file_name, contents, diagnostics } = e {
        for d in diagnostics {
            eprint!("{}", diagnostics::render(file_name, contents, d));
        }
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    error(e)
}

/// `kiln parse`: the IR as JSON on stdout, the frontend's warnings on stderr.
pub fn parse(args: &ParseArgs, session: &Session) -> ExitCode {
    let request = match args.request() {
        Ok(r) => r,
        Err(e) => return flag_error(e),
    };
    // The store is optional for parsing: without one, base images are simply unknown. A
    // frontend named by an image may be pulled; base images never are.
    let store = session.open_store().ok();
    let parsed = match pipeline::parse(session, &request, store.as_ref()) {
        Ok(p) => p,
        Err(e) => return parse_failed(&e),
    };
    for w in &parsed.graph.warnings {
        eprint!("{}", diagnostics::render(&parsed.file_name, &parsed.contents, w));
    }
    match serde_json::to_string_pretty(&parsed.graph) {
        Ok(json) => {
            say!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => error(format!("cannot print the IR: {e}")),
    }
}

/// `kiln build`: progress on stderr, the image ID on stdout.
pub fn build(args: &BuildArgs, session: &Session) -> ExitCode {
    let request = match args.request() {
        Ok(r) => r,
        Err(e) => return flag_error(e),
    };
    let mode = if args.quiet { Mode::Quiet } else { args.progress };
    let progress = Progress::new(Arc::new(Terminal::new(mode)));
    match pipeline::build(session, &request, &progress) {
        Ok(outcome) => {
            say!("{}", outcome.config_digest);
            ExitCode::SUCCESS
        }
        Err(e) => build_failed(&e),
    }
}

/// Show why a build failed; the exit code.
fn build_failed(e: &BuildError) -> ExitCode {
    let interrupted = e.is_interrupted();
    match e {
        _ if e.is_usage() => usage(e),
        BuildError::Parse(e) => parse_failed(e),
        BuildError::NotReproducible { file_name, differences } => {
            eprintln!("{file_name}: the build is not reproducible; nothing was tagged");
            for line in differences {
                eprintln!("  {line}");
            }
            ExitCode::FAILURE
        }
        BuildError::Solve { file_name, contents, error } => {
            let mut d = kiln::ir::Diagnostic::error(error.to_string(), error.span);
            d.hint = error.hint.clone();
            eprint!("{}", diagnostics::render(file_name, contents, &d));
            if interrupted {
                eprintln!("{file_name}: the build was interrupted; nothing was tagged");
                return ExitCode::from(130);
            }
            eprintln!("{file_name}: the build failed; nothing was tagged");
            ExitCode::FAILURE
        }
        BuildError::Export { file_name, error } => {
            eprintln!("error: {error}");
            if interrupted {
                eprintln!("{file_name}: the build was interrupted; nothing was tagged");
                return ExitCode::from(130);
            }
            ExitCode::FAILURE
        }
        _ => error(e),
    }
}
