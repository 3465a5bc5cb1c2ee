//! Build progress as the library reports it: steps that start, finish, fail or come from the
//! cache, one-off notes, and the frontend's warnings, each an [`Event`] handed to the
//! caller's [`Reporter`].
//!
//! Steps are labelled like BuildKit's (`[builder 2/5] COPY . .`) and numbered in the order
//! they start, so a renderer can tell interleaved steps apart. How events are shown (a live
//! view, one line each, nothing) is the caller's business: this module never writes to a
//! terminal or a file.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kiln_ir::Diagnostic;

/// Something that happened during a build.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A step started.
    Started {
        /// Its number in this build.
        id: usize,
        /// What it is (`[builder 2/5] COPY . .`).
        label: &'a str,
    },
    /// A step finished.
    Done {
        /// Its number.
        id: usize,
        /// What it is.
        label: &'a str,
        /// How long it took.
        took: Duration,
        /// What to show with it (a layer size, say); may be empty.
        detail: &'a str,
    },
    /// A step's result came from the cache.
    Cached {
        /// Its number.
        id: usize,
        /// What it is.
        label: &'a str,
    },
    /// A step failed.
    Failed {
        /// Its number.
        id: usize,
        /// What it is.
        label: &'a str,
        /// How long it ran.
        took: Duration,
        /// Why.
        error: &'a str,
    },
    /// A one-off message: a RUN step's output, a pull's progress, a warning of kiln's.
    Note {
        /// The text, possibly several lines.
        text: &'a str,
    },
    /// The frontend warned about the build file.
    Warning {
        /// The build file's name, for the message.
        file_name: &'a str,
        /// Its bytes, to quote the line.
        source: &'a [u8],
        /// The warning.
        diagnostic: &'a Diagnostic,
    },
}

/// Whoever shows a build's progress. Called from several stages' threads at once.
pub trait Reporter: Send + Sync {
    /// Something happened.
    fn report(&self, event: Event<'_>);
}

/// A reporter that shows nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _: Event<'_>) {}
}

/// A step being reported.
#[derive(Debug)]
pub struct Step {
    id: usize,
    label: String,
    started: Instant,
}

/// The progress of one build: numbers steps, times them, and hands events to the reporter.
#[derive(Clone)]
pub struct Progress {
    reporter: Arc<dyn Reporter>,
    next_id: Arc<Mutex<usize>>,
}

impl Progress {
    /// Progress reported to `reporter`.
    pub fn new(reporter: Arc<dyn Reporter>) -> Self {
        Progress { reporter, next_id: Arc::new(Mutex::new(1)) }
    }

    /// Progress that nobody sees.
    pub fn silent() -> Self {
        Progress::new(Arc::new(Silent))
    }

    fn id(&self) -> usize {
        let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
        let id = *next;
        *next += 1;
        id
    }

    /// A one-off message.
    pub fn note(&self, text: &str) {
        self.reporter.report(Event::Note { text });
    }

    /// A warning of the frontend's about `source`.
    pub fn warning(&self, file_name: &str, source: &[u8], diagnostic: &Diagnostic) {
        self.reporter.report(Event::Warning { file_name, source, diagnostic });
    }

    /// A step starts.
    pub fn start(&self, label: impl Into<String>) -> Step {
        let step = Step { id: self.id(), label: label.into(), started: Instant::now() };
        self.reporter.report(Event::Started { id: step.id, label: &step.label });
        step
    }

    /// A step finished; `detail` is shown with it (a layer size, say).
    pub fn done(&self, step: Step, detail: &str) {
        let took = step.started.elapsed();
        self.reporter.report(Event::Done { id: step.id, label: &step.label, took, detail });
    }

    /// A step whose result came from the cache.
    pub fn cached(&self, label: &str) {
        self.reporter.report(Event::Cached { id: self.id(), label });
    }

    /// A step failed.
    pub fn failed(&self, step: Step, error: &str) {
        let took = step.started.elapsed();
        self.reporter.report(Event::Failed { id: step.id, label: &step.label, took, error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps every event as a line.
    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Reporter for Lines {
        fn report(&self, event: Event<'_>) {
            let line = match event {
                Event::Started { id, label } => format!("{id} start {label}"),
                Event::Done { id, detail, .. } => format!("{id} done {detail}"),
                Event::Cached { id, label } => format!("{id} cached {label}"),
                Event::Failed { id, error, .. } => format!("{id} failed {error}"),
                Event::Note { text } => format!("note {text}"),
                Event::Warning { diagnostic, .. } => format!("warning {}", diagnostic.message),
            };
            self.0.lock().unwrap().push(line);
        }
    }

    #[test]
    fn steps_are_numbered_in_the_order_they_start_and_their_ends_name_them() {
        let lines = Arc::new(Lines::default());
        let progress = Progress::new(lines.clone());
        let a = progress.start("[a 1/2] FROM scratch");
        let b = progress.start("[b 1/1] FROM scratch");
        progress.cached("[a 2/2] COPY . /");
        progress.done(b, "");
        progress.failed(a, "no");
        progress.note("hello");
        assert_eq!(
            *lines.0.lock().unwrap(),
            [
                "1 start [a 1/2] FROM scratch",
                "2 start [b 1/1] FROM scratch",
                "3 cached [a 2/2] COPY . /",
                "2 done ",
                "1 failed no",
                "note hello"
            ]
        );
    }
}
