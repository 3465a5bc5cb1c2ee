//! Build progress for people: a live view on a terminal, one line per event for CI logs,
//! or nothing.
//!
//! Steps are labelled like BuildKit's (`[builder 2/5] COPY . .`); plain mode numbers them
//! (`#4 [builder 2/5] COPY . .`, then `#4 DONE 0.3s`) so interleaved output stays readable.
//! Progress goes to stderr; stdout stays free for results (image IDs, JSON).

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `tty` on a terminal, `plain` otherwise.
    Auto,
    /// A live view, one spinner per running step.
    Tty,
    /// One line per event.
    Plain,
    /// Nothing but errors.
    Quiet,
}

/// A step being shown.
pub struct Step {
    id: usize,
    label: String,
    started: Instant,
    bar: Option<ProgressBar>,
}

/// The progress reporter of one build.
pub struct Progress {
    mode: Mode,
    multi: Option<MultiProgress>,
    next_id: Mutex<usize>,
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

impl Progress {
    /// A reporter for `mode` (`Auto` decides by whether stderr is a terminal).
    pub fn new(mode: Mode) -> Self {
        let mode = match mode {
            Mode::Auto if std::io::stderr().is_terminal() => Mode::Tty,
            Mode::Auto => Mode::Plain,
            m => m,
        };
        let multi = (mode == Mode::Tty).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { mode, multi, next_id: Mutex::new(1) }
    }

    /// The mode after `Auto` was decided.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    fn id(&self) -> usize {
        let mut next = self.next_id.lock().unwrap_or_else(|e| e.into_inner());
        let id = *next;
        *next += 1;
        id
    }

    fn line(&self, text: &str) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    /// A one-off message (plain and tty modes).
    pub fn note(&self, text: &str) {
        if self.mode != Mode::Quiet {
            self.line(text);
        }
    }

    /// A step starts.
    pub fn start(&self, label: impl Into<String>) -> Step {
        let label = label.into();
        let id = self.id();
        let bar = match (&self.multi, self.mode) {
            (Some(multi), _) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(label.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                Some(bar)
            }
            (None, Mode::Plain) => {
                self.line(&format!("#{id} {label}"));
                None
            }
            _ => None,
        };
        Step { id, label, started: Instant::now(), bar }
    }

    /// A step finished; `detail` is shown with it (a layer size, say).
    pub fn done(&self, step: Step, detail: &str) {
        let took = seconds(step.started.elapsed());
        let detail = if detail.is_empty() { String::new() } else { format!(" ({detail})") };
        match step.bar {
            Some(bar) => {
                bar.finish_and_clear();
                self.line(&format!("✔ {} {took}{detail}", step.label));
            }
            None if self.mode == Mode::Plain => self.line(&format!("#{} DONE {took}{detail}", step.id)),
            None => {}
        }
    }

    /// A step whose result came from the cache: one line naming it, with `CACHED` on it.
    pub fn cached(&self, label: &str) {
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => {
                let id = self.id();
                self.line(&format!("#{id} {label} CACHED"));
            }
            _ => self.line(&format!("✔ {label} CACHED")),
        }
    }

    /// A step failed.
    pub fn failed(&self, step: Step, error: &str) {
        match step.bar {
            Some(bar) => {
                bar.finish_and_clear();
                self.line(&format!("✘ {} {}", step.label, seconds(step.started.elapsed())));
            }
            None if self.mode == Mode::Plain => self.line(&format!("#{} ERROR: {error}", step.id)),
            None => {}
        }
    }
}
