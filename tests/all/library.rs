//! The build as a library call: `kiln::build()` without the binary, its outcome and its
//! typed errors, with progress heard through a reporter of the test's own.

use std::sync::{Arc, Mutex};

use kiln::pipeline::{BuildError, BuildRequest, ParseError, Session};
use kiln::progress::{Event, Progress, Reporter};
use kiln::solver::Cause;
use kiln::source::registry::RegistryOptions;

use crate::support::{Sandbox, compile_cache, stdout};

/// Every step label it heard started, cached or failed, and every note.
#[derive(Default)]
struct Heard(Mutex<Vec<String>>);

impl Reporter for Heard {
    fn report(&self, event: Event<'_>) {
        let line = match event {
            Event::Started { label, .. } => format!("start {label}"),
            Event::Cached { label, .. } => format!("cached {label}"),
            Event::Failed { label, .. } => format!("failed {label}"),
            Event::Done { .. } => return,
            Event::Note { text } => format!("note {text}"),
            Event::Warning { diagnostic, .. } => format!("warning {}", diagnostic.message),
        };
        self.0.lock().unwrap().push(line);
    }
}

fn session(sb: &Sandbox) -> Session {
    Session::new(sb.root(), RegistryOptions::default()).with_compile_cache(Some(compile_cache()))
}

#[test]
fn a_build_is_a_library_call_with_a_typed_outcome() {
    let sb = Sandbox::new();
    sb.write("ctx/hello.txt", "hello\n");
    sb.write(
        "ctx/Dockerfile",
        "FROM scratch AS base\nCOPY hello.txt /\nFROM base\nRUN echo made > /made.txt\nCMD [\"/made.txt\"]\n",
    );
    let heard = Arc::new(Heard::default());
    let progress = Progress::new(heard.clone());
    let mut request = BuildRequest::new(sb.dir.path().join("ctx"));
    request.tags = vec!["lib:1".into()];
    let outcome = kiln::build(&session(&sb), &request, &progress).expect("the build succeeds");
    assert_eq!(outcome.names, ["lib:1"]);
    assert!(outcome.pushed.is_empty());
    let lines = heard.0.lock().unwrap().clone();
    assert!(lines.contains(&"start [base 2/2] COPY hello.txt /".to_string()), "{lines:?}");
    assert!(lines.contains(&"note naming to lib:1".to_string()), "{lines:?}");

    // The binary sees the same image under that name, with the same ID.
    let shown = stdout(&sb.kiln().args(["inspect", "lib:1"]).output().unwrap());
    assert!(shown.contains(&outcome.config_digest.to_string()), "{shown}");

    // Again: every step from the cache, the same image.
    heard.0.lock().unwrap().clear();
    let again = kiln::build(&session(&sb), &request, &progress).unwrap();
    assert_eq!(again.manifest.digest(), outcome.manifest.digest());
    let lines = heard.0.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.starts_with("cached [stage-1 2/3] RUN")), "{lines:?}");
}

#[test]
fn failures_are_typed_and_located() {
    let sb = Sandbox::new();
    sb.write("ctx/Dockerfile", "FROM scratch\nCOPY missing.txt /\n");
    let session = session(&sb);
    let request = BuildRequest::new(sb.dir.path().join("ctx"));
    let err = kiln::build(&session, &request, &Progress::silent()).unwrap_err();
    let BuildError::Solve { error, file_name, .. } = &err else { panic!("not a solve error: {err:?}") };
    assert!(matches!(*error.cause, Cause::Copy(_)), "{error:?}");
    assert_eq!(error.span.map(|s| s.start.line), Some(2));
    assert!(file_name.ends_with("Dockerfile"), "{file_name}");
    assert!(!err.is_usage() && !err.is_interrupted());

    // A name Docker would not take is the caller's mistake, found before any work.
    let mut named = BuildRequest::new(sb.dir.path().join("ctx"));
    named.tags = vec!["Not A Name".into()];
    let err = kiln::build(&session, &named, &Progress::silent()).unwrap_err();
    assert!(matches!(err, BuildError::InvalidName(_)) && err.is_usage(), "{err:?}");

    // The frontend's rejection comes back with its diagnostics, nothing printed.
    sb.write("ctx/Dockerfile", "FROM scratch\nNOPE x\n");
    let err = kiln::build(&session, &request, &Progress::silent()).unwrap_err();
    let BuildError::Parse(ParseError::Rejected { diagnostics, .. }) = &err else { panic!("not rejected: {err:?}") };
    assert!(diagnostics.iter().any(|d| d.message.to_lowercase().contains("nope")), "{diagnostics:?}");
}
